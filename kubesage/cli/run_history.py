"""Recent pipeline runs read back from MLflow, for `kubesage runs`: a table that fits 100 columns,
the parameters that tell runs apart, and a side-by-side comparison of chosen runs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from rich import box
from rich.table import Table

from kubesage import tracking as t
from kubesage.errors import ParameterError, TrackingError
from kubesage.tracking.filters import filter_literal
from kubesage.util.redact import redact_text, redact_uri

# The metrics the narrow table shows (rounded); --wide and --compare show every metric.
SUMMARY_METRICS: tuple[str, ...] = ("roc_auc", "f1", "accuracy")
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


def _pipeline_pattern(pipeline: str) -> str:
    """A LIKE literal matching both spellings (`_` matches any one character, `-` included); rows are
    then kept only when their name is the same pipeline, so `_`'s looseness never shows."""
    return filter_literal(pipeline.replace("-", "_"))


def recent_runs(pipeline: str | None = None, limit: int = 20, uri: str | None = None) -> list[RunRow]:
    """Parent runs of kubesage pipelines across experiments, newest first.

    `pipeline` matches in either spelling (`customer_churn` or `customer-churn`, the IR name).
    """
    from kubesage.ir.source import same_pipeline_name

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
            raise ParameterError(f"no kubesage pipeline run with id {wanted!r}; `kubesage runs` lists the recent ones")
        if len(matches) > 1:
            raise ParameterError(f"run id {wanted!r} is ambiguous ({len(matches)} runs); give more characters")
        found.append(matches[0])
    return found


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


# --- presentation ---------------------------------------------------------------------------------
def differing_params(rows: Sequence[RunRow]) -> list[str]:
    """Parameter names whose value is not the same in every row (absent counts as a value)."""
    names = sorted({name for r in rows for name in r.params})
    return [name for name in names if len({r.params.get(name) for r in rows}) > 1]


def _number(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _status(status: str) -> str:
    return {"FINISHED": "ok", "FAILED": "failed", "KILLED": "stopped", "RUNNING": "running"}.get(status, status.lower())


def runs_table(rows: Sequence[RunRow], wide: bool = False) -> Table:
    """Newest first. Narrow: short id, start, runner, status, model, 3 metrics, differing parameters."""
    pipelines = {r.pipeline for r in rows}
    metric_names = sorted({m for r in rows for m in r.metrics}) if wide else list(SUMMARY_METRICS)
    param_names = sorted({p for r in rows for p in r.params}) if wide else differing_params(rows)
    table = Table(
        title="kubesage runs (newest first)", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False
    )
    table.add_column("run id", no_wrap=True)
    table.add_column("started", no_wrap=True)
    if wide or len(pipelines) > 1:
        table.add_column("pipeline", no_wrap=True)
    table.add_column("runner", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("model", no_wrap=True)
    for name in metric_names:
        table.add_column(name, justify="right", no_wrap=True)
    for name in param_names:
        table.add_column(name, overflow="fold")
    for r in rows:
        cells = [r.run_id if wide else r.run_id[:SHORT_ID], r.started if wide else r.started[5:16]]
        if wide or len(pipelines) > 1:
            cells.append(r.pipeline)
        model = r.registered if wide else (r.registered.rsplit(" ", 1)[-1] if r.registered else None)
        cells += [r.runner, _status(r.status), model or "-"]
        cells += [_number(r.metrics.get(m), 4 if wide else 3) for m in metric_names]
        cells += [r.params.get(p, "-") for p in param_names]
        table.add_row(*cells)
    if not wide and not param_names and len(rows) > 1:
        table.caption = "the listed runs share every parameter; --wide shows them all"
    return table


def compare_table(rows: Sequence[RunRow]) -> Table:
    """Runs side by side, one column each; rows that differ are marked with `*`."""
    table = Table(title="kubesage runs compared (* differs)", title_justify="left", box=box.SIMPLE_HEAD)
    table.add_column("", no_wrap=True)
    table.add_column("", no_wrap=True)
    for r in rows:
        table.add_column(r.run_id[:SHORT_ID], justify="right", overflow="fold")
    fields: list[tuple[str, list[str]]] = [
        ("pipeline", [r.pipeline for r in rows]),
        ("runner", [r.runner for r in rows]),
        ("status", [_status(r.status) for r in rows]),
        ("started", [r.started for r in rows]),
        ("model", [r.registered or "-" for r in rows]),
    ]
    for m in sorted({m for r in rows for m in r.metrics}):
        fields.append((m, [_number(r.metrics.get(m), 4) for r in rows]))
    for p in sorted({p for r in rows for p in r.params}):
        fields.append((f"param {p}", [r.params.get(p, "-") for r in rows]))
    for name, values in fields:
        differs = len(set(values)) > 1 and name != "started"
        style = "bold yellow" if differs else None
        table.add_row("*" if differs else "", name, *values, style=style)
    return table
