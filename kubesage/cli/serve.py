"""`kubesage serve`: the model server (SageMaker's /ping and /invocations) on this host, without Docker."""

from __future__ import annotations

import os
from pathlib import Path

import click

from kubesage.cli.output import err_console, fail
from kubesage.errors import KubesageError


@click.command()
@click.option(
    "--model-dir", "model_dir", default=None, help="A model directory (xgboost-model.ubj [+ feature_schema.json])."
)
@click.option("--model", "model_uri", default=None, help="An MLflow model URI, e.g. models:/customer-churn/1.")
@click.option("--host", default=None, help="Interface to listen on (default: $KUBESAGE_SERVE_HOST or 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (default: $SAGEMAKER_BIND_TO_PORT or 8080).")
@click.option("--workers", type=click.IntRange(min=1), default=None, help="Worker processes (default: CPUs).")
@click.option("--threads", type=click.IntRange(min=1), default=None, help="daal4py threads per worker.")
@click.option(
    "--capture",
    "capture_dir",
    default=None,
    type=click.Path(file_okay=False),
    help="Write SageMaker data-capture records of the requests here (ENDPOINT/VARIANT/yyyy/mm/dd/hh/*.jsonl).",
)
@click.option("--capture-percent", type=float, default=100.0, show_default=True, help="Share of requests captured.")
@click.option("--endpoint-name", default="local", show_default=True, help="The ENDPOINT folder of the captures.")
def serve(
    model_dir: str | None,
    model_uri: str | None,
    host: str | None,
    port: int | None,
    workers: int | None,
    threads: int | None,
    capture_dir: str | None,
    capture_percent: float,
    endpoint_name: str,
) -> None:
    """Serve a model over SageMaker's /ping and /invocations contract, without Docker."""
    from kubesage.churn.lean_import import import_xgboost_without_scikit_learn

    import_xgboost_without_scikit_learn()  # before anything imports XGBoost: a second off start-up
    from kubesage.monitoring.capture import CaptureConfig
    from kubesage.serving.model_source import resolve_model_dir
    from kubesage.serving.server import serve as run_server

    if (model_dir is None) == (model_uri is None):
        raise click.UsageError("give exactly one of --model-dir DIR or --model URI")
    err_console.print(_request_examples(model_uri or model_dir or "", port), highlight=False, soft_wrap=True)
    try:
        capture = CaptureConfig(Path(capture_dir).resolve(), capture_percent, endpoint_name) if capture_dir else None
        run_server(
            resolve_model_dir(model_dir or model_uri or ""),
            host=host,
            port=port,
            workers=workers,
            threads=threads,
            capture=capture,
        )
    except KubesageError as exc:
        fail(exc)


def _request_examples(model: str, port: int | None) -> str:
    """Requests that work when pasted: raw records (the model's schema turns them into features) and CSV."""
    from kubesage.serving.server import DEFAULT_PORT, ENV_PORT

    shown = port or int(os.environ.get(ENV_PORT) or DEFAULT_PORT)
    url = f"localhost:{shown}/invocations"
    return "\n".join(
        [
            f"serving {model} on port {shown} once /ping answers 200 (Ctrl-C stops). Try, with your churn CSV:",
            "  kubesage features records churn.csv --rows 2 --output request.json",
            f"  curl -s {url} -H 'Content-Type: application/json' --data-binary @request.json",
            f"  kubesage features transform churn.csv --rows 2 --model {model} --output vectors.csv",
            f"  curl -s {url} -H 'Content-Type: text/csv' --data-binary @vectors.csv",
        ]
    )
