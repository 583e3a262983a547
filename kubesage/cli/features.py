"""`kubesage features`: request bodies for a served model, made from a churn CSV.

`records` writes raw-record JSON (`{"records": [...]}`, the label dropped), which a server whose
model carries its feature schema accepts as it is. `transform` writes the engineered feature vectors
(one CSV line each, no header, no label) through the model's own feature schema, with the same
transform the server and the pipeline use; that is the `text/csv` format SageMaker's XGBoost takes.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

import click

from kubesage.cli.output import fail
from kubesage.errors import DataError, KubesageError, SchemaError


def read_records(path: Path, rows: int | None = None) -> list[dict[str, Any]]:
    """Raw churn records from a CSV with a header: numbers as numbers (empty = null), the label dropped."""
    from kubesage.churn.features import LABEL_COLUMN

    if not path.is_file():
        raise DataError(f"{path} does not exist; pass a churn CSV with a header row")
    records: list[dict[str, Any]] = []
    with path.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            if rows is not None and len(records) >= rows:
                break
            records.append({key: _value(key, text) for key, text in row.items() if key and key != LABEL_COLUMN})
    if not records:
        raise DataError(f"{path} has no data rows")
    return records


def _value(column: str, text: str | None) -> Any:
    from kubesage.churn.features import NUMERIC_COLUMNS

    if text is None or not text.strip():
        return None
    if column in NUMERIC_COLUMNS:
        try:
            return float(text)
        except ValueError:
            return text  # left as it is: the server names the column and row it cannot read
    return text


def feature_lines(records: list[dict[str, Any]], model: str) -> list[str]:
    """One CSV line of engineered features per record, through the model's feature schema."""
    from kubesage.churn.features import transform_records
    from kubesage.churn.modelio import load_schema_if_present
    from kubesage.serving.model_source import resolve_model_dir

    schema = load_schema_if_present(resolve_model_dir(model))
    if schema is None:
        raise SchemaError(f"model {model} has no feature_schema.json, so kubesage cannot build its features")
    matrix = transform_records(records, schema)
    return [",".join(format(float(v), ".17g") for v in row) for row in matrix]


@click.group("features")
def features() -> None:
    """Request bodies for a served model: raw records or engineered feature vectors."""


@features.command("records")
@click.argument("data", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--rows", type=click.IntRange(min=1), default=2, show_default=True)
@click.option("--output", "output_path", type=click.Path(dir_okay=False, path_type=Path), default=None)
def records_command(data: Path, rows: int, output_path: Path | None) -> None:
    """Write DATA's first rows as a raw-record JSON request ({"records": [...]}, label dropped)."""
    try:
        body = json.dumps({"records": read_records(data, rows)}, indent=1)
    except KubesageError as exc:
        fail(exc)
    _write(body, output_path, f"{rows} record(s)")


@features.command("transform")
@click.argument("data", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--model", "model", required=True, help="models:/NAME/VERSION, a run's model URI or a model directory.")
@click.option("--rows", type=click.IntRange(min=1), default=None, help="Only the first ROWS rows.")
@click.option("--output", "output_path", type=click.Path(dir_okay=False, path_type=Path), default=None)
def transform_command(data: Path, model: str, rows: int | None, output_path: Path | None) -> None:
    """Write DATA as feature vectors (CSV, no header, no label) for a text/csv request to MODEL."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # keep the output to one line
    try:
        lines = feature_lines(read_records(data, rows), model)
    except KubesageError as exc:
        fail(exc)
    _write("\n".join(lines), output_path, f"{len(lines)} feature vector(s)")


def _write(body: str, output_path: Path | None, what: str) -> None:
    if output_path is None:
        click.echo(body)
        return
    output_path.parent.mkdir(parents=True, exist_ok=True)
    output_path.write_text(body + "\n", encoding="utf-8")
    click.echo(f"wrote {what} to {output_path}", err=True)
