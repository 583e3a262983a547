"""Benchmark (b): the local runner's overhead per task, launcher by launcher; caching; parallel tasks.

Printed side by side from one run of this script:
1. the churn pipeline (caching off) with KFP's subprocess launcher, with a new fork server (the first
   run of a process, as every `kubesage run` is) and with the process's warm one (later runs of a
   notebook, the Python API or a test session): each step's own compute (its MLflow step run, open
   to close), the pipeline's wall time as the run reports it (from the MLflow parent run's opening)
   and the overhead per task = (wall - sum of compute) / tasks; the same for the whole `Runner.run`
   call (parameter checks, opening the parent run, the fork server's start, reading the result back);
2. the same pipeline again with only `max_depth` changed, caching on: what was reused, and the wall;
3. four independent tasks (each sleeps `--hold` seconds), one at a time vs at once;
4. `kubesage run customer_churn` as a whole process (CLI start, imports, everything), per launcher.

    .venv/bin/python bench/bench_pipeline.py [--data ../shared/data/churn.txt] [--runs 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "churn.txt"
LAUNCHERS = ("subprocess", "fork")  # `kubesage run --option launcher=...`
MODES = ("subprocess", "fork, new", "fork, warm")  # fork: a new zygote, or the process's warm one


@dataclass(frozen=True)
class Timed:
    wall: float  # the whole `Runner.run` call
    pipeline_wall: float  # RunResult.wall_seconds: from the parent run's opening to the pipeline's end
    steps: dict[str, float]  # step -> seconds of its MLflow step run
    cached: list[str]


def timed_run(workdir: Path, ref: str, params: dict[str, Any], root: str, **options: Any) -> Timed:
    from mlflow import MlflowClient

    from kubesage.runners.local.warm import stop_warm_fork_server
    from kubesage.runners.registry import get_runner, load_pipeline

    if options.pop("new_zygote", False):
        stop_warm_fork_server()
    source = load_pipeline(ref, workdir / "build")
    runner = get_runner("local", {"pipeline_root": str(workdir / root), **options})
    began = time.perf_counter()
    result = runner.run(source, params)
    wall = time.perf_counter() - began
    if not result.succeeded:
        raise SystemExit(f"{ref} failed: {result.failure}")
    client = MlflowClient(tracking_uri=os.environ["MLFLOW_TRACKING_URI"])
    children = client.search_runs(
        [client.get_run(result.mlflow_run_id).info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{result.mlflow_run_id}'",
    )
    cached = sorted(c.data.tags["kubesage.step"] for c in children if c.data.tags.get("kubesage.cached") == "true")
    return Timed(wall, result.wall_seconds, {s.name: s.seconds or 0.0 for s in result.steps}, cached)


def whole_process(workdir: Path, data: Path, launcher: str) -> float:
    command = [sys.executable, "-m", "kubesage.cli", "run", "customer_churn", f"--param=input_data={data}"]
    command += ["--option", f"launcher={launcher}", "--option", "enable_caching=false", "--output", "json"]
    began = time.perf_counter()
    done = subprocess.run(command, cwd=workdir, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - began
    if done.returncode != 0:
        raise SystemExit(f"kubesage run failed: {done.stderr[-2000:]}")
    return seconds


def median(values: list[float]) -> float:
    return statistics.median(values)


def repeat(runs: int, make: Callable[[int], Timed]) -> list[Timed]:
    return [make(i) for i in range(runs)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--hold", type=float, default=2.0, help="seconds each of the four independent tasks sleeps")
    args = parser.parse_args(argv)
    data = args.data.resolve()
    loads = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory(prefix="kubesage-bench-") as tmp:
        workdir = Path(tmp)
        os.chdir(workdir)
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{workdir / 'mlflow.db'}"
        from kubesage.tracking import ensure_experiment

        ensure_experiment("customer-churn", os.environ["MLFLOW_TRACKING_URI"])  # the store's creation is not a run's
        churn = {"input_data": str(data)}

        # 1. launchers, caching off, alternating so each sees the same load
        mode_options: dict[str, dict[str, Any]] = {
            "subprocess": {"launcher": "subprocess"},
            "fork, new": {"launcher": "fork", "new_zygote": True},
            "fork, warm": {"launcher": "fork"},
        }
        by_launcher: dict[str, list[Timed]] = {name: [] for name in MODES}
        for i in range(args.runs):
            for name in MODES:
                root = f"{name.replace(', ', '-')}-{i}"
                by_launcher[name].append(
                    timed_run(workdir, "customer_churn", churn, root, enable_caching=False, **mode_options[name])
                )
        loads.append(os.getloadavg()[0])

        # 2. caching: a first run, then only max_depth changed
        first = timed_run(workdir, "customer_churn", churn, "cache")
        changed = timed_run(workdir, "customer_churn", {**churn, "max_depth": 3}, "cache")

        # 3. four independent tasks
        four = "tests.integration.local_pipelines:four_independent_pipeline"
        sys.path.insert(0, str(REPO))
        hold = {"seconds": args.hold}
        sequential = timed_run(workdir, four, hold, "four-1", max_parallel=1)
        parallel = timed_run(workdir, four, hold, "four-4", max_parallel=4)
        loads.append(os.getloadavg()[0])

        # 4. the whole CLI process
        whole = {name: median([whole_process(workdir, data, name) for _ in range(args.runs)]) for name in LAUNCHERS}
        loads.append(os.getloadavg()[0])

    print(f"\nlocal runner on {data.name}, {os.cpu_count()} cores, median of {args.runs} run(s) per column")
    print(f"load average (1 min) during the benchmark: {', '.join(f'{x:.1f}' for x in loads)}\n")
    steps = list(by_launcher["fork, warm"][0].steps)
    print(f"{'':<28}" + "".join(f"{name:>14}" for name in MODES) + "   subprocess / fork new, warm")

    def row(label: str, values: dict[str, float], unit: str = "s") -> None:
        ratios = [f"{values['subprocess'] / values[n]:.1f}x" for n in MODES[1:] if values.get(n)]
        cells = "".join(f"{values[name]:>12.2f} {unit}" if name in values else f"{'':>14}" for name in MODES)
        print(f"{label:<28}{cells}{'':>6}" + ", ".join(ratios))

    compute: dict[str, float] = {}
    walls: dict[str, float] = {}
    pipeline_walls: dict[str, float] = {}
    for name in MODES:
        compute[name] = median([sum(t.steps.values()) for t in by_launcher[name]])
        walls[name] = median([t.wall for t in by_launcher[name]])
        pipeline_walls[name] = median([t.pipeline_wall for t in by_launcher[name]])
    for step in steps:
        row(f"  {step} own compute", {n: median([t.steps[step] for t in by_launcher[n]]) for n in MODES})
    row("sum of the steps", compute)
    row("pipeline wall (result)", pipeline_walls)
    row("overhead per task", {n: (pipeline_walls[n] - compute[n]) / len(steps) for n in MODES})
    row("Runner.run wall", walls)
    row("overhead per task, all in", {n: (walls[n] - compute[n]) / len(steps) for n in MODES})
    row("`kubesage run` process", {"subprocess": whole["subprocess"], "fork, new": whole["fork"]})

    print(
        f"\ncaching (fork): first run {first.wall:.2f} s; only max_depth changed {changed.wall:.2f} s, "
        f"reused: {', '.join(changed.cached) or 'nothing'}; ran: "
        f"{', '.join(s for s in changed.steps if s not in changed.cached)}"
    )
    print(
        f"four independent tasks ({args.hold:.1f} s each, fork): one at a time {sequential.wall:.2f} s, "
        f"at once {parallel.wall:.2f} s ({sequential.wall / parallel.wall:.1f}x)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
