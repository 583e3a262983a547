"""KFP IR (PipelineSpec) handling every runner shares: load, validate, parameters, data inputs."""
