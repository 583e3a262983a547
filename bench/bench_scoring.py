"""Benchmark: `kubesage score` on generated customer bases, end to end, with the process tree's peak memory.

For each size (default 1M and 10M rows): `kubesage data generate` writes the CSV (timed, its peak
tree RSS sampled), the same rows are written once as Parquet (typed columns, as a warehouse export
would be), then `kubesage score` runs as its own process on each, sampled every 0.1 s (RSS summed
over the process tree; it includes the pages of the memory-mapped input, which are page cache), with
its CPU seconds and the load average beside every rate (the machine is shared).

Then, in this process, the Parquet file's chunks go through the stages one after another, each
timed alone (wall and CPU seconds of the process, all threads): read, encode (validation and the
feature matrix), predict (daal4py's float32 path, what `kubesage score` runs), write (CSV). On the
same chunks: XGBoost's own `inplace_predict` beside daal4py, and evaluate's path (Daal4pyModel.
probabilities) as the reference: the largest difference of each, and of the score process's output
file, from evaluate's probabilities over every row.

The model is trained from the real churn data the way the pipeline does (churn_model.py).

With `--baseline ../main` (another checkout with its own .venv), the same command from that tree runs
beside this tree's, interleaved (`--repeat` times each): on a 2-row file (the process's start-up) and on
the largest size's Parquet file, the whole process timed.

    nice -n 10 .venv/bin/python bench/bench_scoring.py [--rows 1000000 10000000] [--work DIR]
        [--baseline ../main --repeat 5]
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from churn_model import train_churn_model
from proctree import run_sampled

from kubesage.churn.modelio import booster_probabilities, load_booster
from kubesage.churn.scoring import encode_chunk, load_scoring_model, probabilities, read_chunks

KUBESAGE = [sys.executable, "-m", "kubesage.cli"]
GIB = 1024**3


def to_parquet(csv_path: Path, parquet_path: Path) -> None:
    import pyarrow.csv as pa_csv
    import pyarrow.parquet as pq

    reader = pa_csv.open_csv(csv_path, read_options=pa_csv.ReadOptions(block_size=64 << 20))
    with pq.ParquetWriter(parquet_path, reader.schema) as writer:
        for batch in reader:
            writer.write_batch(batch)


@dataclass
class Stages:
    """Per-stage wall and CPU seconds over one pass, and the probabilities of each engine."""

    rows: int = 0
    wall: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))
    cpu: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))
    ours: list[np.ndarray] = field(default_factory=list)
    xgboost: list[np.ndarray] = field(default_factory=list)
    evaluate: list[np.ndarray] = field(default_factory=list)


STAGES = ("read", "encode", "predict", "write", "XGBoost inplace_predict", "evaluate's path (float64)")


def cpu_seconds(who: int = resource.RUSAGE_SELF) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def stages(source: Path, model_dir: Path, out: Path) -> Stages:
    """The scoring loop's stages one after another on `source`, each timed alone."""
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    model = load_scoring_model(model_dir, 0.5)
    booster = load_booster(model_dir)
    result = Stages()
    chunks = read_chunks(source, model.schema, ["Phone"])
    writer = None

    def timed(stage: str, work: Callable[..., Any], *args: Any) -> Any:
        wall, cpu = time.perf_counter(), cpu_seconds()
        answer = work(*args)
        result.wall[stage] += time.perf_counter() - wall
        result.cpu[stage] += cpu_seconds() - cpu
        return answer

    while (batch := timed("read", next, chunks, None)) is not None:
        features = timed("encode", encode_chunk, batch, model.schema).features
        probs = timed("predict", probabilities, model, features)
        table = pa.Table.from_arrays(
            [batch.column("Phone"), pa.array(probs), pa.array((probs >= 0.5).astype(np.int8))],
            names=["Phone", "churn_probability", "churn"],
        )
        if writer is None:
            writer = pa_csv.CSVWriter(out, table.schema)
        timed("write", writer.write_table, table)
        result.xgboost.append(timed(STAGES[4], booster_probabilities, booster, features))
        result.evaluate.append(timed(STAGES[5], model.model.probabilities, features))
        result.ours.append(probs)
        result.rows += batch.num_rows
    if writer is not None:
        writer.close()
    return result


def largest_difference(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b))) if len(a) else 0.0


def load() -> str:
    return f"{os.getloadavg()[0]:.1f}"


