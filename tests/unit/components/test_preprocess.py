"""Preprocess: seeded, reproducible 70/18/12 splits in SageMaker's label-first CSV format."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kubesage.churn.features import FeatureSchema
from kubesage.components.datasets import read_labelled_csv
from kubesage.components.preprocess import SplitFractions, preprocess
from kubesage.errors import DataError, ParameterError


def test_splits_are_70_18_12_with_103_features(prepared: dict[str, Path]) -> None:
    sizes = {name: read_labelled_csv(prepared[name]).features.shape for name in ("train", "validation", "test")}
    assert sizes == {"train": (3500, 103), "validation": (900, 103), "test": (600, 103)}


def test_labels_are_binary_and_stratified(prepared: dict[str, Path]) -> None:
    rates = [read_labelled_csv(prepared[name]).labels.mean() for name in ("train", "validation", "test")]
    # The seed data is balanced (2498 True of 5000); stratification keeps every split within a row of that.
    assert all(abs(rate - 0.4996) < 0.003 for rate in rates)


def test_schema_is_fit_on_the_train_split_only(prepared: dict[str, Path]) -> None:
    schema = FeatureSchema.load(prepared["schema"])
    train = read_labelled_csv(prepared["train"]).features
    # Numeric block of the train split is standardised exactly; other splits only approximately.
    assert np.allclose(train[:, -15:].mean(axis=0), 0.0, atol=1e-9)
    assert schema.n_features == 103


def test_same_seed_same_files_other_seed_other_split(churn_csv: Path, tmp_path: Path) -> None:
    def run(seed: int, folder: str) -> bytes:
        out = tmp_path / folder
        paths = {n: out / f"{n}.csv" for n in ("train", "validation", "test")}
        result = preprocess(str(churn_csv), dict(paths), out / "schema.json", seed=seed)
        assert result.rows == {"train": 3500, "validation": 900, "test": 600}
        assert len(result.data_sha256) == 64
        return paths["test"].read_bytes()

    assert run(7, "a") == run(7, "b")
    assert run(7, "a") != run(8, "c")


def test_fractions_must_leave_a_test_split() -> None:
    with pytest.raises(ParameterError, match="leave a test split"):
        SplitFractions(train=0.8, validation=0.2)


def test_too_few_rows_to_split(churn_csv: Path, tmp_path: Path) -> None:
    tiny = tmp_path / "tiny.csv"
    tiny.write_text("".join(churn_csv.read_text().splitlines(keepends=True)[:4]))
    paths = {n: tmp_path / f"{n}.csv" for n in ("train", "validation", "test")}
    with pytest.raises(DataError):
        preprocess(str(tiny), dict(paths), tmp_path / "schema.json")


def test_splits_are_written_in_chunks_equal_to_one_transform(
    prepared: dict[str, Path], churn_csv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Preprocess transforms and writes each split WRITE_CHUNK_ROWS at a time (bounded memory at 10M
    # rows); with chunks of 7 rows every split's file must still equal the session's (default chunks).
    from kubesage.components import preprocess as module

    monkeypatch.setattr(module, "WRITE_CHUNK_ROWS", 7)
    paths = {name: tmp_path / f"{name}.csv" for name in ("train", "validation", "test")}
    module.preprocess(str(churn_csv), dict(paths), tmp_path / "feature_schema.json", seed=42)
    for name, path in paths.items():
        assert path.read_bytes() == prepared[name].read_bytes(), name
