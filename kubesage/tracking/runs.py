"""The run tree: the parent run a runner opens and closes, and the nested run each step opens.

The embedded default store is MLflow's own: a SQLite store `mlflow.db` and artifacts under
`mlruns/`, in the working directory; `MLFLOW_TRACKING_URI` selects a server.
"""

from __future__ import annotations

import logging
import os
import subprocess
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubesage.tracking.contract import (
    ENV_EXPERIMENT_ID,
    ENV_EXPERIMENT_NAME,
    ENV_IMAGE_REVISION,
    ENV_PARENT_RUN_ID,
    ENV_RUNNER,
    ENV_STEP_RUN_ID_FILE,
    ENV_TRACKING_URI,
    EXPERIMENT_KIND_TRAINING,
    TAG_EXPERIMENT_KIND,
    TAG_FAILURE,
    TAG_GIT_COMMIT,
    TAG_IMAGE_REVISION,
    TAG_KIND,
    TAG_PARENT_RUN_ID,
    TAG_PIPELINE,
    TAG_PIPELINE_RUN_ID,
    TAG_RUNNER,
    TAG_STEP,
    StepHandoff,
)
from kubesage.tracking.mlflow_calls import mlflow_call
from kubesage.tracking.ui_view import update_runs_view
from kubesage.util.redact import redact_text


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


# Tracking stores reached over the network, which a pod or a job container can use as well as this
# machine; a SQLite or file store (or an unknown scheme) is a file here that only this machine opens.
_SERVER_SCHEMES = frozenset({"http", "https", "databricks", "arn"})


def is_server_uri(uri: str) -> bool:
    """Is `uri` a tracking server (http(s), Databricks, a SageMaker-managed MLflow ARN), not a local store?

    The scheme alone decides, case-insensitively as RFC 3986 says; not urlsplit, since "databricks"
    alone (no "://") is a valid tracking URI and "arn:aws:sagemaker:..." has no "//".
    """
    return uri.split(":", 1)[0].strip().lower() in _SERVER_SCHEMES


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
    """The MLflow side of one pipeline run; `handoff` is what every step needs to join it."""

    run_id: str
    experiment_id: str
    tracking_uri: str
    runner: str

    @property
    def handoff(self) -> StepHandoff:
        return StepHandoff(self.tracking_uri, self.run_id, self.experiment_id, self.runner)

    @property
    def step_env(self) -> dict[str, str]:
        return self.handoff.to_env()


def _client(uri: str) -> Any:
    from kubesage.tracking.sqlite_store import mlflow_client

    return mlflow_client(uri)


def step_runs(run: PipelineRun) -> list[Any]:
    """The nested runs the pipeline's steps opened under `run`, oldest first."""
    client = _client(run.tracking_uri)
    with mlflow_call("read the pipeline's step runs", run.tracking_uri):
        found: list[Any] = client.search_runs(
            [run.experiment_id],
            filter_string=f"tags.`{TAG_PARENT_RUN_ID}` = '{run.run_id}'",
            order_by=["attributes.start_time ASC"],
        )
    return found


def step_name(step: Any) -> str:
    """The step a nested run belongs to (its tag; the run name for a run opened by other code)."""
    return str(step.data.tags.get(TAG_STEP, step.info.run_name or "?"))


def failed_step_reasons(steps: list[Any]) -> dict[str, str]:
    """Step name -> the reason it recorded before failing ("" if it recorded none), for FAILED step runs."""
    return {step_name(s): s.data.tags.get(TAG_FAILURE, "") for s in steps if s.info.status == "FAILED"}


def ensure_experiment(name: str, uri: str) -> str:
    """The experiment's id, created if needed and marked as model training (not GenAI) for the UI.

    Two runs starting at once against one server may both find it missing, or unmarked: the one whose
    create or tag MLflow then refuses (the name taken; on PostgreSQL, the tag's unique key) reads
    again and finds what the other made."""
    from mlflow.exceptions import MlflowException

    client = _client(uri)
    with mlflow_call(f"find or create experiment {name!r}", uri):
        try:
            return _find_or_create_experiment(client, name)
        except MlflowException:
            made_meanwhile = client.get_experiment_by_name(name)
            if made_meanwhile is None or TAG_EXPERIMENT_KIND not in made_meanwhile.tags:
                raise
            return str(made_meanwhile.experiment_id)


def _find_or_create_experiment(client: Any, name: str) -> str:
    existing = client.get_experiment_by_name(name)
    if existing is None:
        return str(client.create_experiment(name, tags={TAG_EXPERIMENT_KIND: EXPERIMENT_KIND_TRAINING}))
    if TAG_EXPERIMENT_KIND not in existing.tags:  # made before kubesage set the kind
        client.set_experiment_tag(existing.experiment_id, TAG_EXPERIMENT_KIND, EXPERIMENT_KIND_TRAINING)
    return str(existing.experiment_id)


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
    with mlflow_call("open the pipeline run", uri):
        run = client.create_run(experiment_id, tags=all_tags, run_name=f"{pipeline_name} ({runner})")
        run_id = run.info.run_id
        log_batch(client, run_id, params=params, tags={TAG_PIPELINE_RUN_ID: run_id})
    return PipelineRun(run_id=run_id, experiment_id=experiment_id, tracking_uri=uri, runner=runner)


