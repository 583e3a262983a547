"""The synthetic churn generator: schema, determinism, realistic distributions and signal."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb
from sklearn.metrics import roc_auc_score

from kubesage.churn.data import read_raw_table
from kubesage.churn.features import (
    LABEL_COLUMN,
    NEGATIVE_LABEL,
    NUMERIC_COLUMNS,
    POSITIVE_LABEL,
    fit_schema,
    transform_columns,
)
from kubesage.churn.synthetic import generate_churn, write_churn_csv
from kubesage.errors import DataError


@pytest.fixture(scope="module")
def real(churn_csv: Path) -> pd.DataFrame:
    return read_raw_table(churn_csv)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    """5,000 generated rows, read back through the same validation as user data."""
    path = write_churn_csv(5000, seed=7, output=tmp_path_factory.mktemp("synthetic") / "churn.csv")
    return read_raw_table(path)


def test_same_seed_same_table_other_seed_other_table() -> None:
    first = generate_churn(300, seed=11)
    pd.testing.assert_frame_equal(first, generate_churn(300, seed=11))
    other = generate_churn(300, seed=12)
    assert not first["Day Mins"].equals(other["Day Mins"])
    assert not first["Phone"].equals(other["Phone"])


def test_written_file_is_byte_identical_for_a_seed(tmp_path: Path) -> None:
    a = write_churn_csv(200, 5, tmp_path / "a.csv")
    b = write_churn_csv(200, 5, tmp_path / "nested" / "b.csv")
    assert a.read_bytes() == b.read_bytes()


def test_header_matches_the_real_file(tmp_path: Path, churn_csv: Path) -> None:
    path = write_churn_csv(50, 0, tmp_path / "churn.csv")
    with path.open(encoding="utf-8") as handle, churn_csv.open(encoding="utf-8") as real_handle:
        assert handle.readline() == real_handle.readline()
    assert len(path.read_text(encoding="utf-8").splitlines()) == 51


@pytest.mark.parametrize("rows", [0, 9, -5])
def test_too_few_rows(rows: int) -> None:
    with pytest.raises(DataError, match=rf"rows must be an integer >= 10 \(got {rows}\)"):
        generate_churn(rows, seed=0)


def test_negative_seed() -> None:
    with pytest.raises(DataError, match=r"seed must be a non-negative integer \(got -1\)"):
        generate_churn(100, seed=-1)


def test_output_directory_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="is a directory"):
        write_churn_csv(20, 0, tmp_path)


@pytest.mark.parametrize("rows", [10, 11, 5001])
def test_labels_are_balanced(rows: int) -> None:
    counts = generate_churn(rows, seed=1)[LABEL_COLUMN].value_counts()
    assert set(counts.index) == {POSITIVE_LABEL, NEGATIVE_LABEL}
    assert counts[POSITIVE_LABEL] == rows // 2
    assert counts[NEGATIVE_LABEL] == rows - rows // 2


def test_value_sets_match_the_real_file(synthetic: pd.DataFrame, real: pd.DataFrame) -> None:
    assert int(synthetic[list(NUMERIC_COLUMNS)].isna().sum().sum()) == 0
    assert set(synthetic["State"]) == set(real["State"])
    assert len(set(synthetic["State"])) == 51
    assert set(synthetic["Area Code"]) == set(real["Area Code"])
    assert set(synthetic["Int'l Plan"]) == set(synthetic["VMail Plan"]) == {"yes", "no"}
    assert synthetic["Phone"].map(lambda p: re.fullmatch(r"\d{3}-\d{4}", p) is not None).all()
    assert synthetic["Phone"].nunique() > 4950
    assert set(synthetic["VMail Message"].unique()) <= set(range(0, 1301, 100))
    assert set(synthetic["Night Calls"].unique()) <= set(range(0, 551, 50))
    no_plan = synthetic["VMail Plan"] == "no"
    assert (synthetic.loc[no_plan, "VMail Message"] == 0).all()


@pytest.mark.parametrize("col", NUMERIC_COLUMNS)
def test_numeric_columns_stay_in_the_real_range(synthetic: pd.DataFrame, real: pd.DataFrame, col: str) -> None:
    values, reference = synthetic[col], real[col]
    assert values.min() >= 0
    assert values.max() <= reference.max() * 1.05
    spread = reference.std()
    assert abs(values.mean() - reference.mean()) < 0.15 * spread, (values.mean(), reference.mean())
    assert 0.75 * spread < values.std() < 1.25 * spread, (values.std(), spread)
    is_int = bool((reference == reference.round()).all())
    assert bool((values == values.round()).all()) == is_int


@pytest.mark.parametrize(
    ("col", "churner_higher"),
    [
        ("Day Mins", True),
        ("Day Charge", True),
        ("Eve Mins", True),
        ("Eve Charge", True),
        ("Night Charge", True),
        ("Night Calls", False),
        ("VMail Message", False),
        ("Eve Calls", False),
    ],
)
def test_class_means_follow_the_real_signal(
    synthetic: pd.DataFrame, real: pd.DataFrame, col: str, churner_higher: bool
) -> None:
    def gap(frame: pd.DataFrame) -> float:
        churned = frame[LABEL_COLUMN] == POSITIVE_LABEL
        return float(frame.loc[churned, col].mean() - frame.loc[~churned, col].mean())

    synthetic_gap, real_gap = gap(synthetic), gap(real)
    assert (synthetic_gap > 0) == churner_higher
    assert 0.75 * abs(real_gap) < abs(synthetic_gap) < 1.25 * abs(real_gap), (synthetic_gap, real_gap)


def test_plans_and_customer_service_carry_no_signal(synthetic: pd.DataFrame) -> None:
    churned = synthetic[LABEL_COLUMN] == POSITIVE_LABEL
    for col in ("Int'l Plan", "VMail Plan"):
        rates = (synthetic[col] == "yes").groupby(churned).mean()
        assert abs(rates[True] - rates[False]) < 0.05, col
    calls = synthetic["CustServ Calls"].groupby(churned).mean()
    assert abs(calls[True] - calls[False]) < 0.3


def _columns(frame: pd.DataFrame) -> dict[str, list[Any]]:
    return {str(col): frame[col].tolist() for col in frame.columns}


def _test_auc(frame: pd.DataFrame, seed: int) -> float:
    """Train the seed's model on a 70/18/12 split and score ROC AUC on the last 12 %."""
    order = np.random.default_rng(seed).permutation(len(frame))
    cut1, cut2 = int(0.7 * len(frame)), int(0.88 * len(frame))
    train, valid, test = (frame.iloc[idx].reset_index(drop=True) for idx in np.split(order, [cut1, cut2]))
    schema = fit_schema(_columns(train))

    def matrix(part: pd.DataFrame) -> xgb.DMatrix:
        label = (part[LABEL_COLUMN] == POSITIVE_LABEL).to_numpy(dtype=np.float64)
        return xgb.DMatrix(transform_columns(_columns(part), schema), label=label)

    params = {
        "objective": "binary:logistic",
        "max_depth": 5,
        "eta": 0.3,
        "gamma": 4,
        "min_child_weight": 6,
        "subsample": 0.7,
        "seed": seed,
    }
    dtrain, dvalid, dtest = matrix(train), matrix(valid), matrix(test)
    booster = xgb.train(
        params, dtrain, 100, evals=[(dvalid, "validation")], early_stopping_rounds=10, verbose_eval=False
    )
    scores = booster.predict(dtest, iteration_range=(0, booster.best_iteration + 1))
    return float(roc_auc_score(dtest.get_label(), scores))


