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
    failed_step_reasons,
    finish_pipeline_run,
    git_commit,
    is_server_uri,
    log_batch,
    start_pipeline_run,
    step_name,
    step_run,
    step_runs,
    tag_pipeline_run,
    tracking_uri,
)
from kubesage.tracking.sqlite_store import mlflow_client

__all__ = [
    "PipelineRun",
    "StepTracker",
    "default_tracking_uri",
    "ensure_experiment",
    "failed_step_reasons",
    "finish_pipeline_run",
    "git_commit",
    "is_server_uri",
    "log_batch",
    "mlflow_call",
    "mlflow_client",
    "start_pipeline_run",
    "step_name",
    "step_run",
    "step_runs",
    "tag_pipeline_run",
    "tracking_uri",
]
