"""The one hand-off contract between a runner and the steps it starts.

A runner opens the MLflow parent run; every step, wherever it runs (a local subprocess, a KFP pod, a
SageMaker job), joins it through the environment variables named here, and reports why it failed
through the failure channel. Runners, the SageMaker compiler and the in-container shim all read
these names from this module; components depend on it, never on a runner.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "ENV_EXPERIMENT_ID",
    "ENV_EXPERIMENT_NAME",
    "ENV_FAILURE_DIR",
    "ENV_IMAGE_REVISION",
    "ENV_PARENT_RUN_ID",
    "ENV_RUNNER",
    "ENV_STEP_RUN_ID_FILE",
    "ENV_TRACKING_URI",
    "EXPERIMENT_KIND_TRAINING",
    "HANDOFF_ENV",
    "TAG_BACKEND_RUN_ID",
    "TAG_DATA_SHA256",
    "TAG_DATA_URI",
    "TAG_EXPERIMENT_KIND",
    "TAG_FAILURE",
    "TAG_GIT_COMMIT",
    "TAG_IMAGE_REVISION",
    "TAG_KIND",
    "TAG_MODEL_PACKAGE_ARN",
    "TAG_NOT_REGISTERED",
    "TAG_PARENT_RUN_ID",
    "TAG_PIPELINE",
    "TAG_PIPELINE_RUN_ID",
    "TAG_REGISTERED_NAME",
    "TAG_REGISTERED_VERSION",
    "TAG_RUNNER",
    "TAG_STEP",
    "StepHandoff",
    "read_failures",
    "write_failure",
]

# --- environment names ------------------------------------------------------------------------
ENV_TRACKING_URI = "MLFLOW_TRACKING_URI"  # MLflow's own variable, so MLflow clients agree with us
ENV_PARENT_RUN_ID = "KUBESAGE_MLFLOW_PARENT_RUN_ID"
ENV_EXPERIMENT_ID = "KUBESAGE_MLFLOW_EXPERIMENT_ID"
ENV_EXPERIMENT_NAME = "KUBESAGE_MLFLOW_EXPERIMENT"
ENV_RUNNER = "KUBESAGE_RUNNER"
# A folder where a failing step writes `<step>.txt` with its reason; only runners whose steps share
# a file system with them (local, KFP-in-Docker) set it. Others read the reason from the step's
# MLflow run (TAG_FAILURE) or from the backend (SageMaker's FailureReason).
ENV_FAILURE_DIR = "KUBESAGE_FAILURE_DIR"
# Where a step writes its run id, so the process above it (the SageMaker shim) can close the run
# as KILLED when the job is stopped and the step dies from the signal before it can.
ENV_STEP_RUN_ID_FILE = "KUBESAGE_STEP_RUN_ID_FILE"
# Set by the kubesage image itself (its Dockerfile, from the build's git commit), never by a runner: a
# step that sees it ran in that build of the image, and records which (TAG_IMAGE_REVISION).
ENV_IMAGE_REVISION = "KUBESAGE_IMAGE_REVISION"

# What a step needs to join the parent run, in the order runners deliver it.
HANDOFF_ENV: tuple[str, ...] = (ENV_TRACKING_URI, ENV_PARENT_RUN_ID, ENV_EXPERIMENT_ID, ENV_RUNNER)

# --- MLflow tags --------------------------------------------------------------------------------
TAG_RUNNER = "kubesage.runner"
TAG_PIPELINE = "kubesage.pipeline"
TAG_PIPELINE_RUN_ID = "kubesage.pipeline_run_id"
TAG_BACKEND_RUN_ID = "kubesage.backend_run_id"  # the backend's own id: execution ARN, KFP run id, ...
TAG_STEP = "kubesage.step"
TAG_DATA_URI = "kubesage.data_uri"
TAG_DATA_SHA256 = "kubesage.data_sha256"
TAG_GIT_COMMIT = "mlflow.source.git.commit"
TAG_PARENT_RUN_ID = "mlflow.parentRunId"
TAG_REGISTERED_VERSION = "kubesage.registered_model_version"
TAG_REGISTERED_NAME = "kubesage.registered_model_name"
TAG_NOT_REGISTERED = "kubesage.not_registered_reason"
# The SageMaker model package a run made (the sagemaker-local runner, after local mode ran the steps).
TAG_MODEL_PACKAGE_ARN = "kubesage.model_package_arn"
TAG_FAILURE = "kubesage.failure"
TAG_KIND = "kubesage.kind"
TAG_IMAGE_REVISION = "kubesage.image_revision"  # on a step run: the image build it ran in (none outside it)
# MLflow 3's experiment type: "custom_model_development" is "Machine learning" (runs, metrics,
# models), not "GenAI apps & agents" (traces). MLflow UIs that key their view on the experiment read
# this tag; 3.17's UI also keeps a per-browser workflow type, which `?workflowType=` in a URL sets.
TAG_EXPERIMENT_KIND = "mlflow.experimentKind"
EXPERIMENT_KIND_TRAINING = "custom_model_development"


@dataclass(frozen=True)
class StepHandoff:
    """What every step of one pipeline run needs to record itself under the parent run."""

    tracking_uri: str
    parent_run_id: str
    experiment_id: str
    runner: str

    def to_env(self) -> dict[str, str]:
        return {
            ENV_TRACKING_URI: self.tracking_uri,
            ENV_PARENT_RUN_ID: self.parent_run_id,
            ENV_EXPERIMENT_ID: self.experiment_id,
            ENV_RUNNER: self.runner,
        }


# --- the failure channel --------------------------------------------------------------------------
def write_failure(step: str, message: str, env: Mapping[str, str] | None = None) -> Path | None:
    """Leave `message` where the runner will look for it; None when no failure folder is set."""
    directory = (os.environ if env is None else env).get(ENV_FAILURE_DIR)
    if not directory:
        return None
    target = Path(directory) / f"{step}.txt"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(message, encoding="utf-8")
    return target


def read_failures(directory: Path) -> str | None:
    """The reasons steps wrote before failing, oldest first, as one line."""
    if not directory.is_dir():
        return None
    reports = sorted(directory.glob("*.txt"), key=lambda p: p.stat().st_mtime)
    lines = [f"step {p.stem}: {p.read_text(encoding='utf-8').strip()}" for p in reports]
    return "; ".join(lines) or None
