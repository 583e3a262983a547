"""`kubesage runs` as tables: one that fits 100 columns, with the parameters that tell runs apart, and
a side-by-side comparison of chosen runs (the rows come from kubesage.tracking.history)."""

from __future__ import annotations

from collections.abc import Sequence

from rich import box
from rich.table import Table

from kubesage.tracking.history import SHORT_ID, RunRow

# The metrics the narrow table shows (rounded); --wide and --compare show every metric.
SUMMARY_METRICS: tuple[str, ...] = ("roc_auc", "f1", "accuracy")


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
