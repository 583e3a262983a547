"""Where things are: the shim's entry point and the paths and channel names inside a job's container."""

SHIM_ENTRYPOINT = ["python3", "-m", "kubesage.runners.sagemaker.shim"]
SPEC_CHANNEL = "kubesage-spec"
OUTPUTS_NAME = "kubesage-outputs"
OUTPUTS_FILE = "outputs.json"
PROCESSING_IN = "/opt/ml/processing/input"
PROCESSING_OUT = "/opt/ml/processing/output"
TRAINING_IN = "/opt/ml/input/data"
TRAINING_OUT = "/opt/ml/output/data"
MODEL_DIR = "/opt/ml/model"


def data_channel(parameter: str) -> str:
    """The input channel a data parameter's S3 object is downloaded into."""
    return f"param-{parameter}"


def outputs_property_file(task: str) -> str:
    """The PropertyFile over a processing task's outputs.json (its output parameters)."""
    return f"{task}-outputs"
