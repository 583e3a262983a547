"""The dataset format that flows between steps: SageMaker's built-in XGBoost CSV convention.

No header, the 0/1 label in the first column, then the features. Every backend (KFP local, KFP
cluster, SageMaker) and SageMaker's own XGBoost can read it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kubesage.errors import DataError


@dataclass(frozen=True)
class LabelledFeatures:
    """A feature matrix with its 0/1 labels."""

    features: np.ndarray
    labels: np.ndarray

    @property
    def rows(self) -> int:
        return int(self.labels.shape[0])


def write_labelled_csv(data: LabelledFeatures, path: str | Path) -> Path:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    table = np.column_stack([data.labels.astype(np.float64), data.features])
    # repr-exact floats ("%.17g") so a model trained from the file sees the same numbers as in memory.
    np.savetxt(target, table, delimiter=",", fmt="%.17g")
    return target


def read_labelled_csv(path: str | Path) -> LabelledFeatures:
    source = _single_csv(Path(path))
    try:
        table = np.loadtxt(source, delimiter=",", dtype=np.float64, ndmin=2)
    except ValueError as exc:
        raise DataError(f"{source} is not a numeric label-first CSV: {exc}") from exc
    if table.shape[0] == 0:
        raise DataError(f"{source} has no rows")
    labels = table[:, 0]
    if not np.isin(labels, (0.0, 1.0)).all():
        raise DataError(f"{source}: the first column must hold 0/1 labels")
    return LabelledFeatures(features=np.ascontiguousarray(table[:, 1:]), labels=labels.astype(np.int64))


def _single_csv(path: Path) -> Path:
    """Accept a CSV file, or a directory holding exactly one (as a SageMaker channel does)."""
    if path.is_file():
        return path
    if path.is_dir():
        files = sorted(path.glob("*.csv"))
        if len(files) == 1:
            return files[0]
        raise DataError(f"{path} must hold exactly one .csv file, found {len(files)}")
    raise DataError(f"dataset {path} does not exist")
