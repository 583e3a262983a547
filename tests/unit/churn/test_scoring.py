"""Batch scoring (kubesage.churn.scoring) on the real churn data with the session's trained model.

The probabilities are compared with evaluate's own path (the preprocessed test split through
Daal4pyModel) on the same customers, and bad rows must come out with their line, column and value.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest

from kubesage.churn.data import read_raw_table
from kubesage.churn.features import FeatureSchema, transform_columns
from kubesage.churn.modelio import Daal4pyModel, load_booster, xgboost_view
from kubesage.churn.scoring import (
    ScoringModel,
    encode_chunk,
    input_format,
    load_scoring_model,
    score_file,
)
from kubesage.components.datasets import read_labelled_csv
from kubesage.components.preprocess import SplitFractions, split_frame
from kubesage.errors import DataError, SchemaError

# The goal's tolerance against evaluate. Scoring runs oneDAL's float32 path (modelio): a row's last
# float32 bits (1-2 ulps, up to 1.2e-7) depend on where it falls in a chunk, so chunkings differ by that.
TOLERANCE = 1e-6


@pytest.fixture(scope="module")
def model(trained_model: Path) -> ScoringModel:
    return load_scoring_model(trained_model, 0.5)


@pytest.fixture(scope="module")
def scored_real(model: ScoringModel, churn_csv: Path, tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    out = tmp_path_factory.mktemp("scored") / "scores.csv"
    # Small chunks, so the 5,000 rows cross several chunk boundaries.
    summary = score_file(churn_csv, out, model, chunk_rows=700)
    assert (summary.rows_read, summary.rows_scored, summary.rows_rejected) == (5000, 5000, 0)
    return pd.read_csv(out, dtype={"Phone": str})


def test_probabilities_equal_evaluates_on_the_test_split(
    model: ScoringModel, churn_csv: Path, prepared: dict[str, Path], trained_model: Path, tmp_path: Path
) -> None:
    # The test split's raw rows, as preprocess chose them (same seed), scored from a raw CSV...
    frame = read_raw_table(churn_csv)
    test_rows = split_frame(frame, frame["Churn?"], SplitFractions(), 42)["test"]
    raw = pd.read_csv(churn_csv, dtype=str, keep_default_na=False).loc[test_rows.index]
    raw.to_csv(tmp_path / "test-raw.csv", index=False)
    score_file(tmp_path / "test-raw.csv", tmp_path / "scores.csv", model)
    scored = pd.read_csv(tmp_path / "scores.csv", dtype={"Phone": str})
    # ...against evaluate's inputs (the preprocessed test CSV) through evaluate's model path.
    test = read_labelled_csv(prepared["test"])
    expected = Daal4pyModel.from_booster(load_booster(trained_model)).probabilities(test.features)
    assert len(scored) == len(expected) == 600
    assert list(scored["Phone"]) == list(raw["Phone"])
    np.testing.assert_allclose(scored["churn_probability"].to_numpy(), expected, rtol=0, atol=TOLERANCE)
    assert (scored["churn"].to_numpy() == (expected >= 0.5)).all()


def test_whole_file_in_order_with_ids_and_threshold(scored_real: pd.DataFrame, churn: pd.DataFrame) -> None:
    assert list(scored_real.columns) == ["Phone", "churn_probability", "churn"]
    assert list(scored_real["Phone"]) == list(churn["Phone"].astype(str))
    probs = scored_real["churn_probability"].to_numpy()
    assert ((probs >= 0) & (probs <= 1)).all()
    assert (scored_real["churn"].to_numpy() == (probs >= 0.5).astype(int)).all()
    # A trained model separates the classes: churners score higher on average.
    churners = (churn["Churn?"] == "True.").to_numpy()
    assert probs[churners].mean() > probs[~churners].mean() + 0.3


def test_encoding_equals_the_pipelines_transform(model: ScoringModel, churn_csv: Path, churn: pd.DataFrame) -> None:
    table = pa_csv.read_csv(
        churn_csv, convert_options=pa_csv.ConvertOptions(column_types=dict.fromkeys(churn.columns, pa.string()))
    )
    encoded = encode_chunk(table.to_batches(max_chunksize=10_000)[0], model.schema)
    reference = xgboost_view(transform_columns(read_raw_table(churn_csv), model.schema))
    assert encoded.features.dtype == np.float32 and not encoded.bad
    np.testing.assert_array_equal(encoded.features.astype(np.float64), reference)


def test_parquet_typed_columns_and_messy_text_encode_like_the_record_rules(model: ScoringModel) -> None:
    schema: FeatureSchema = model.schema
    row = {col: ["1"] * 3 for col in schema.numeric}
    text = {
        **row,
        "State": [" KS ", "ZZ", ""],  # stripped; unknown -> zeros; empty -> zeros
        "Area Code": ["415", "415.0", "777"],
        "Int'l Plan": ["no", "yes", "no"],
        "VMail Plan": ["yes", "no", "no"],
        "Day Mins": [" 2.5 ", "", "nan"],  # padded number; empty and "nan" -> the median
    }
    typed = {
        **text,
        "Area Code": pa.array([415.0, 415.0, 777.0]),
        "Day Mins": pa.array([2.5, None, None], pa.float64()),
    }
    from kubesage.churn.features import transform_records

    records = [{col: values[i] for col, values in text.items()} for i in range(3)]
    records[1]["Area Code"] = 415  # what category_key maps 415.0 to
    expected = xgboost_view(transform_records(records, schema))
    for columns in (text, typed):
        batch = pa.RecordBatch.from_pydict({k: pa.array(v) if isinstance(v, list) else v for k, v in columns.items()})
        encoded = encode_chunk(batch, schema)
        assert not encoded.bad
        np.testing.assert_array_equal(encoded.features.astype(np.float64), expected)


def test_a_bad_value_fails_with_its_line_column_and_value(model: ScoringModel, churn_csv: Path, tmp_path: Path) -> None:
    lines = churn_csv.read_text().splitlines()
    # A blank line and a quoted line break before the bad value: the reported line is still the file's.
    header, *rows = lines
    bad = rows[9].split(",")
    bad[6] = "12x"  # VMail Message
    phone_col = header.split(",").index("Phone")
    quoted = rows[2].split(",")
    quoted[phone_col] = '"382-\n4657"'
    text = "\n".join([header, *rows[:2], ",".join(quoted), "", *rows[3:9], ",".join(bad), *rows[10:]]) + "\n"
    source = tmp_path / "bad.csv"
    source.write_text(text)
    with pytest.raises(
        DataError, match=r"bad\.csv line 13, column 'VMail Message': '12x' is not a number; .*--rejects"
    ):
        score_file(source, tmp_path / "out.csv", model, chunk_rows=512)
    assert not (tmp_path / "out.csv").exists()


def test_rejects_file_lists_every_bad_row_and_the_rest_is_scored(
    model: ScoringModel, churn_csv: Path, scored_real: pd.DataFrame, tmp_path: Path
) -> None:
    header, *rows = churn_csv.read_text().splitlines()
    rows = list(rows)
    inf_row = rows[100].split(",")
    inf_row[7] = "inf"  # Day Mins
    rows[100] = ",".join(inf_row)
    rows[3000] = rows[3000] + ",extra"  # 22 fields
    words = rows[4998].split(",")
    words[1] = "ten"  # Account Length
    rows[4998] = ",".join(words)
    source = tmp_path / "with-bad.csv"
    source.write_text("\n".join([header, *rows]) + "\n")
    summary = score_file(source, tmp_path / "out.csv", model, rejects_path=tmp_path / "rejects.csv", chunk_rows=1000)
    with (tmp_path / "rejects.csv").open() as handle:
        listed = list(csv.DictReader(handle))
    assert [(r["line"], r["column"], r["value"]) for r in listed] == [
        ("102", "Day Mins", "inf"),
        ("3002", "", rows[3000][:37] + "..."),
        ("5000", "Account Length", "ten"),
    ]
    assert listed[1]["reason"] == "has 22 fields, expected 21"
    assert (summary.rows_read, summary.rows_scored, summary.rows_rejected) == (5000, 4997, 3)
    out = pd.read_csv(tmp_path / "out.csv", dtype={"Phone": str})
    kept = scored_real.drop(index=[100, 3000, 4998]).reset_index(drop=True)
    assert list(out["Phone"]) == list(kept["Phone"])
    np.testing.assert_allclose(out["churn_probability"], kept["churn_probability"], rtol=0, atol=TOLERANCE)


def test_parquet_in_and_out_and_errors(
    model: ScoringModel, churn_csv: Path, scored_real: pd.DataFrame, tmp_path: Path
) -> None:
    pq.write_table(pa_csv.read_csv(churn_csv), tmp_path / "customers.data")  # typed columns, no suffix
    assert input_format(tmp_path / "customers.data") == "parquet"
    score_file(tmp_path / "customers.data", tmp_path / "s.parquet", model, id_columns=["Phone", "State"])
    out = pq.read_table(tmp_path / "s.parquet").to_pandas()
    assert list(out.columns) == ["Phone", "State", "churn_probability", "churn"]
    np.testing.assert_allclose(out["churn_probability"], scored_real["churn_probability"], rtol=0, atol=TOLERANCE)
    with pytest.raises(DataError, match=r"no id column\(s\) 'Customer'; pass --id-column"):
        score_file(churn_csv, tmp_path / "x.csv", model, id_columns=["Customer"])
    (tmp_path / "narrow.csv").write_text("State,Phone\nKS,1\n")
    with pytest.raises(
        SchemaError,
        match=r"narrow\.csv: the input has no column\(s\) 'Area Code', .*'CustServ Calls'; its header must name the 19",
    ):
        score_file(tmp_path / "narrow.csv", tmp_path / "x.csv", model)


def test_values_the_typed_reader_refuses_are_read_again_as_text(
    model: ScoringModel, churn_csv: Path, tmp_path: Path
) -> None:
    """A clean CSV is read with typed columns; one value Arrow's number parser refuses sends the file
    through the text path, where the record rules decide. Both paths must give the same answers."""
    header, *rows = churn_csv.read_text().splitlines()[:41]
    columns = header.split(",")
    edited, clean = [r.split(",") for r in rows], [r.split(",") for r in rows]
    edited[0][columns.index("Day Mins")] = f" {clean[0][columns.index('Day Mins')]} "  # padded: a number
    edited[1][columns.index("Eve Calls")] = "NA"  # not a number for float(): a bad row, not a missing value
    edited[2][columns.index("Night Mins")] = "nan"  # missing, as an empty field is
    clean[2][columns.index("Night Mins")] = ""
    for name, table in (("edited", edited), ("clean", clean)):
        (tmp_path / f"{name}.csv").write_text("\n".join([header, *(",".join(r) for r in table)]) + "\n")
    score_file(tmp_path / "edited.csv", tmp_path / "edited-scores.csv", model, rejects_path=tmp_path / "rejects.csv")
    score_file(tmp_path / "clean.csv", tmp_path / "clean-scores.csv", model)
    rejects = pd.read_csv(tmp_path / "rejects.csv", dtype=str, keep_default_na=False)
    assert rejects[["line", "column", "value"]].values.tolist() == [["3", "Eve Calls", "NA"]]
    edited_scores = pd.read_csv(tmp_path / "edited-scores.csv", dtype={"Phone": str})
    clean_scores = pd.read_csv(tmp_path / "clean-scores.csv", dtype={"Phone": str}).drop(index=1)
    assert list(edited_scores["Phone"]) == list(clean_scores["Phone"])
    np.testing.assert_allclose(edited_scores["churn_probability"], clean_scores["churn_probability"], atol=TOLERANCE)
