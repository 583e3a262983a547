"""MLflow tracking: one parent run per pipeline run, one nested run per step.

Runners open the parent run and hand its id to the steps through the variables in
`kubesage.tracking.contract`, so pipelines stay free of tracking parameters and every backend records
the same hierarchy. The embedded default is MLflow's own: a SQLite store `mlflow.db` and artifacts
under `mlruns/`, in the working directory; `MLFLOW_TRACKING_URI` selects a server.
"""

from kubesage.tracking.contract import *  # noqa: F403  (the contract's names are part of this API)
from kubesage.tracking.mlflow_calls import mlflow_call
from kubesage.tracking.runs import (
    PipelineRun,
    StepTracker,
    default_tracking_uri,
    ensure_experiment,
    finish_pipeline_run,
    git_commit,
    start_pipeline_run,
    step_run,
    tag_pipeline_run,
    tracking_uri,
)

__all__ = [
    "PipelineRun",
    "StepTracker",
    "default_tracking_uri",
    "ensure_experiment",
    "finish_pipeline_run",
    "git_commit",
    "mlflow_call",
    "start_pipeline_run",
    "step_run",
    "tag_pipeline_run",
    "tracking_uri",
]
