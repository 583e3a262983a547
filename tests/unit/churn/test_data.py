"""Raw input: URI resolution, validation of every kind of bad input, and the real churn file."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kubesage.churn.data import file_sha256, read_raw_table, resolve_input
from kubesage.churn.features import (
    CATEGORICAL_COLUMNS,
    LABEL_COLUMN,
    NEGATIVE_LABEL,
    NUMERIC_COLUMNS,
    POSITIVE_LABEL,
    RAW_COLUMNS,
)
from kubesage.churn.synthetic import generate_churn
from kubesage.errors import DataError

WriteTable = Callable[[pd.DataFrame], Path]


@pytest.fixture
def raw_frame() -> pd.DataFrame:
    """Twenty valid rows as text, exactly as they would appear in a CSV."""
    return generate_churn(20, seed=3).astype(str)


@pytest.fixture
def write_table(tmp_path: Path) -> WriteTable:
    def write(frame: pd.DataFrame) -> Path:
        path = tmp_path / "input.csv"
        frame.to_csv(path, index=False)
        return path

    return write


# --- resolve_input -------------------------------------------------------------------------------


def test_resolve_local_path_and_file_uri(write_table: WriteTable, raw_frame: pd.DataFrame) -> None:
    path = write_table(raw_frame)
    assert resolve_input(str(path)) == path
    assert resolve_input(path.as_uri()) == path


def test_resolve_missing_file_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "churn.csv"
    with pytest.raises(DataError, match=f"{missing}.*does not exist"):
        resolve_input(str(missing))
    with pytest.raises(DataError, match=f"{missing}.*does not exist"):
        resolve_input(missing.as_uri())


def test_resolve_directory_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="is not a file"):
        resolve_input(str(tmp_path))


@pytest.mark.parametrize("uri", ["http://example.com/churn.csv", "gs://bucket/churn.csv", "hdfs:///churn"])
def test_resolve_unsupported_scheme(uri: str) -> None:
    scheme = uri.split(":")[0]
    with pytest.raises(DataError, match=f"unsupported URI scheme '{scheme}://'.*s3://"):
        resolve_input(uri)


@pytest.mark.parametrize("uri", ["s3://", "s3://bucket", "s3://bucket/folder/", "s3://bucket/folder/.."])
def test_resolve_s3_uri_without_object_key(uri: str) -> None:
    with pytest.raises(DataError, match="must name one object"):
        resolve_input(uri)


def test_resolve_empty_uri() -> None:
    with pytest.raises(DataError, match="no input data given"):
        resolve_input("  ")


# --- read_raw_table: bad input -------------------------------------------------------------------


def test_zero_byte_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    with pytest.raises(DataError, match=r"empty\.csv is empty \(0 bytes\)"):
        read_raw_table(path)


def test_header_only_file(tmp_path: Path) -> None:
    path = tmp_path / "header.csv"
    path.write_text(",".join(RAW_COLUMNS) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match="has a header but no data rows"):
        read_raw_table(path)


def test_whitespace_only_file(tmp_path: Path) -> None:
    path = tmp_path / "blank.csv"
    path.write_text("\n\n", encoding="utf-8")
    with pytest.raises(DataError, match="is empty"):
        read_raw_table(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        read_raw_table(tmp_path / "absent.csv")


def test_misspelled_column_is_named_with_suggestion(write_table: WriteTable, raw_frame: pd.DataFrame) -> None:
    path = write_table(raw_frame.rename(columns={"Day Mins": "Day Min"}))
    with pytest.raises(DataError, match=r"column 'Day Mins' is missing \(found 'Day Min' — misspelled\?\)"):
        read_raw_table(path)


def test_every_missing_column_is_named(write_table: WriteTable, raw_frame: pd.DataFrame) -> None:
    path = write_table(raw_frame.drop(columns=["Phone", LABEL_COLUMN]).rename(columns={"Eve Calls": "EveCals"}))
    with pytest.raises(DataError) as info:
        read_raw_table(path)
    message = str(info.value)
    assert "column 'Phone' is missing;" in message  # nothing similar present: no suggestion
    assert f"column '{LABEL_COLUMN}' is missing" in message
    assert "column 'Eve Calls' is missing (found 'EveCals' — misspelled?)" in message
    assert "column 'Day Mins'" not in message


def test_non_numeric_value_names_column_line_and_value(write_table: WriteTable, raw_frame: pd.DataFrame) -> None:
    frame = raw_frame.copy()
    frame.loc[6, "Night Calls"] = "lots"
    frame.loc[9, "Night Calls"] = "more"  # a later bad row: the first one is reported
    path = write_table(frame)
    # Data row 6 (0-based) is line 8 of the file: line 1 is the header.
    with pytest.raises(DataError, match=r"column 'Night Calls' must be numeric, but line 8 has 'lots'"):
        read_raw_table(path)
    assert path.read_text(encoding="utf-8").splitlines()[7].split(",")[14] == "lots"


def test_line_numbers_count_blank_lines(tmp_path: Path, raw_frame: pd.DataFrame) -> None:
    frame = raw_frame.copy()
    frame.loc[2, "Intl Mins"] = "4,5"  # quoted by to_csv, still one line
    text = frame.to_csv(index=False)
    lines = text.splitlines()
    lines.insert(2, "")  # a blank line between data rows 0 and 1
    path = tmp_path / "blank_line.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"column 'Intl Mins' must be numeric, but line 5 has '4,5'"):
        read_raw_table(path)


def test_infinite_value_is_rejected(write_table: WriteTable, raw_frame: pd.DataFrame) -> None:
    frame = raw_frame.copy()
    frame.loc[0, "Day Charge"] = "inf"
    with pytest.raises(DataError, match=r"column 'Day Charge' must be numeric, but line 2 has 'inf'"):
        read_raw_table(write_table(frame))


def test_missing_numeric_values_are_allowed_and_counted(write_table: WriteTable, raw_frame: pd.DataFrame) -> None:
    frame = raw_frame.copy()
    frame.loc[[1, 4, 5], "Day Mins"] = ""
    frame.loc[2, "CustServ Calls"] = "  "
    frame.loc[3, "Eve Mins"] = "NaN"
    frame.loc[7, "State"] = ""
    table = read_raw_table(write_table(frame))
    assert table["Day Mins"].isna().tolist() == [i in {1, 4, 5} for i in range(20)]
    assert table["CustServ Calls"].isna().tolist() == [i == 2 for i in range(20)]
    assert table["Eve Mins"].isna().tolist() == [i == 3 for i in range(20)]
    assert (table["State"] == "").sum() == 1
    assert int(table[list(NUMERIC_COLUMNS)].isna().sum().sum()) == 5
    assert len(table) == 20


def test_unexpected_label_values_are_named(write_table: WriteTable, raw_frame: pd.DataFrame) -> None:
    frame = raw_frame.copy()
    frame.loc[3, LABEL_COLUMN] = "True"
    frame.loc[5, LABEL_COLUMN] = "maybe"
    frame.loc[8, LABEL_COLUMN] = "True"
    with pytest.raises(DataError) as info:
        read_raw_table(write_table(frame))
    message = str(info.value)
    assert "'True' (first on line 5)" in message
    assert "'maybe' (first on line 7)" in message
    assert f"expected '{POSITIVE_LABEL}' or '{NEGATIVE_LABEL}'" in message


def test_empty_label_is_unexpected(write_table: WriteTable, raw_frame: pd.DataFrame) -> None:
    frame = raw_frame.copy()
    frame.loc[0, LABEL_COLUMN] = ""
    with pytest.raises(DataError, match=r"column 'Churn\?' has unexpected value\(s\) '' \(first on line 2\)"):
        read_raw_table(write_table(frame))


@pytest.mark.parametrize("only", [POSITIVE_LABEL, NEGATIVE_LABEL])
def test_single_class_label(write_table: WriteTable, raw_frame: pd.DataFrame, only: str) -> None:
    frame = raw_frame.copy()
    frame[LABEL_COLUMN] = only
    other = NEGATIVE_LABEL if only == POSITIVE_LABEL else POSITIVE_LABEL
    with pytest.raises(DataError, match=rf"only one class \('{only}' in all 20 rows\).*'{other}'"):
        read_raw_table(write_table(frame))


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "binary.csv"
    path.write_bytes(b"\xff\xfe\x00\x81garbage\n\x9c\x80")
    with pytest.raises(DataError, match=r"binary\.csv is not UTF-8 text"):
        read_raw_table(path)


# --- read_raw_table: good input ------------------------------------------------------------------


def test_extra_columns_and_order_are_ignored(write_table: WriteTable, raw_frame: pd.DataFrame) -> None:
    shuffled = raw_frame[list(reversed(RAW_COLUMNS))].assign(Notes="vip")
    table = read_raw_table(write_table(shuffled))
    assert list(table.columns) == list(RAW_COLUMNS)
    expected = raw_frame["Day Mins"].astype(float).to_numpy()
    np.testing.assert_array_equal(table["Day Mins"].to_numpy(), expected)


def test_values_are_stripped_and_blank_lines_skipped(tmp_path: Path, raw_frame: pd.DataFrame) -> None:
    frame = raw_frame.copy()
    frame.loc[0, "State"] = "  KS "
    frame.loc[0, LABEL_COLUMN] = f" {POSITIVE_LABEL}"
    path = tmp_path / "spaces.csv"
    path.write_text(frame.to_csv(index=False) + "\n\n", encoding="utf-8")
    table = read_raw_table(path)
    assert len(table) == 20
    assert table.loc[0, "State"] == "KS"
    assert table.loc[0, LABEL_COLUMN] == POSITIVE_LABEL


def test_real_churn_file_loads_with_dtypes(churn_csv: Path) -> None:
    table = read_raw_table(resolve_input(str(churn_csv)))
    assert table.shape == (5000, 21)
    assert list(table.columns) == list(RAW_COLUMNS)
    for col in NUMERIC_COLUMNS:
        assert table[col].dtype == np.float64, col
    for col in (*CATEGORICAL_COLUMNS, "Phone", LABEL_COLUMN):
        assert pd.api.types.is_string_dtype(table[col]), col
    assert table[LABEL_COLUMN].value_counts().to_dict() == {NEGATIVE_LABEL: 2502, POSITIVE_LABEL: 2498}
    assert int(table[list(NUMERIC_COLUMNS)].isna().sum().sum()) == 0
    assert not (table[list(CATEGORICAL_COLUMNS)] == "").any().any()
    # Spot-check against the file's own text so parsing loses nothing.
    first = churn_csv.read_text(encoding="utf-8").splitlines()[1].split(",")
    assert table.loc[0, "State"] == first[0]
    assert table.loc[0, "Area Code"] == first[2]
    assert table.loc[0, "Day Mins"] == float(first[7])


def test_file_sha256_matches_hashlib(tmp_path: Path) -> None:
    path = tmp_path / "blob.bin"
    payload = np.random.default_rng(0).bytes(3 * (1 << 20) + 17)  # spans several read blocks
    path.write_bytes(payload)
    assert file_sha256(path) == hashlib.sha256(payload).hexdigest()
    path.write_bytes(b"abc")
    assert file_sha256(path) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_headerless_file_says_the_header_is_missing(tmp_path: Path, raw_frame: pd.DataFrame) -> None:
    path = tmp_path / "no_header.csv"
    raw_frame.to_csv(path, index=False, header=False)
    with pytest.raises(
        DataError, match="has none of the expected column names; the file needs a comma-separated header"
    ):
        read_raw_table(path)
