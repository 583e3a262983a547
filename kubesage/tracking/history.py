"""Pipeline runs read back from MLflow: the parent runs of kubesage pipelines, newest first, or the
runs named by full or short ids. `kubesage runs` tabulates them; `kubesage.runs()` returns a DataFrame."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from kubesage import tracking as t
from kubesage.errors import ParameterError, TrackingError
from kubesage.tracking.filters import filter_literal
from kubesage.util.names import same_pipeline_name
from kubesage.util.redact import redact_text, redact_uri

SHORT_ID = 8
# How far back `--compare` looks for a run given by the short id the table shows.
PREFIX_SEARCH_LIMIT = 500


@dataclass(frozen=True)
class RunRow:
    run_id: str
    started: str
    pipeline: str
    runner: str
    status: str
    registered: str | None
    metrics: dict[str, float]
    params: dict[str, str]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_FULL_RUN_ID = re.compile(r"[0-9a-f]{32}")


def _pipeline_pattern(pipeline: str) -> str:
    """A LIKE literal matching both spellings (`_` matches any one character, `-` included); rows are
    then kept only when their name is the same pipeline, so `_`'s looseness never shows."""
    return filter_literal(pipeline.replace("-", "_"))


def recent_runs(pipeline: str | None = None, limit: int = 20, uri: str | None = None) -> list[RunRow]:
    """Parent runs of kubesage pipelines across experiments, newest first.

    `pipeline` matches in either spelling (`customer_churn` or `customer-churn`, the IR name).
    """
    filters = [f"tags.`{t.TAG_KIND}` = 'pipeline'"]
    if pipeline:
        filters.append(f"tags.`{t.TAG_PIPELINE}` LIKE {_pipeline_pattern(pipeline)}")
    rows = [_row(run) for run in _search(" and ".join(filters), limit, uri)]
    return [r for r in rows if not pipeline or same_pipeline_name(r.pipeline, pipeline)]


def get_runs(run_ids: Sequence[str], uri: str | None = None) -> list[RunRow]:
    """The pipeline runs named by full ids or by the short ids `kubesage runs` prints."""
    recent = [_row(run) for run in _search(f"tags.`{t.TAG_KIND}` = 'pipeline'", PREFIX_SEARCH_LIMIT, uri)]
    found = []
    for wanted in run_ids:
        matches = [r for r in recent if r.run_id.startswith(wanted.lower())]
        if not matches:
            _refused_full_id(wanted, uri)
            raise ParameterError(f"no kubesage pipeline run with id {wanted!r}; `kubesage runs` lists the recent ones")
        if len(matches) > 1:
            raise ParameterError(f"run id {wanted!r} is ambiguous ({len(matches)} runs); give more characters")
        found.append(matches[0])
    return found


def _refused_full_id(run_id: str, uri: str | None) -> None:
    """A search lists only what the user may read (basic-auth filters it): for a full run id that it did not
    list, ask for the run itself, so a 403 says so (TrackingError) instead of "no such run"."""
    if not _FULL_RUN_ID.fullmatch(run_id.lower()):
        return
    from mlflow.exceptions import MlflowException

    from kubesage.tracking.mlflow_calls import access_refused

    uri = uri or t.tracking_uri()
    try:
        t.mlflow_client(uri).get_run(run_id.lower())
    except MlflowException as exc:
        refused = access_refused(exc, f"read run {run_id}", uri)
        if refused is not None:
            raise refused from exc


def _search(filter_string: str, limit: int, uri: str | None) -> list[Any]:
    from mlflow.entities import ViewType

    uri = uri or t.tracking_uri()
    client = t.mlflow_client(uri)
    try:
        experiments = [e.experiment_id for e in client.search_experiments(view_type=ViewType.ACTIVE_ONLY)]
        if not experiments:
            return []
        return list(
            client.search_runs(
                experiments, filter_string=filter_string, order_by=["attributes.start_time DESC"], max_results=limit
            )
        )
    except Exception as exc:
        raise TrackingError(f"cannot read runs from MLflow at {redact_uri(uri)}: {redact_text(str(exc))}") from exc


def _row(run: Any) -> RunRow:
    tags = run.data.tags
    version = tags.get(t.TAG_REGISTERED_VERSION)
    return RunRow(
        run_id=run.info.run_id,
        started=datetime.fromtimestamp(run.info.start_time / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S"),
        pipeline=tags.get(t.TAG_PIPELINE, "?"),
        runner=tags.get(t.TAG_RUNNER, "?"),
        status=run.info.status,
        registered=f"{tags.get(t.TAG_REGISTERED_NAME)} v{version}" if version else None,
        metrics=dict(sorted(run.data.metrics.items())),
        params=dict(sorted(run.data.params.items())),
    )
