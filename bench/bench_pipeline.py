"""Benchmark (b): the local pipeline's wall time vs the sum of its steps' own compute time.

The difference is the runner's overhead: KFP's local orchestration, one Python process per task and
its imports (scikit-learn, XGBoost, MLflow), and MLflow bookkeeping. Run:

    .venv/bin/python bench/bench_pipeline.py [--data ../shared/data/churn.txt] [--runs 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "churn.txt"


def run_once(data: Path, workdir: Path) -> tuple[float, dict[str, float]]:
    from kubesage.pipeline_source import load_pipeline
    from kubesage.runners.registry import get_runner

    os.chdir(workdir)
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{workdir / 'mlflow.db'}"
    source = load_pipeline("customer_churn", workdir / "build")
    result = get_runner("local").run(source, {"input_data": str(data)})
    if not result.succeeded:
        raise SystemExit(f"pipeline failed: {result.failure}")
    return result.wall_seconds, {s.name: s.seconds or 0.0 for s in result.steps}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args(argv)
    walls: list[float] = []
    steps: dict[str, list[float]] = {}
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="kubesage-bench-") as tmp:
            wall, per_step = run_once(args.data.resolve(), Path(tmp))
        walls.append(wall)
        for name, seconds in per_step.items():
            steps.setdefault(name, []).append(seconds)
    wall = statistics.median(walls)
    compute = sum(statistics.median(v) for v in steps.values())
    print(f"\nlocal pipeline on {args.data.name}, median of {args.runs} run(s), load average {os.getloadavg()[0]:.1f}")
    print(f"{'step':<14}{'compute s':>12}")
    for name, values in steps.items():
        print(f"{name:<14}{statistics.median(values):>12.2f}")
    print(f"{'sum of steps':<14}{compute:>12.2f}")
    print(f"{'wall time':<14}{wall:>12.2f}")
    print(f"{'overhead':<14}{wall - compute:>12.2f}   wall / compute = {wall / compute:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