def tag_pipeline_run(run: PipelineRun, tags: Mapping[str, str]) -> None:
    client = _client(run.tracking_uri)
    with mlflow_call("tag the pipeline run", run.tracking_uri):
        log_batch(client, run.run_id, tags=tags)


def finish_pipeline_run(run: PipelineRun, status: str, failure: str | None = None) -> None:
    """Close the parent run as FINISHED, FAILED or KILLED, with the failure reason as a tag."""
    client = _client(run.tracking_uri)
    with mlflow_call("close the pipeline run", run.tracking_uri):
        if failure:
            client.set_tag(run.run_id, TAG_FAILURE, redact_text(failure)[:5000])
        client.set_terminated(run.run_id, status=status)
    with mlflow_call("update the experiment's runs view", run.tracking_uri):
        update_runs_view(client, run.experiment_id)


def _param_text(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 6000 else text[:5997] + "..."


def log_batch(
    client: Any,
    run_id: str,
    *,
    params: Mapping[str, Any] | None = None,
    metrics: Mapping[str, float] | None = None,
    tags: Mapping[str, str] | None = None,
    timestamp_ms: int | None = None,
) -> None:
    """Log `params`, `metrics` and `tags` on `run_id` in one call (MLflow's client splits it at the
    store's limits): a call per value was a request per value to a tracking server, 60 of a churn
    run's 127, and a transaction each on a SQLite store. Metrics at `timestamp_ms`, or now."""
    if not (params or metrics or tags):
        return
    from mlflow.entities import Metric, Param, RunTag

    when = int(time.time() * 1000) if timestamp_ms is None else timestamp_ms
    client.log_batch(
        run_id,
        metrics=[Metric(key, float(value), when, 0) for key, value in sorted((metrics or {}).items())],
        params=[Param(key, _param_text(value)) for key, value in sorted((params or {}).items())],
        tags=[RunTag(key, str(value)) for key, value in (tags or {}).items()],
    )


class StepTracker:
    """What a step logs; every method is a no-op when tracking is off (a step run on its own)."""

    def __init__(self, client: Any, run_id: str | None, parent_run_id: str | None, uri: str = "") -> None:
        self._client = client
        self.run_id = run_id
        self.parent_run_id = parent_run_id
        self._uri = uri

    @property
    def enabled(self) -> bool:
        return self._client is not None and self.run_id is not None

    def _targets(self, also_parent: bool) -> list[str]:
        assert self.run_id is not None
        return [self.run_id] + ([self.parent_run_id] if also_parent and self.parent_run_id else [])

    def log_params(self, params: Mapping[str, Any]) -> None:
        if not self.enabled:
            return
        (run_id,) = self._targets(also_parent=False)  # parameters are the step's own, never the parent's
        with mlflow_call("log step parameters", self._uri):
            log_batch(self._client, run_id, params=params)

    def log_metrics(self, metrics: Mapping[str, float], also_parent: bool = False) -> None:
        if not self.enabled:
            return
        with mlflow_call("log step metrics", self._uri):
            for run_id in self._targets(also_parent):
                log_batch(self._client, run_id, metrics=metrics)

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        if self.enabled:
            with mlflow_call(f"store artifact {Path(path).name}", self._uri):
                self._client.log_artifact(self.run_id, str(path), artifact_path)

    def log_parent_artifact(self, path: str | Path) -> None:
        """Put `path` at the root of the parent run's artifacts.

        At the root because MLflow's compare view lists only files there (folders are skipped), so
        plots on the parent runs appear side by side when runs are compared.
        """
        if self.enabled and self.parent_run_id:
            with mlflow_call(f"store artifact {Path(path).name} on the pipeline run", self._uri):
                self._client.log_artifact(self.parent_run_id, str(path))

    def set_tags(self, tags: Mapping[str, str], also_parent: bool = False) -> None:
        if not self.enabled:
            return
        with mlflow_call("tag the step run", self._uri):
            for run_id in self._targets(also_parent):
                log_batch(self._client, run_id, tags=tags)


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
    # Where the step ran: a pod or a job records the image build its code came from.
    if os.environ.get(ENV_IMAGE_REVISION):
        tags[TAG_IMAGE_REVISION] = os.environ[ENV_IMAGE_REVISION]
    if parent:
        tags[TAG_PARENT_RUN_ID] = parent
        tags[TAG_PIPELINE_RUN_ID] = parent
    with mlflow_call(f"open the run of step {step}", uri):
        run = client.create_run(experiment_id, tags=tags, run_name=step)
    if os.environ.get(ENV_STEP_RUN_ID_FILE):
        Path(os.environ[ENV_STEP_RUN_ID_FILE]).write_text(run.info.run_id)
    tracker = StepTracker(client, run.info.run_id, parent, uri)
    try:
        yield tracker
    except BaseException as exc:
        status = "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED"
        with mlflow_call(f"close the run of step {step}", uri):
            client.set_tag(run.info.run_id, TAG_FAILURE, redact_text(str(exc))[:5000] or type(exc).__name__)
            client.set_terminated(run.info.run_id, status=status)
        raise
    with mlflow_call(f"close the run of step {step}", uri):
        client.set_terminated(run.info.run_id, status="FINISHED")
