"""Recent pipeline runs read back from MLflow, for `kubesage runs`."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from kubesage import tracking as t
from kubesage.errors import ParameterError, TrackingError
from kubesage.redact import redact_text, redact_uri


@dataclass(frozen=True)
class RunRow:
    run_id: str
    started: str
    pipeline: str
    runner: str
    status: str
    registered: str | None
    metrics: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def filter_literal(value: str) -> str:
    """`value` as a string literal of an MLflow search filter, or ParameterError if it cannot be one.

    MLflow's filter grammar has no escape sequence (it strips the outer quotes), so a value is put
    in whichever quote it does not contain; one holding both quotes, a backslash (the tokenizer
    reads it as an escape) or a control character cannot be expressed and is refused.
    """
    if "\\" in value or ("'" in value and '"' in value) or any(ord(c) < 32 for c in value):
        raise ParameterError(
            f"pipeline name {value!r} cannot be searched for: it holds both quote characters, a backslash "
            "or a control character"
        )
    quote = '"' if "'" in value else "'"
    return f"{quote}{value}{quote}"


def recent_runs(pipeline: str | None = None, limit: int = 20, uri: str | None = None) -> list[RunRow]:
    """Parent runs of kubesage pipelines across experiments, newest first."""
    from mlflow import MlflowClient
    from mlflow.entities import ViewType

    uri = uri or t.tracking_uri()
    client = MlflowClient(tracking_uri=uri)
    filters = [f"tags.`{t.TAG_KIND}` = 'pipeline'"]
    if pipeline:
        filters.append(f"tags.`{t.TAG_PIPELINE}` = {filter_literal(pipeline)}")
    try:
        experiments = [e.experiment_id for e in client.search_experiments(view_type=ViewType.ACTIVE_ONLY)]
        found = (
            client.search_runs(
                experiments,
                filter_string=" and ".join(filters),
                order_by=["attributes.start_time DESC"],
                max_results=limit,
            )
            if experiments
            else []
        )
    except Exception as exc:
        raise TrackingError(f"cannot read runs from MLflow at {redact_uri(uri)}: {redact_text(str(exc))}") from exc
    rows = []
    for run in found:
        tags = run.data.tags
        version = tags.get(t.TAG_REGISTERED_VERSION)
        rows.append(
            RunRow(
                run_id=run.info.run_id,
                started=datetime.fromtimestamp(run.info.start_time / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S"),
                pipeline=tags.get(t.TAG_PIPELINE, "?"),
                runner=tags.get(t.TAG_RUNNER, "?"),
                status=run.info.status,
                registered=f"{tags.get(t.TAG_REGISTERED_NAME)} v{version}" if version else None,
                metrics=dict(sorted(run.data.metrics.items())),
            )
        )
    return rows
