"""`kubesage runs` and `kubesage ui`: the pipeline runs MLflow holds, as a table or in MLflow's UI."""

from __future__ import annotations

import json
import os
import sys

import click
from rich.console import Console

from kubesage.cli.options import output_option
from kubesage.cli.output import err_console, fail
from kubesage.errors import KubesageError
from kubesage.util.redact import redact_text, redact_uri


@click.command()
@click.option("--pipeline", "pipeline_name", default=None, help="Only runs of this pipeline (either spelling).")
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--wide", is_flag=True, help="Every metric and parameter, full run ids (needs a wide terminal).")
@click.option(
    "--compare", "compare_ids", multiple=True, metavar="RUN", help="Runs side by side (two or more; repeatable)."
)
@click.argument("more_ids", nargs=-1, metavar="[RUN...]")
@output_option
def runs(
    pipeline_name: str | None,
    limit: int,
    wide: bool,
    compare_ids: tuple[str, ...],
    more_ids: tuple[str, ...],
    output_format: str,
) -> None:
    """Recent pipeline runs from MLflow: metrics and the parameters that differ.

    `kubesage runs --compare RUN RUN...` shows two or more runs (full or short ids) side by side.
    """
    from kubesage.cli.run_history import compare_table, runs_table
    from kubesage.tracking.history import get_runs, recent_runs

    as_json = output_format == "json"
    wanted = (*compare_ids, *more_ids)
    try:
        if more_ids and not compare_ids:
            raise click.UsageError("run ids go with --compare: kubesage runs --compare RUN RUN...")
        if wanted and len(wanted) < 2:
            raise click.UsageError("--compare needs two or more run ids")
        rows = get_runs(wanted) if wanted else recent_runs(pipeline_name, limit)
    except KubesageError as exc:
        fail(exc, as_json)
    if as_json:
        click.echo(redact_text(json.dumps([r.to_dict() for r in rows], indent=2)))
        return
    if not rows:
        hint = f" of pipeline {pipeline_name}" if pipeline_name else ""
        err_console.print(f"no runs{hint} yet; start one with `kubesage run PIPELINE`")
        return
    Console().print(compare_table(rows) if wanted else runs_table(rows, wide=wide))


@click.command()
@click.option("--port", type=int, default=5000, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True)
def ui(port: int, host: str) -> None:
    """Open the MLflow UI on the tracking store in force (the embedded SQLite store by default)."""
    from kubesage.tracking import tracking_uri

    uri = tracking_uri()
    if not uri.startswith("sqlite:"):
        err_console.print(f"MLFLOW_TRACKING_URI is {redact_uri(uri)}: open that server's UI in a browser.")
        return
    err_console.print(f"MLflow UI on http://{host}:{port} for {uri}", highlight=False)
    for name, url in _experiment_urls(uri, f"http://{host}:{port}"):
        err_console.print(f"  {name}: {url}", highlight=False, soft_wrap=True)
    command = ["mlflow", "ui", "--backend-store-uri", uri, "--host", host, "--port", str(port), "--workers", "1"]
    os.execvp(sys.executable, [sys.executable, "-m", *command])


def _experiment_urls(uri: str, base: str) -> list[tuple[str, str]]:
    """Each kubesage experiment's runs table, in the layout kubesage keeps (runner, metrics, params)."""
    from kubesage.tracking import mlflow_client
    from kubesage.tracking.ui_view import VIEW_TAG, runs_url

    try:
        experiments = mlflow_client(uri).search_experiments()
    except Exception:  # the UI still starts; it shows the store's own error
        return []
    return [(e.name, runs_url(base, e.experiment_id)) for e in experiments if VIEW_TAG in e.tags]
