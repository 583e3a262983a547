"""SageMaker Pipelines backend: compile KFP IR to a SageMaker pipeline definition, submit and run it."""
