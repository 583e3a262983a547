"""MLflow tracking: one parent run per pipeline run, one nested run per step.

Runners open the parent run and hand its id to the steps through environment variables, so
pipelines stay free of tracking parameters and every backend (KFP local, KFP cluster, SageMaker)
records the same hierarchy. The embedded default is MLflow's own: a SQLite store `mlflow.db` and
artifacts under `mlruns/`, in the working directory; `MLFLOW_TRACKING_URI` selects a server.
"""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubesage.errors import TrackingError
from kubesage.redact import redact_text, redact_uri

ENV_TRACKING_URI = "MLFLOW_TRACKING_URI"
ENV_PARENT_RUN_ID = "KUBESAGE_MLFLOW_PARENT_RUN_ID"
ENV_EXPERIMENT_ID = "KUBESAGE_MLFLOW_EXPERIMENT_ID"
ENV_RUNNER = "KUBESAGE_RUNNER"
ENV_EXPERIMENT_NAME = "KUBESAGE_MLFLOW_EXPERIMENT"

TAG_RUNNER = "kubesage.runner"
TAG_PIPELINE = "kubesage.pipeline"
TAG_PIPELINE_RUN_ID = "kubesage.pipeline_run_id"
TAG_STEP = "kubesage.step"
TAG_DATA_URI = "kubesage.data_uri"
TAG_DATA_SHA256 = "kubesage.data_sha256"
TAG_GIT_COMMIT = "mlflow.source.git.commit"
TAG_REGISTERED_VERSION = "kubesage.registered_model_version"
TAG_REGISTERED_NAME = "kubesage.registered_model_name"
TAG_NOT_REGISTERED = "kubesage.not_registered_reason"
TAG_FAILURE = "kubesage.failure"
TAG_KIND = "kubesage.kind"


