"""Benchmark: the churn pipeline's compute steps at 1M rows and more, each step's time and peak memory.

For each size, `kubesage data generate` writes the raw CSV (reused from --work when present), then
preprocess, train and evaluate run as the pipeline's components do (the same functions, without KFP
and MLflow around them), each as its own process, sampled every 0.1 s for the RSS summed over its
process tree (bench/proctree.py). With `--baseline DIR` (a checkout with its own .venv, e.g. main)
the same steps run with that tree's code too, alternating, so the two compare in one run.

    nice -n 10 .venv/bin/python bench/bench_pipeline_scale.py --rows 1000000 [--baseline ../main] [--work DIR]

With `--whole-run`, each size runs as a user runs it instead: one `kubesage run customer_churn` on the
local runner (KFP's launcher, MLflow tracking to a new SQLite store, register included), its process
tree sampled the same way; the table gives the run's wall time, the steps' own times from its JSON
summary and the peak RSS of the whole tree (the runner, the task processes and their children).

Memory: preprocess holds the raw table as text and the feature matrix in float64, so the peak grows
with rows (about 1.8 GB at 1M); do not run sizes whose projected peak does not fit the machine.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from proctree import run_sampled

REPO = Path(__file__).resolve().parents[1]
GIB = 1024**3

STEP = {
    "preprocess": (
        "from kubesage.components.preprocess import preprocess\n"
        "paths = {{n: '{out}/' + n + '.csv' for n in ('train', 'validation', 'test')}}\n"
        "preprocess('{data}', paths, '{out}/feature_schema.json', seed=42)\n"
    ),
    "train": (
        "from kubesage.churn.features import FeatureSchema\n"
        "from kubesage.components.train import TrainParams, train_from_csv\n"
        "train_from_csv('{out}/train.csv', '{out}/validation.csv', TrainParams(), '{out}/model',"
        " FeatureSchema.load('{out}/feature_schema.json'))\n"
    ),
    "evaluate": (
        "from kubesage.components.evaluate import evaluate_model\n"
        "print('accuracy', evaluate_model('{out}/test.csv', '{out}/model').metrics['accuracy'])\n"
    ),
}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--baseline", type=Path, default=None, help="Another checkout (with .venv) to compare.")
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--whole-run", action="store_true", help="Time `kubesage run customer_churn` per size instead.")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="kubesage-bench-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    trees = {"this tree": REPO}
    if args.baseline is not None:
        trees["baseline"] = args.baseline.resolve()
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; trees: {trees}")
    table = ["| rows | tree | step | seconds | rows/s | peak tree RSS |", "| --- | --- | --- | --- | --- | --- |"]
    for rows in args.rows:
        data = work / f"churn-{rows}.csv"
        if not data.exists():
            gen = run_sampled(
                [sys.executable, "-m", "kubesage.cli", "data", "generate", "--rows", str(rows), "--output", str(data)]
            )
            if gen.returncode:
                print(gen.output)
                return 1
        if args.whole_run:
            for name, tree in trees.items():
                row = whole_run(tree, data, rows, work / f"{name.replace(' ', '-')}-run-{rows}")
                if row is None:
                    return 1
                table.append(f"| {rows:,} | {name} | {row} |")
                print(table[-1], flush=True)
            continue
        for step in STEP:
            for name, tree in trees.items():
                out = work / f"{name.replace(' ', '-')}-{rows}"
                out.mkdir(exist_ok=True)
                python = tree / ".venv" / "bin" / "python"
                code = STEP[step].format(out=out, data=data)
                run = run_sampled([str(python), "-c", code], env={**os.environ, "PYTHONPATH": str(tree)})
                if run.returncode:
                    print(run.output[-3000:])
                    return 1
                table.append(
                    f"| {rows:,} | {name} | {step} | {run.seconds:.1f} | {rows / run.seconds:,.0f} | "
                    f"{run.peak_rss / GIB:.2f} GiB |"
                )
                print(table[-1], run.output.strip().splitlines()[-1:] if step == "evaluate" else "", flush=True)
    if args.whole_run:
        table[:2] = [
            "| rows | tree | `kubesage run` s | rows/s | steps (s) | peak tree RSS | accuracy |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
    print("\n".join(table))
    print(f"load average at the end {os.getloadavg()[0]:.1f}")
    return 0


def whole_run(tree: Path, data: Path, rows: int, workdir: Path) -> str | None:
    """One `kubesage run customer_churn` on `data` in a new directory (its own MLflow store); a table row."""
    import json

    workdir.mkdir(parents=True, exist_ok=True)
    kubesage = tree / ".venv" / "bin" / "kubesage"
    command = [str(kubesage), "run", "customer_churn", "--param", f"input_data={data}", "--output", "json"]
    run = run_sampled(["bash", "-c", f"cd {shlex.quote(str(workdir))} && exec {shlex.join(command)} 2>run.log"])
    if run.returncode:
        print(run.output[-3000:], (workdir / "run.log").read_text()[-3000:])
        return None
    summary = json.loads(run.output)
    steps = ", ".join(f"{s['name']} {s['seconds']:.1f}" for s in summary["steps"])
    return (
        f"{run.seconds:.1f} | {rows / run.seconds:,.0f} | {steps} | {run.peak_rss / GIB:.2f} GiB | "
        f"{summary['metrics']['accuracy']:.5f}"
    )


if __name__ == "__main__":
    raise SystemExit(main())
