"""Benchmark: `kubesage score` on generated customer bases, end to end, with the process tree's peak memory.

For each size (default 1M and 10M rows): `kubesage data generate` writes the CSV (timed, its peak
tree RSS sampled), the same rows are written once as Parquet (typed columns, as a warehouse export
would be), then `kubesage score` runs as its own process on each, sampled every 0.1 s (RSS summed
over the process tree). Beside it, in this process, the same chunks of the Parquet file are encoded
once and scored by daal4py (what `kubesage score` uses) and by XGBoost's own `inplace_predict`, so
the engines compare on identical input; the largest probability difference between them is shown.

The model is trained from the real churn data the way the pipeline does (bench_inference.py).

    nice -n 10 .venv/bin/python bench/bench_scoring.py [--rows 1000000 10000000] [--work DIR]
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from churn_model import train_churn_model
from proctree import run_sampled

from kubesage.churn.modelio import booster_probabilities, load_booster
from kubesage.churn.scoring import DEFAULT_CHUNK_ROWS, encode_chunk, load_scoring_model

KUBESAGE = [sys.executable, "-m", "kubesage.cli"]
GIB = 1024**3


def to_parquet(csv_path: Path, parquet_path: Path) -> None:
    import pyarrow.csv as pa_csv
    import pyarrow.parquet as pq

    reader = pa_csv.open_csv(csv_path, read_options=pa_csv.ReadOptions(block_size=64 << 20))
    with pq.ParquetWriter(parquet_path, reader.schema) as writer:
        for batch in reader:
            writer.write_batch(batch)


def engines(parquet_path: Path, model_dir: Path) -> tuple[float, float, float, int]:
    """daal4py and XGBoost rows/s on the same encoded chunks, and their largest difference."""
    import pyarrow.parquet as pq

    model = load_scoring_model(model_dir, 0.5)
    booster = load_booster(model_dir)
    daal_s = xgb_s = 0.0
    diff = 0.0
    rows = 0
    for batch in pq.ParquetFile(parquet_path).iter_batches(batch_size=DEFAULT_CHUNK_ROWS):
        features = encode_chunk(batch, model.schema).features
        start = time.perf_counter()
        ours = model.model.probabilities(features)
        daal_s += time.perf_counter() - start
        start = time.perf_counter()  # each engine's own layout conversion is timed with it
        theirs = booster_probabilities(booster, np.ascontiguousarray(features))
        xgb_s += time.perf_counter() - start
        diff = max(diff, float(np.max(np.abs(ours - theirs))))
        rows += batch.num_rows
    return rows / daal_s, rows / xgb_s, diff, rows


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--work", type=Path, default=None, help="Keep data here (reused when present).")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="kubesage-bench-score-"))
    work.mkdir(parents=True, exist_ok=True)
    model_dir = train_churn_model(work, decision_threshold=0.5)
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    lines = [
        "| rows | step | process seconds | rows/s | scoring loop alone (no start-up) | peak tree RSS |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    engine_lines = [
        "| rows | daal4py rows/s | XGBoost inplace_predict rows/s | ratio | max abs diff |",
        "| --- | --- | --- | --- | --- |",
    ]
    for rows in args.rows:
        csv_path = work / f"customers-{rows}.csv"
        parquet_path = work / f"customers-{rows}.parquet"
        if not csv_path.exists():
            gen = run_sampled(
                [*KUBESAGE, "data", "generate", "--rows", str(rows), "--seed", "11", "--output", str(csv_path)]
            )
            if gen.returncode:
                print(gen.output)
                return 1
            lines.append(
                f"| {rows:,} | data generate | {gen.seconds:.1f} | {rows / gen.seconds:,.0f} | "
                f"| {gen.peak_rss / GIB:.2f} GiB |"
            )
        if not parquet_path.exists():
            to_parquet(csv_path, parquet_path)
        for label, source in (("score CSV", csv_path), ("score Parquet", parquet_path)):
            out = work / f"scores-{rows}-{source.suffix.lstrip('.')}.csv"
            run = run_sampled(
                [*KUBESAGE, "score", "--model", str(model_dir), "--input", str(source), "--output", str(out)]
            )
            if run.returncode:
                print(run.output)
                return 1
            inner = re.search(r"in ([0-9.]+) s \(([0-9,]+) rows/s\)", run.output)
            scoring = f"{inner.group(1)} s, {inner.group(2)} rows/s" if inner else "?"
            lines.append(
                f"| {rows:,} | {label} | {run.seconds:.1f} | {rows / run.seconds:,.0f} | {scoring} "
                f"| {run.peak_rss / GIB:.2f} GiB |"
            )
        daal, xgb, diff, scored = engines(parquet_path, model_dir)
        engine_lines.append(f"| {scored:,} | {daal:,.0f} | {xgb:,.0f} | {daal / xgb:.1f}x | {diff:.1e} |")
        print(f"done {rows:,} rows, load average {os.getloadavg()[0]:.1f}", flush=True)
    print("\n".join(lines))
    print()
    print("\n".join(engine_lines))
    print(f"load average at the end {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