def compare_processes(baseline: Path, model_dir: Path, work: Path, rows: int, repeat: int) -> list[str]:
    """`kubesage score` from this tree and from `baseline`, interleaved: start-up (2 rows) and `rows` rows."""
    import pyarrow.parquet as pq

    two_rows = work / "customers-2.parquet"
    pq.write_table(pq.read_table(work / f"customers-{rows}.parquet").slice(0, 2), two_rows)
    # Each tree's own console script: `python -m` would put the working directory (this tree) first on sys.path.
    here = Path(__file__).resolve().parents[1]
    trees = {
        "this tree": [str(here / ".venv/bin/kubesage")],
        "baseline": [str(baseline.resolve() / ".venv/bin/kubesage")],
    }
    seconds: dict[tuple[str, int], list[float]] = {}
    for _ in range(repeat):
        for source, n in ((two_rows, 2), (work / f"customers-{rows}.parquet", rows)):
            for tree, command in trees.items():
                out = work / f"compare-{n}.csv"
                run = run_sampled(
                    [
                        *command,
                        "score",
                        "--model",
                        str(model_dir),
                        "--input",
                        str(source),
                        "--output",
                        str(out),
                    ]
                )
                if run.returncode:
                    raise SystemExit(run.output)
                seconds.setdefault((tree, n), []).append(run.seconds)
    table = [
        f"| score Parquet, whole process ({repeat} each, interleaved, load {load()}) | this tree | baseline | ratio |",
        "| --- | --- | --- | --- |",
    ]
    for n in (2, rows):
        ours, theirs = (float(np.median(seconds[(tree, n)])) for tree in trees)
        rate = f" ({n / ours:,.0f} vs {n / theirs:,.0f} rows/s)" if n > 2 else " (start-up)"
        spread = f"{min(seconds[('this tree', n)]):.2f}-{max(seconds[('this tree', n)]):.2f}"
        table.append(
            f"| {n:,} rows{rate} | median {ours:.2f} s ({spread}) | median {theirs:.2f} s | {ours / theirs:.2f} |"
        )
    return table


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--work", type=Path, default=None, help="Keep data here (reused when present).")
    parser.add_argument("--baseline", type=Path, default=None, help="Another checkout to compare processes with.")
    parser.add_argument("--repeat", type=int, default=5, help="Processes per tree in the comparison.")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="kubesage-bench-score-"))
    work.mkdir(parents=True, exist_ok=True)
    model_dir = train_churn_model(work, decision_threshold=0.5)
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    lines = [
        "| rows | command | process s | loop (the command's own figure) | CPU s | peak tree RSS | load |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    stage_lines = [
        "| rows | stage | wall s per 1M rows | CPU s per 1M rows | rows/s alone | load |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    parity_lines = [
        "| rows | compared with evaluate's probabilities (Daal4pyModel.probabilities) | max abs diff |",
        "| --- | --- | --- |",
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
                f"| {rows:,} | data generate | {gen.seconds:.1f} | {rows / gen.seconds:,.0f} rows/s | "
                f"| {gen.peak_rss / GIB:.2f} GiB | {load()} |"
            )
        if not parquet_path.exists():
            to_parquet(csv_path, parquet_path)
        outputs = {}
        for label, source in (("score CSV", csv_path), ("score Parquet", parquet_path)):
            out = outputs[label] = work / f"scores-{rows}-{source.suffix.lstrip('.')}.csv"
            cpu = cpu_seconds(resource.RUSAGE_CHILDREN)
            run = run_sampled(
                [*KUBESAGE, "score", "--model", str(model_dir), "--input", str(source), "--output", str(out)]
            )
            cpu = cpu_seconds(resource.RUSAGE_CHILDREN) - cpu
            if run.returncode:
                print(run.output)
                return 1
            inner = re.search(r"in ([0-9.]+) s \(([0-9,]+) rows/s\)", run.output)
            scoring = f"{inner.group(1)} s, {inner.group(2)} rows/s" if inner else "?"
            lines.append(
                f"| {rows:,} | {label} | {run.seconds:.1f} ({rows / run.seconds:,.0f} rows/s) | {scoring} "
                f"| {cpu:.1f} | {run.peak_rss / GIB:.2f} GiB | {load()} |"
            )
        measured = stages(parquet_path, model_dir, work / "stages-out.csv")
        for stage in STAGES:
            wall, cpu = measured.wall[stage], measured.cpu[stage]
            stage_lines.append(
                f"| {rows:,} | {stage} | {wall / rows * 1e6:.3f} | {cpu / rows * 1e6:.3f} | "
                f"{rows / wall:,.0f} | {load()} |"
            )
        reference = np.concatenate(measured.evaluate)
        scored = pd.read_csv(outputs["score Parquet"], usecols=["churn_probability"])["churn_probability"].to_numpy()
        for label, answer in (
            ("kubesage score's output file (Parquet input)", scored),
            ("daal4py float32 path on the same chunks", np.concatenate(measured.ours)),
            ("XGBoost inplace_predict on the same chunks", np.concatenate(measured.xgboost)),
        ):
            parity_lines.append(f"| {rows:,} | {label} | {largest_difference(answer, reference):.1e} |")
        print(f"done {rows:,} rows, load average {load()}", flush=True)
    tables = [lines, stage_lines, parity_lines]
    if args.baseline is not None:
        tables.append(compare_processes(args.baseline, model_dir, work, max(args.rows), args.repeat))
    for table in tables:
        print("\n".join(table))
        print()
    print(f"load average at the end {load()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
