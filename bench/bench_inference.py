"""Benchmark (a): daal4py vs XGBoost inplace_predict on the trained churn model.

Trains the churn model the way the pipeline does (preprocess 70/18/12, the seed's hyperparameters,
early stopping on validation), converts it to oneDAL once, then times both engines on the same
float64 matrices at batch sizes 1, 100 and 10,000 rows (the large batch is drawn with replacement
from the test rows). Each cell: a warm-up, then the median of several timed loops; the two engines
alternate within each repeat so both see the same machine conditions. Prints rows/s side by side
with the ratio and the largest probability difference, and beside them daal4py fed the float64 values
unrounded (what kubesage did before `modelio.xgboost_view` rounded them to float32 as XGBoost does), so
the cost of the rounding is measured in the same run.

    .venv/bin/python bench/bench_inference.py [--data PATH] [--budget-seconds 30]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import numpy as np
import xgboost as xgb

from kubesage.churn.modelio import PARITY_TOLERANCE, Daal4pyModel, booster_probabilities, load_booster
from kubesage.components.datasets import read_labelled_csv
from kubesage.components.preprocess import preprocess
from kubesage.components.train import TrainParams, train_from_csv

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data" / "churn.txt"
BATCH_SIZES = (1, 100, 10_000)
REPEATS = 7
SPLITS = ("train", "validation", "test")

Predict = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Cell:
    """One batch size: throughput of both engines and how far apart their outputs are."""

    batch: int
    xgboost_rows_per_s: float
    daal4py_rows_per_s: float
    unrounded_rows_per_s: float
    max_abs_diff: float

    @property
    def ratio(self) -> float:
        return self.daal4py_rows_per_s / self.xgboost_rows_per_s


@dataclass(frozen=True)
class TrainedModel:
    xgboost: Predict
    daal4py: Predict
    daal4py_unrounded: Predict
    test_features: np.ndarray
    best_iteration: int
    train_seconds: float


def train_churn_model(data: Path, workdir: Path) -> TrainedModel:
    outputs = {name: workdir / name / f"{name}.csv" for name in SPLITS}
    result = preprocess(str(data), outputs, workdir / "feature_schema.json", seed=42)
    trained = train_from_csv(outputs["train"], outputs["validation"], TrainParams(), workdir / "model", result.schema)
    booster = load_booster(workdir / "model")
    converted = Daal4pyModel.from_booster(booster)  # once, as serving does
    return TrainedModel(
        xgboost=lambda x: booster_probabilities(booster, x),
        daal4py=converted.probabilities,
        daal4py_unrounded=lambda x: converted.model.predict_proba(np.ascontiguousarray(x, dtype=np.float64))[:, 1],
        test_features=read_labelled_csv(outputs["test"]).features,
        best_iteration=trained.best_iteration,
        train_seconds=trained.train_seconds,
    )


def calls_per_loop(predict: Predict, batch: np.ndarray, target_seconds: float) -> int:
    """How many calls make one timed loop last about `target_seconds` (at least one call)."""
    calls = 1
    while True:
        started = time.perf_counter()
        for _ in range(calls):
            predict(batch)
        elapsed = time.perf_counter() - started
        if elapsed >= target_seconds / 4 or calls >= 1 << 20:
            return max(1, int(calls * target_seconds / max(elapsed, 1e-9)))
        calls *= 4


def loop_seconds_per_call(predict: Predict, batch: np.ndarray, calls: int) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        predict(batch)
    return (time.perf_counter() - started) / calls


def measure(model: TrainedModel, batch: np.ndarray, target_seconds: float) -> Cell:
    engines = {"xgboost": model.xgboost, "daal4py": model.daal4py, "unrounded": model.daal4py_unrounded}
    calls = {name: calls_per_loop(fn, batch, target_seconds) for name, fn in engines.items()}
    samples: dict[str, list[float]] = {name: [] for name in engines}
    for _ in range(REPEATS):
        for name, fn in engines.items():
            samples[name].append(loop_seconds_per_call(fn, batch, calls[name]))
    rows = batch.shape[0]
    diff = float(np.max(np.abs(model.xgboost(batch) - model.daal4py(batch))))
    return Cell(
        batch=rows,
        xgboost_rows_per_s=rows / statistics.median(samples["xgboost"]),
        daal4py_rows_per_s=rows / statistics.median(samples["daal4py"]),
        unrounded_rows_per_s=rows / statistics.median(samples["unrounded"]),
        max_abs_diff=diff,
    )


def batches(test_features: np.ndarray, sizes: Sequence[int], seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for size in sizes:
        if size <= test_features.shape[0]:
            out.append(np.ascontiguousarray(test_features[:size]))
        else:
            picks = rng.integers(0, test_features.shape[0], size=size)
            out.append(np.ascontiguousarray(test_features[picks]))
    return out


def format_table(cells: Sequence[Cell]) -> str:
    header = (
        f"{'batch rows':>10} | {'xgboost rows/s':>15} | {'daal4py rows/s':>15} | {'daal4py/xgb':>11} | "
        f"{'unrounded rows/s':>16} | {'rounded/unrounded':>17} | max |diff|"
    )
    lines = [header, "-" * len(header)]
    for cell in cells:
        lines.append(
            f"{cell.batch:>10,} | {cell.xgboost_rows_per_s:>15,.0f} | {cell.daal4py_rows_per_s:>15,.0f} | "
            f"{cell.ratio:>10.2f}x | {cell.unrounded_rows_per_s:>16,.0f} | "
            f"{cell.daal4py_rows_per_s / cell.unrounded_rows_per_s:>16.2f}x | {cell.max_abs_diff:.2e}"
        )
    return "\n".join(lines)


def environment() -> str:
    return (
        # The distribution is xgboost-cpu: ask the module, not the package metadata.
        f"python {platform.python_version()}, xgboost {xgb.__version__}, "
        f"scikit-learn-intelex (daal4py) {version('scikit-learn-intelex')}, "
        f"{os.cpu_count()} CPUs ({platform.processor() or platform.machine()})"
    )


def load_note() -> str:
    """Other processes on a small machine skew small batches most (OpenMP threads wait for cores)."""
    load = os.getloadavg()[0]
    cpus = os.cpu_count() or 1
    note = f"1-min load average {load:.1f} on {cpus} CPUs"
    return note + (" (BUSY: numbers are pessimistic, rerun on an idle machine)" if load > cpus else "")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="raw churn CSV (default: %(default)s)")
    parser.add_argument(
        "--budget-seconds",
        type=float,
        default=20.0,
        help="time for the timing loops (total run adds ~10 s to train)",
    )
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="kubesage-bench-") as tmp:
        model = train_churn_model(args.data, Path(tmp))
    # Each engine gets the same share of the budget per batch size, split over the repeats.
    per_loop = args.budget_seconds / (len(BATCH_SIZES) * 3 * (REPEATS + 2))
    cells = [measure(model, batch, per_loop) for batch in batches(model.test_features, BATCH_SIZES)]

    print(
        f"Inference on the churn model ({args.data.name}; best iteration {model.best_iteration}, "
        f"{model.test_features.shape[1]} features, trained in {model.train_seconds:.2f} s)"
    )
    print(environment())
    print(f"median of {REPEATS} timed loops per cell, engines alternating; {load_note()}\n")
    print(format_table(cells))
    worst = max(cell.max_abs_diff for cell in cells)
    print(f"\nlargest |daal4py - xgboost| probability difference: {worst:.2e} (tolerance {PARITY_TOLERANCE:g})")
    if worst > PARITY_TOLERANCE:
        print("PARITY FAILED: daal4py and XGBoost disagree", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
