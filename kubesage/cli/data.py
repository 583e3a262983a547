"""`kubesage data`: data utilities (a synthetic churn CSV)."""

from __future__ import annotations

from pathlib import Path

import click

from kubesage.cli.output import err_console, fail
from kubesage.errors import KubesageError


@click.group()
def data() -> None:
    """Data utilities."""


@data.command("generate")
@click.option("--rows", type=click.IntRange(min=1), default=5000, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--output", "output_path", required=True, type=click.Path(dir_okay=False, path_type=Path))
def data_generate(rows: int, seed: int, output_path: Path) -> None:
    """Write a synthetic churn CSV with the seed dataset's 21 columns."""
    from kubesage.churn.synthetic import write_churn_csv

    try:
        written = write_churn_csv(rows, seed, output_path)
    except KubesageError as exc:
        fail(exc)
    err_console.print(f"wrote {rows} rows to {written}")
