"""Preprocess: raw churn CSV -> seeded train/validation/test splits and the feature schema."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from kubesage.churn.data import file_sha256, read_raw_table, resolve_input
from kubesage.churn.features import LABEL_COLUMN, FeatureSchema, fit_schema, transform_columns
from kubesage.components import defaults
from kubesage.components.datasets import LabelledFeatures, write_labelled_csv_chunks
from kubesage.components.shards import write_shards
from kubesage.errors import DataError, ParameterError
from kubesage.monitoring.statistics import baseline_files

# Rows transformed and written at a time: about 100 MB of float64 features.
WRITE_CHUNK_ROWS = 131_072


@dataclass(frozen=True)
class SplitFractions:
    """Train and validation shares; the test split gets the rest (the seed used 70/18/12)."""

    train: float = defaults.TRAIN_FRACTION
    validation: float = defaults.VALIDATION_FRACTION

    def __post_init__(self) -> None:
        if not (0 < self.train < 1 and 0 < self.validation < 1 and self.train + self.validation < 1):
            raise ParameterError(
                f"split fractions train={self.train}, validation={self.validation} must be positive "
                "and leave a test split (train + validation < 1)"
            )

    @property
    def test(self) -> float:
        return 1.0 - self.train - self.validation


@dataclass(frozen=True)
class PreprocessResult:
    schema: FeatureSchema
    rows: dict[str, int]
    positive_rate: dict[str, float]
    data_uri: str
    data_sha256: str

    def metrics(self) -> dict[str, float]:
        out = {f"rows_{name}": float(n) for name, n in self.rows.items()}
        out.update({f"positive_rate_{name}": rate for name, rate in self.positive_rate.items()})
        out["n_features"] = float(self.schema.n_features)
        return out


def split_frame(frame: pd.DataFrame, label: pd.Series, fractions: SplitFractions, seed: int) -> dict[str, pd.DataFrame]:
    """Stratified, seeded split into train/validation/test."""
    # Integer sizes: float shares like 0.3 of 5,000 round up to 1,501 inside scikit-learn.
    n_train = round(len(frame) * fractions.train)
    n_validation = round(len(frame) * fractions.validation)
    try:
        train, rest = train_test_split(frame, train_size=n_train, random_state=seed, stratify=label)
        validation, test = train_test_split(
            rest, train_size=n_validation, random_state=seed, stratify=label.loc[rest.index]
        )
    except ValueError as exc:
        raise DataError(f"cannot split {len(frame)} rows into train/validation/test: {exc}") from exc
    return {"train": train, "validation": validation, "test": test}


def labels_of(frame: pd.DataFrame, schema: FeatureSchema) -> np.ndarray:
    return (frame[schema.label_column] == schema.positive_label).to_numpy(dtype=np.int64)


def preprocess(
    input_data: str,
    output_paths: dict[str, str | Path],
    schema_path: str | Path,
    seed: int = defaults.SEED,
    fractions: SplitFractions | None = None,
    baseline_dir: str | Path | None = None,
    train_shards: int = 1,
) -> PreprocessResult:
    """Read and validate the raw data, split it, fit the schema on train, write all three splits.

    With `baseline_dir`, also the training split's Model Monitor baseline there: statistics.json and
    constraints.json of its raw columns (without Phone and the label), what `kubesage drift` compares
    captured traffic with.
    """
    fractions = fractions or SplitFractions()
    # An s3:// input is downloaded into a folder that goes away with this step.
    with tempfile.TemporaryDirectory(prefix="kubesage-input-") as download_dir:
        local = resolve_input(input_data, Path(download_dir))
        frame = read_raw_table(local)
        data_sha256 = file_sha256(local)
    splits = split_frame(frame, frame[LABEL_COLUMN], fractions, seed)
    schema = fit_schema(splits["train"])
    rows: dict[str, int] = {}
    positive_rate: dict[str, float] = {}
    for name, part in splits.items():
        labels = labels_of(part, schema)
        if name == "train" and train_shards > 1:
            # issue 20: the train split as a folder of `train_shards` files, one share per training instance
            write_shards(LabelledFeatures(transform_columns(part, schema), labels), output_paths[name], train_shards)
        else:
            # In chunks: the float64 feature matrix of a whole 10M-row split alone would be 5.8 GB.
            chunks = (
                LabelledFeatures(
                    transform_columns(part.iloc[start : start + WRITE_CHUNK_ROWS], schema),
                    labels[start : start + WRITE_CHUNK_ROWS],
                )
                for start in range(0, len(part), WRITE_CHUNK_ROWS)
            )
            write_labelled_csv_chunks(chunks, output_paths[name])
        rows[name] = len(part)
        positive_rate[name] = float(labels.mean())
    schema.save(schema_path)
    if baseline_dir is not None:
        baseline_files(splits["train"], baseline_dir)
    return PreprocessResult(
        schema=schema,
        rows=rows,
        positive_rate=positive_rate,
        data_uri=input_data,
        data_sha256=data_sha256,
    )