class _SageMakerHeaderNoise(logging.Filter):
    """Drop one warning the sagemaker-mlflow plugin causes on every request to a non-ARN server.

    The plugin (installed for SageMaker-managed MLflow ARNs) claims every request and fails to parse
    a plain http:// URI as an ARN; MLflow then logs a warning per request. Its headers only matter
    for ARN URIs, where the warning is kept.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        noise = "resolving request headers" in record.getMessage()
        return not noise or tracking_uri().startswith("arn:")


logging.getLogger("mlflow.tracking.request_header.registry").addFilter(_SageMakerHeaderNoise())


def default_tracking_uri(workdir: Path | None = None) -> str:
    base = (workdir or Path.cwd()).resolve()
    return f"sqlite:///{base / 'mlflow.db'}"


def tracking_uri() -> str:
    """The tracking URI in force: MLFLOW_TRACKING_URI, or the embedded SQLite store."""
    return os.environ.get(ENV_TRACKING_URI) or default_tracking_uri()


def git_commit(cwd: Path | None = None) -> str:
    env = os.environ.get("KUBESAGE_GIT_COMMIT")
    if env:
        return env
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() or "unknown"


@dataclass(frozen=True)
class PipelineRun:
    """The MLflow side of one pipeline run; `step_env` is what every step needs to join it."""

    run_id: str
    experiment_id: str
    tracking_uri: str
    runner: str

    @property
    def step_env(self) -> dict[str, str]:
        return {
            ENV_TRACKING_URI: self.tracking_uri,
            ENV_PARENT_RUN_ID: self.run_id,
            ENV_EXPERIMENT_ID: self.experiment_id,
            ENV_RUNNER: self.runner,
        }


def _client(uri: str) -> Any:
    from kubesage.sqlite_store import mlflow_client

    return mlflow_client(uri)


def ensure_experiment(name: str, uri: str) -> str:
    client = _client(uri)
    try:
        existing = client.get_experiment_by_name(name)
        if existing is not None:
            return str(existing.experiment_id)
        return str(client.create_experiment(name))
    except Exception as exc:  # MLflow raises many types for an unreachable or refusing server
        raise TrackingError(
            f"MLflow at {redact_uri(uri)} refused experiment {name!r}: {redact_text(str(exc))}"
        ) from exc


def start_pipeline_run(
    pipeline_name: str,
    runner: str,
    params: Mapping[str, Any],
    tags: Mapping[str, str] | None = None,
    uri: str | None = None,
) -> PipelineRun:
    """Open the parent run; it stays RUNNING until `finish_pipeline_run`."""
    uri = uri or tracking_uri()
    experiment_name = os.environ.get(ENV_EXPERIMENT_NAME, pipeline_name)
    experiment_id = ensure_experiment(experiment_name, uri)
    client = _client(uri)
    all_tags = {
        TAG_RUNNER: runner,
        TAG_PIPELINE: pipeline_name,
        TAG_GIT_COMMIT: git_commit(),
        TAG_KIND: "pipeline",
        **(tags or {}),
    }
    try:
        run = client.create_run(experiment_id, tags=all_tags, run_name=f"{pipeline_name} ({runner})")
        run_id = run.info.run_id
        client.set_tag(run_id, TAG_PIPELINE_RUN_ID, run_id)
        for key, value in sorted(params.items()):
            client.log_param(run_id, key, _param_text(value))
    except Exception as exc:
        raise TrackingError(f"MLflow at {redact_uri(uri)} refused the pipeline run: {redact_text(str(exc))}") from exc
    return PipelineRun(run_id=run_id, experiment_id=experiment_id, tracking_uri=uri, runner=runner)


def finish_pipeline_run(run: PipelineRun, succeeded: bool, failure: str | None = None) -> None:
    client = _client(run.tracking_uri)
    if failure:
        client.set_tag(run.run_id, TAG_FAILURE, redact_text(failure)[:5000])
    client.set_terminated(run.run_id, status="FINISHED" if succeeded else "FAILED")


def _param_text(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 6000 else text[:5997] + "..."


class StepTracker:
    """What a step logs; every method is a no-op when tracking is off (a step run on its own)."""

    def __init__(self, client: Any, run_id: str | None, parent_run_id: str | None) -> None:
        self._client = client
        self.run_id = run_id
        self.parent_run_id = parent_run_id

    @property
    def enabled(self) -> bool:
        return self._client is not None and self.run_id is not None

    def log_params(self, params: Mapping[str, Any]) -> None:
        if self.enabled:
            for key, value in sorted(params.items()):
                self._client.log_param(self.run_id, key, _param_text(value))

    def log_metrics(self, metrics: Mapping[str, float], also_parent: bool = False) -> None:
        if not self.enabled:
            return
        targets = [self.run_id] + ([self.parent_run_id] if also_parent and self.parent_run_id else [])
        for run_id in targets:
            for key, value in sorted(metrics.items()):
                self._client.log_metric(run_id, key, float(value))

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        if self.enabled:
            self._client.log_artifact(self.run_id, str(path), artifact_path)

    def set_tags(self, tags: Mapping[str, str], also_parent: bool = False) -> None:
        if not self.enabled:
            return
        targets = [self.run_id] + ([self.parent_run_id] if also_parent and self.parent_run_id else [])
        for run_id in targets:
            for key, value in tags.items():
                self._client.set_tag(run_id, key, value)


@contextmanager
def step_run(step: str) -> Iterator[StepTracker]:
    """A nested MLflow run for one step, under the parent named in the environment.

    Without a parent run id and without MLFLOW_TRACKING_URI the step runs untracked, so a
    component can be called on its own in a notebook or a unit test.
    """
    parent = os.environ.get(ENV_PARENT_RUN_ID)
    uri = os.environ.get(ENV_TRACKING_URI)
    if not parent and not uri:
        yield StepTracker(None, None, None)
        return
    uri = uri or default_tracking_uri()
    client = _client(uri)
    experiment_id = os.environ.get(ENV_EXPERIMENT_ID) or ensure_experiment(
        os.environ.get(ENV_EXPERIMENT_NAME, "kubesage"), uri
    )
    tags = {TAG_STEP: step, TAG_KIND: "step", TAG_RUNNER: os.environ.get(ENV_RUNNER, "unknown")}
    if parent:
        tags["mlflow.parentRunId"] = parent
        tags[TAG_PIPELINE_RUN_ID] = parent
    try:
        run = client.create_run(experiment_id, tags=tags, run_name=step)
    except Exception as exc:  # an unreachable or refusing server: say so, with no traceback
        raise TrackingError(
            f"MLflow at {redact_uri(uri)} refused the {step} step's run: {redact_text(str(exc))}"
        ) from exc
    tracker = StepTracker(client, run.info.run_id, parent)
    try:
        yield tracker
    except BaseException as exc:
        client.set_tag(run.info.run_id, TAG_FAILURE, redact_text(str(exc))[:5000] or type(exc).__name__)
        client.set_terminated(run.info.run_id, status="FAILED")
        raise
    client.set_terminated(run.info.run_id, status="FINISHED")
