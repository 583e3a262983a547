"""Shared set-up for the real-time API's tests: a model directory as registration leaves it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd

from kubesage.churn.features import LABEL_COLUMN, FeatureSchema, transform_columns
from kubesage.churn.modelio import Daal4pyModel, load_booster
from kubesage.components.evaluate import evaluate_model, write_evaluation


def registered_model_dir(trained_model: Path, prepared: dict[str, Path], target: Path, threshold: float) -> Path:
    """The trained booster, its feature schema and the evaluation.json evaluate writes (with its threshold)."""
    target.mkdir(parents=True, exist_ok=True)
    for item in trained_model.iterdir():
        shutil.copy(item, target / item.name)
    write_evaluation(evaluate_model(prepared["test"], trained_model, threshold), target / "evaluation.json")
    return target


def seed_record(churn_csv: Path) -> tuple[dict[str, str], str]:
    """Row 1 of the seed data as the seed's test payload has it (every value a string), and its label."""
    frame = pd.read_csv(churn_csv, dtype=str, nrows=1)
    row = frame.iloc[0].to_dict()
    label = row.pop(LABEL_COLUMN)
    return row, label


def evaluation_path_probability(model_dir: Path, record: dict[str, str]) -> float:
    """What the pipeline's evaluation path gives for one raw record: the batch transform, then daal4py."""
    schema = FeatureSchema.load(model_dir)
    features = transform_columns({k: [v] for k, v in record.items()}, schema)
    return float(Daal4pyModel.from_booster(load_booster(model_dir)).probabilities(features)[0])
