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
    """Write a synthetic churn CSV with the seed dataset's 21 columns (in chunks: memory stays bounded)."""
    import time

    from kubesage.churn.synthetic import CHUNK_ROWS, write_churn_csv

    started = time.perf_counter()

    def progress(done: int) -> None:
        if rows > CHUNK_ROWS:  # one line per chunk for a big file; nothing for the demo's
            rate = done / max(time.perf_counter() - started, 1e-9)
            err_console.print(f"  {done:,} of {rows:,} rows ({rate:,.0f} rows/s)", highlight=False)

    try:
        written = write_churn_csv(rows, seed, output_path, progress=progress)
    except KubesageError as exc:
        fail(exc)
    err_console.print(f"wrote {rows} rows to {written}")
