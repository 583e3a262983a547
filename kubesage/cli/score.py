"""`kubesage score`: score a whole customer base (CSV or Parquet, local or s3://) with a registered model.

The work is kubesage.churn.scoring (chunks through the model's own feature schema and daal4py); this
module resolves the model (MLflow URI or directory), its decision threshold (the evaluation.json
registered with it, unless --threshold), downloads an s3:// input and uploads an s3:// output, and
prints progress on stderr.

`--runner sagemaker` or `sagemaker-local` scores the same rows as a SageMaker Batch Transform of the
kubesage image instead (kubesage.runners.sagemaker.transform); the output has the same columns.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from kubesage.cli.options import options_for, runner_option_flags
from kubesage.cli.output import err_console, fail, stdout_to_stderr
from kubesage.errors import KubesageError

if TYPE_CHECKING:
    from kubesage.churn.scoring import ScoreSummary
    from kubesage.runners.sagemaker.transform import ScoreRows, TransformSettings

PROGRESS_EVERY_SECONDS = 5.0
# Where scoring can run: in this process, or as a SageMaker Batch Transform (on AWS or in local mode).
SCORE_RUNNERS = ("local", "sagemaker", "sagemaker-local")


@click.command("score")
@click.option("--model", "model", required=True, help="models:/NAME/VERSION, a run's model URI or a model directory.")
@click.option(
    "--input", "input_uri", required=True, help="Raw customer records: CSV with a header or Parquet; a path or s3://."
)
@click.option(
    "--output", "output_uri", required=True, help="Scores: CSV, or Parquet if it ends in .parquet; a path or s3://."
)
@click.option(
    "--rejects",
    "rejects_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write bad rows (line, column, value, reason) here and score the rest; without it a bad row fails the job.",
)
@click.option("--id-column", "id_columns", multiple=True, help="Input column(s) copied to the output (default: Phone).")
@click.option("--threshold", type=float, default=None, help="Decision threshold (default: the one evaluate used).")
@click.option("--chunk-rows", type=click.IntRange(min=1), default=None, help="Rows scored at a time (bounds memory).")
@click.option("--max-rejects", type=click.IntRange(min=0), default=None, help="With --rejects: fail above this many.")
@click.option(
    "--runner",
    type=click.Choice(SCORE_RUNNERS),
    default="local",
    show_default=True,
    help="local: in this process; sagemaker / sagemaker-local: a SageMaker Batch Transform of the kubesage image "
    "(on AWS, or in the SageMaker SDK's local mode with Docker).",
)
@click.option("--instance-type", default=None, help="sagemaker: the transform's instance type (default ml.m5.large).")
@click.option("--instance-count", type=int, default=1, show_default=True, help="sagemaker: transform instances.")
@click.option(
    "--max-payload-mb",
    type=int,
    default=6,
    show_default=True,
    help="sagemaker runners: MaxPayloadInMB, the largest mini-batch sent to the container (1-6: the image's limit).",
)
@click.option("--job-name", default=None, help="sagemaker runners: the transform job's name (default: generated).")
@runner_option_flags
def score(
    model: str,
    input_uri: str,
    output_uri: str,
    rejects_path: Path | None,
    id_columns: tuple[str, ...],
    threshold: float | None,
    chunk_rows: int | None,
    max_rejects: int | None,
    runner: str,
    instance_type: str | None,
    instance_count: int,
    max_payload_mb: int,
    job_name: str | None,
    runner_options: tuple[str, ...],
    **flags: Any,
) -> None:
    """Score every customer in INPUT: id columns, churn_probability and churn (at the model's threshold)."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    try:
        if runner == "local":
            if any(v is not None for v in flags.values()) or runner_options:
                raise click.UsageError("runner flags (--image, --role, --option, ...) need --runner sagemaker[-local]")
            summary_line = run_score(
                model, input_uri, output_uri, rejects_path, list(id_columns) or None, threshold, chunk_rows, max_rejects
            )
        else:
            from kubesage.runners.sagemaker.transform import ScoreRows, TransformSettings

            rows = ScoreRows(tuple(id_columns) or None, rejects_path, threshold, chunk_rows, max_rejects)
            settings = TransformSettings(instance_type, instance_count, max_payload_mb, job_name)
            options = options_for(runner, flags, runner_options)
            summary_line = run_transform_score(model, input_uri, output_uri, runner, options, settings, rows)
    except KubesageError as exc:
        fail(exc)
    err_console.print(summary_line, highlight=False, soft_wrap=True)


def run_transform_score(
    model: str,
    input_uri: str,
    output_uri: str,
    runner: str,
    options: dict[str, Any],
    settings: TransformSettings,
    rows: ScoreRows,
) -> str:
    """Resolve the model, its threshold and the input, then score them as a Batch Transform; the summary line."""
    from kubesage.churn.data import resolve_input, write_target
    from kubesage.deploy.bundle import read_threshold
    from kubesage.runners.sagemaker.transform import ScoreJob, backend_for, encode_input, run_transform
    from kubesage.serving.model_source import resolve_model_dir

    settings.check()
    write_target(output_uri)  # an unusable output URI is refused before anything runs
    with tempfile.TemporaryDirectory(prefix="kubesage-transform-") as work:
        model_dir = resolve_model_dir(model, Path(work) / "model")
        chosen = rows.threshold if rows.threshold is not None else read_threshold(model_dir, model)
        job = ScoreJob(model_dir, chosen, resolve_input(input_uri, Path(work) / "input"), output_uri, rows)
        files = encode_input(job, Path(work), _print_line)
        backend, validated = backend_for(runner, options)
        local = runner == "sagemaker-local"
        # Local mode streams the container's log to stdout: it belongs with the progress, on stderr.
        with stdout_to_stderr() if local else nullcontext():
            result = run_transform(
                job,
                files,
                validated,
                settings,
                backend,
                Path(work),
                _print_line,
                poll_seconds=1.0 if local else float(getattr(validated, "poll_seconds", 15.0)),
                timeout_seconds=float(getattr(validated, "timeout_seconds", 6 * 3600)),
                local=local,
            )
    rejected = f", {result.rows_rejected:,} rejected (listed in {rows.rejects_path})" if rows.rejects_path else ""
    return (
        f"scored {result.rows_scored:,} of {result.rows_read:,} rows{rejected} by transform job {result.job_name} "
        f"in {result.seconds:.1f} s, {result.positives:,} at or above threshold {chosen:g} -> {output_uri}"
    )


def _print_line(line: str) -> None:
    err_console.print(f"  {line}", highlight=False, soft_wrap=True)


def run_score(
    model: str,
    input_uri: str,
    output_uri: str,
    rejects_path: Path | None,
    id_columns: list[str] | None,
    threshold: float | None,
    chunk_rows: int | None,
    max_rejects: int | None,
) -> str:
    """Resolve model, threshold and files, score, upload; the summary line to print."""
    from kubesage.churn.lean_import import import_xgboost_without_scikit_learn

    import_xgboost_without_scikit_learn()  # before anything imports XGBoost: a second off start-up

    from kubesage.churn import scoring
    from kubesage.churn.data import resolve_input, upload_output, write_target
    from kubesage.deploy.bundle import read_threshold
    from kubesage.serving.model_source import resolve_model_dir

    upload = write_target(output_uri) is not None
    with tempfile.TemporaryDirectory(prefix="kubesage-score-") as work:
        model_dir = resolve_model_dir(model, Path(work) / "model")
        chosen = threshold if threshold is not None else read_threshold(model_dir, model)
        scoring_model = scoring.load_scoring_model(model_dir, chosen)
        local_input = resolve_input(input_uri, Path(work) / "input")
        local_output = Path(work) / Path(output_uri.rstrip("/")).name if upload else Path(output_uri)
        summary = scoring.score_file(
            local_input,
            local_output,
            scoring_model,
            id_columns=id_columns,
            rejects_path=rejects_path,
            chunk_rows=chunk_rows or scoring.DEFAULT_CHUNK_ROWS,
            max_rejects=scoring.DEFAULT_MAX_REJECTS if max_rejects is None else max_rejects,
            progress=_progress_printer(),
        )
        if upload:
            upload_output(local_output, output_uri)
    rejected = f", {summary.rows_rejected:,} rejected (listed in {rejects_path})" if rejects_path else ""
    return (
        f"scored {summary.rows_scored:,} of {summary.rows_read:,} rows{rejected} in "
        f"{summary.seconds:.1f} s ({summary.rows_per_second:,.0f} rows/s), {summary.positives:,} at or above "
        f"threshold {chosen:g} -> {output_uri}"
    )


def _progress_printer() -> Callable[[ScoreSummary], None]:
    """Rows done and the rate so far, every few seconds (a 10M-row job runs for tens of seconds)."""
    last = [time.monotonic()]

    def report(summary: ScoreSummary) -> None:
        now = time.monotonic()
        if now - last[0] >= PROGRESS_EVERY_SECONDS:
            last[0] = now
            err_console.print(
                f"  scored {summary.rows_read:,} rows ({summary.rows_per_second:,.0f} rows/s)", highlight=False
            )

    return report
