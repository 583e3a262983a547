"""`kubesage drift`: captured traffic against the model's training baseline, in Model Monitor's formats.

Exit status: 0 no violations, 3 violations found (the files say which), 1 or 2 the check could not run.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from kubesage.cli.options import output_option
from kubesage.cli.output import err_console, fail
from kubesage.errors import KubesageError

if TYPE_CHECKING:
    from kubesage.monitoring.drift import DriftResult

VIOLATIONS_EXIT_CODE = 3


@click.command("drift")
@click.option("--captures", required=True, help="Capture folder (kubesage serve --capture DIR) or s3://bucket/prefix.")
@click.option("--model", "model", default=None, help="models:/NAME/VERSION or a model folder holding the baseline.")
@click.option("--baseline", "baseline", default=None, help="A folder with statistics.json and constraints.json.")
@click.option(
    "--output-dir",
    "output_dir",
    default="build/drift",
    show_default=True,
    type=click.Path(path_type=Path),
    help="Where statistics.json, constraint_violations.json, drift.json and report.html go.",
)
@click.option("--start", default=None, help="Window start, ISO 8601 (UTC unless a zone is given).")
@click.option("--end", default=None, help="Window end (exclusive), ISO 8601.")
@click.option("--last", default=None, help="Window: the last 30m / 24h / 7d (before --end, or now).")
@click.option("--track/--no-track", default=True, show_default=True, help="Record an MLflow run linked to --model.")
@click.option(
    "--cloudwatch-endpoint", default=None, help="Also put feature_baseline_drift_* metrics for this endpoint."
)
@click.option(
    "--schedule-name", default="kubesage-drift", show_default=True, help="CloudWatch MonitoringSchedule dimension."
)
@click.option(
    "--retrain-data",
    default=None,
    help="When a feature drifts, start the training pipeline on this data (its input_data), on the local runner.",
)
@click.option(
    "--retrain-pipeline", default="customer_churn", show_default=True, help="The pipeline --retrain-data starts."
)
@output_option
def drift_command(
    captures: str,
    model: str | None,
    baseline: str | None,
    output_dir: Path,
    start: str | None,
    end: str | None,
    last: str | None,
    track: bool,
    cloudwatch_endpoint: str | None,
    schedule_name: str,
    retrain_data: str | None,
    retrain_pipeline: str,
    output_format: str,
) -> None:
    """Compare captured requests with the training baseline: Model Monitor's statistics and violations,
    PSI, an HTML report; exit 3 when violations were found."""
    from kubesage.monitoring.drift import DriftRequest, run_drift
    from kubesage.monitoring.publish import ModelVersion, log_to_mlflow, put_cloudwatch_metrics
    from kubesage.monitoring.reading import window

    as_json = output_format == "json"
    if (model is None) == (baseline is None):
        raise click.UsageError("give exactly one of --model (models:/NAME/VERSION or a folder) or --baseline DIR")
    try:
        begin, finish = window(start, end, last)  # kubesage.monitoring.reading
        baseline_dir = Path(baseline) if baseline else _model_dir(model or "")
        result = run_drift(DriftRequest(captures, baseline_dir, output_dir, begin, finish))
        summary: dict[str, object] = {"status": "violations" if result.violations else "ok"}
        summary["output_dir"] = str(output_dir)
        summary["report"] = str(result.report)
        version = ModelVersion.from_uri(model) if model else None
        if track:
            summary["mlflow_run_id"] = log_to_mlflow(result, version, captures)
        if cloudwatch_endpoint:
            summary["cloudwatch_metrics"] = put_cloudwatch_metrics(result, cloudwatch_endpoint, schedule_name)
        if retrain_data and result.drifted_features:
            summary["retrain"] = _retrain(retrain_pipeline, retrain_data)
    except KubesageError as exc:
        fail(exc, as_json)
    if as_json:
        click.echo(json.dumps({**summary, **{k: v for k, v in result.summary().items() if k != "features"}}))
    else:
        _print_text(result, summary)
    sys.exit(VIOLATIONS_EXIT_CODE if result.violations else 0)


def _model_dir(model: str) -> Path:
    from kubesage.serving.model_source import resolve_model_dir

    return resolve_model_dir(model)


def _retrain(pipeline: str, data: str) -> dict[str, object]:
    """The closing of the loop: the training pipeline on fresh data, on the local runner."""
    from kubesage.sdk import run

    err_console.print(f"drift found: starting {pipeline} on {data}", highlight=False)
    outcome = run(pipeline, params={"input_data": data})
    return {
        "pipeline": pipeline,
        "status": outcome.status,
        "mlflow_run_id": outcome.mlflow_run_id,
        "registered_model_version": outcome.registered_model_version,
    }


def _print_text(result: DriftResult, summary: dict[str, object]) -> None:
    drifted = ", ".join(result.drifted_features) or "none"
    click.echo(
        f"drift: {result.rows} captured row(s) from {result.events} request(s), {len(result.malformed)} malformed "
        f"line(s); {len(result.violations)} violation(s); drifted: {drifted}"
    )
    for violation in result.violations[:10]:
        click.echo(f"  {violation.constraint_check_type}: {violation.feature_name}")
    click.echo(f"report: {result.report}")
    if "mlflow_run_id" in summary:
        click.echo(f"MLflow run: {summary['mlflow_run_id']}")
    retrain = summary.get("retrain")
    if isinstance(retrain, dict):
        click.echo(f"retraining: {retrain['pipeline']} {retrain['status']} (MLflow run {retrain['mlflow_run_id']})")
