"""The feature schema and the one transform shared by batch preprocessing, the endpoint and the Lambda."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kubesage.churn.features import (
    CATEGORICAL_COLUMNS,
    NUMERIC_COLUMNS,
    FeatureSchema,
    category_key,
    fit_schema,
    transform_columns,
    transform_records,
)
from kubesage.errors import SchemaError


@pytest.fixture(scope="module")
def schema(churn: pd.DataFrame) -> FeatureSchema:
    return fit_schema(churn)


def test_schema_matches_the_seed_layout(schema: FeatureSchema) -> None:
    # 51 states + 33 area codes + 2 + 2 one-hot columns, then 15 numerics: 103 features, as in the seed.
    assert [len(schema.categories[c]) for c in CATEGORICAL_COLUMNS] == [51, 33, 2, 2]
    assert list(schema.numeric) == list(NUMERIC_COLUMNS)
    assert schema.n_features == 103
    assert schema.feature_names[:2] == ["State=AK", "State=AL"]
    assert schema.feature_names[-1] == "CustServ Calls"
    assert "Phone" not in schema.input_columns


def test_numeric_columns_are_standardised(churn: pd.DataFrame, schema: FeatureSchema) -> None:
    features = transform_columns(churn, schema)
    numeric = features[:, -15:]
    assert np.allclose(numeric.mean(axis=0), 0.0, atol=1e-9)
    assert np.allclose(numeric.std(axis=0), 1.0, atol=1e-9)
    onehot = features[:, :88]
    assert set(np.unique(onehot)) == {0.0, 1.0}
    assert np.all(onehot[:, :51].sum(axis=1) == 1)  # exactly one state per row


def test_records_and_batches_give_identical_features(churn: pd.DataFrame, schema: FeatureSchema) -> None:
    batch = transform_columns(churn.iloc[:50], schema)
    records = transform_records(churn.iloc[:50].to_dict("records"), schema)
    assert np.array_equal(batch, records)


def test_string_values_as_a_lambda_receives_them(churn: pd.DataFrame, schema: FeatureSchema) -> None:
    record = {k: str(v) for k, v in churn.iloc[0].to_dict().items()}
    assert np.array_equal(transform_records([record], schema), transform_columns(churn.iloc[:1], schema))


def test_unknown_category_encodes_as_all_zeros(churn: pd.DataFrame, schema: FeatureSchema) -> None:
    record = churn.iloc[0].to_dict()
    record["State"] = "ZZ"
    record["Area Code"] = 999
    row = transform_records([record], schema)[0]
    assert row[:51].sum() == 0.0
    assert row[51:84].sum() == 0.0
    assert row[84:88].sum() == 2.0  # the two plans still encode


@pytest.mark.parametrize("missing", [None, "", float("nan"), "  "])
def test_missing_numeric_is_imputed_with_the_training_median(
    churn: pd.DataFrame, schema: FeatureSchema, missing: object
) -> None:
    record = churn.iloc[0].to_dict()
    record["Day Mins"] = missing
    row = transform_records([record], schema)[0]
    stats = schema.numeric["Day Mins"]
    position = schema.feature_names.index("Day Mins")
    assert row[position] == pytest.approx((stats.median - stats.mean) / stats.std)


@pytest.mark.parametrize("bad", ["abc", True, "inf"])
def test_bad_numeric_names_the_column_and_row(churn: pd.DataFrame, schema: FeatureSchema, bad: object) -> None:
    records = churn.iloc[:3].to_dict("records")
    records[2]["Eve Calls"] = bad
    with pytest.raises(SchemaError, match=r"column 'Eve Calls', row 2"):
        transform_records(records, schema)


def test_missing_column_in_a_record_is_named(churn: pd.DataFrame, schema: FeatureSchema) -> None:
    record = churn.iloc[0].to_dict()
    del record["Night Calls"]
    with pytest.raises(SchemaError, match="'Night Calls'"):
        transform_records([record], schema)


def test_non_object_record_is_rejected(schema: FeatureSchema) -> None:
    with pytest.raises(SchemaError, match="record 0 is a list"):
        transform_records([[1, 2, 3]], schema)  # type: ignore[list-item]


def test_category_keys_normalise_numbers() -> None:
    assert category_key(415) == category_key(415.0) == category_key("415") == "415"
    assert category_key(" yes ") == "yes"
    assert category_key(None) is None
    assert category_key(math.nan) is None


def test_schema_round_trips_through_json(schema: FeatureSchema, tmp_path: Path) -> None:
    path = schema.save(tmp_path / "schema.json")
    loaded = FeatureSchema.load(path)
    assert loaded == schema
    data = json.loads(path.read_text())
    assert data["feature_names"] == schema.feature_names  # readable without kubesage
    assert FeatureSchema.load(tmp_path / "schema.json").n_features == 103


def test_malformed_schema_says_how_to_fix(tmp_path: Path) -> None:
    (tmp_path / "feature_schema.json").write_text('{"categories": {}}')
    with pytest.raises(SchemaError, match="re-run preprocess"):
        FeatureSchema.load(tmp_path)
    (tmp_path / "feature_schema.json").write_text("{not json")
    with pytest.raises(SchemaError, match="not valid JSON"):
        FeatureSchema.load(tmp_path)
    with pytest.raises(SchemaError, match="no feature schema"):
        FeatureSchema.load(tmp_path / "missing.json")


def test_constant_numeric_column_does_not_divide_by_zero(churn: pd.DataFrame) -> None:
    frame = churn.iloc[:20].copy()
    frame["Intl Calls"] = 3
    schema = fit_schema(frame)
    assert schema.numeric["Intl Calls"].std == 1.0
    assert np.isfinite(transform_columns(frame, schema)).all()


def test_vectorised_columns_equal_the_per_value_rules(churn: pd.DataFrame, schema: FeatureSchema) -> None:
    from kubesage.churn.features import _category_keys, _parse_numeric

    messy = pd.Series([" KS", "KS ", "", "  ", "OH"] * 3, dtype=str)
    assert list(_category_keys(messy)) == [category_key(v) for v in messy]
    # A preprocessed batch (numbers as float64, text stripped) and the same rows as plain Python lists.
    frame = churn.head(500).copy()
    frame.loc[3, "Day Mins"] = np.nan
    as_lists = {col: frame[col].tolist() for col in frame.columns}
    np.testing.assert_array_equal(transform_columns(frame, schema), transform_columns(as_lists, schema))
    with pytest.raises(SchemaError, match=r"column 'Eve Mins', row 2: inf is not a finite number"):
        _parse_numeric("Eve Mins", pd.Series([1.0, 2.0, math.inf]))