@pytest.mark.parametrize("seed", [0, 1])
def test_xgboost_reaches_a_realistic_auc(seed: int) -> None:
    auc = _test_auc(generate_churn(5000, seed), seed)
    assert 0.9 <= auc <= 0.98, auc


def test_same_recipe_on_the_real_file_scores_higher(real: pd.DataFrame) -> None:
    """Guards the helper above: on the seed's data it must reproduce the seed's ~0.98."""
    assert _test_auc(real, 0) >= 0.95


def test_chunked_writing_is_balanced_per_chunk_and_round_trips(tmp_path: Path) -> None:
    from kubesage.churn.synthetic import iter_churn_chunks

    seen: list[int] = []
    path = write_churn_csv(1003, 4, tmp_path / "c.csv", chunk_rows=300, progress=seen.append)
    assert seen == [251, 502, 753, 1003]  # four near-equal chunks, none below MIN_ROWS
    table = pd.read_csv(path)
    chunks = list(iter_churn_chunks(1003, 4, chunk_rows=300))
    expected = pd.concat(chunks, ignore_index=True)
    # The first chunk is generate_churn itself; later chunks draw from their own seed sequence.
    pd.testing.assert_frame_equal(chunks[0], generate_churn(251, 4))
    assert not chunks[1]["Phone"].equals(chunks[0]["Phone"].iloc[: len(chunks[1])])
    pd.testing.assert_frame_equal(table, expected, check_dtype=False)  # every value survives the CSV
    assert (table["Churn?"] == "True.").sum() == 125 * 3 + 125  # rows // 2 churners in each chunk
    assert path.read_text(encoding="utf-8").splitlines()[1].count('"') == 0
    assert not list(tmp_path.glob(".partial-*"))
