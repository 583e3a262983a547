"""One exception hierarchy for kubesage.

Every message says what was wrong and what to do about it. The CLI prints the message (no traceback)
and exits non-zero. The errors HTTP layers answer with (status and error code) are in
kubesage.http_errors, a branch of this tree.
"""

from __future__ import annotations


class KubesageError(Exception):
    """Base of every error kubesage raises on purpose."""

    exit_code = 1


class DataError(KubesageError):
    """The input data is missing, empty, or does not match the expected schema."""

    exit_code = 2


class ParameterError(KubesageError):
    """A pipeline parameter is unknown or has a value of the wrong type."""

    exit_code = 2


class PipelineNotFoundError(KubesageError):
    """A PIPELINE argument names no pipeline kubesage can load."""

    exit_code = 2


class SchemaError(KubesageError):
    """A feature schema file is malformed, or a record does not fit it."""

    exit_code = 2


class ModelError(KubesageError):
    """A model could not be trained, converted, loaded or checked."""


class ParityError(ModelError):
    """daal4py and XGBoost disagree on the same model and inputs."""


class RunnerError(KubesageError):
    """A runner could not compile, submit or follow a pipeline run."""


class RunInterruptedError(RunnerError):
    """The user stopped a run (Ctrl-C); the message says what became of the backend's run."""

    exit_code = 130


class UnresolvedInputError(RunnerError):
    """A task input (a condition's operand, an argument) has no value when the task is reached."""


class UnsupportedFeatureError(RunnerError):
    """A pipeline uses a feature the chosen backend cannot express."""

    exit_code = 2


class TrackingError(KubesageError):
    """MLflow could not be reached or refused a request."""


class MonitoringError(KubesageError):
    """Captured traffic, a baseline or a drift check could not be read or written; the message names the file."""


class CloudError(KubesageError):
    """A cloud API (AWS through boto3) refused or failed a request; the message names the call."""


class AccessDeniedError(CloudError):
    """The caller's credentials may not make this call; the message names the permission to grant."""

    exit_code = 3


class DeployError(KubesageError):
    """A deployment could not be prepared, refused, or failed in CloudFormation."""


class SpecIntegrityError(RunnerError):
    """A step's task spec does not match the sha256 the compiled pipeline definition pins for it."""

    exit_code = 2


class ClusterError(KubesageError):
    """A multi-instance training job's hosts could not form one XGBoost collective (config, DNS, a peer)."""
