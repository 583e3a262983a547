"""Benchmark: the churn pipeline's compute steps at 1M rows and more, each step's time and peak memory.

For each size, `kubesage data generate` writes the raw CSV (reused from --work when present), then
preprocess, train and evaluate run as the pipeline's components do (the same functions, without KFP
and MLflow around them), each as its own process, sampled every 0.1 s for the RSS summed over its
process tree (bench/proctree.py). With `--baseline DIR` (a checkout with its own .venv, e.g. main)
the same steps run with that tree's code too, alternating, so the two compare in one run.

    nice -n 10 .venv/bin/python bench/bench_pipeline_scale.py --rows 1000000 [--baseline ../main] [--work DIR]

Memory: preprocess holds the raw table as text and the feature matrix in float64, so the peak grows
with rows (about 1.8 GB at 1M); do not run sizes whose projected peak does not fit the machine.
"""

from __future__ import annotations

import argparse
import os
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
    print("\n".join(table))
    print(f"load average at the end {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
