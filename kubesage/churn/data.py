"""Raw churn data input: resolve an input URI to a local file, then read and validate it.

Every problem with the input becomes a `DataError` whose message names what was wrong (the file,
the column, the 1-based line, the value) and what to do, so the CLI can print it and exit non-zero
before anything is trained or registered.
"""

from __future__ import annotations

import csv
import difflib
import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse
from urllib.request import url2pathname

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from kubesage.churn.features import (
    LABEL_COLUMN,
    NEGATIVE_LABEL,
    NUMERIC_COLUMNS,
    POSITIVE_LABEL,
    RAW_COLUMNS,
)
from kubesage.errors import DataError
from kubesage.util.aws import AwsFailure, on_aws_failure
from kubesage.util.scratch import process_temp_dir

if TYPE_CHECKING:
    import pandas as pd

SUPPORTED_SCHEMES = ("a local path", "file://", "s3://")
# Text that float() accepts as NaN is treated like an empty field: missing, imputed later.
_MISSING_TOKENS = frozenset({"nan"})
_MAX_LISTED_VALUES = 5


def resolve_input(uri: str, workdir: Path | None = None) -> Path:
    """Turn an input URI into a readable local file.

    Accepts a local path, a `file://` URI or `s3://bucket/key`. S3 objects are downloaded into
    `workdir` (a new temporary directory when None) with boto3, which honours AWS_ENDPOINT_URL and
    the usual AWS configuration, so a moto server or any S3-compatible store works.
    """
    text = str(uri).strip()
    if not text:
        raise DataError("no input data given; pass a local path, a file:// URI or an s3://bucket/key URI")
    parsed = urlparse(text)
    scheme = parsed.scheme.lower()
    if scheme == "s3":
        return _download_s3(text, parsed.netloc, parsed.path.lstrip("/"), workdir)
    if scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise DataError(f"{text}: file:// URIs must name a local file (file:///path/to/file.csv)")
        return _existing_file(Path(url2pathname(unquote(parsed.path))), text)
    # A single-letter "scheme" is a Windows drive letter, not a URI scheme.
    if scheme and len(scheme) > 1:
        raise DataError(f"{text}: unsupported URI scheme '{scheme}://'; use {', '.join(SUPPORTED_SCHEMES)}")
    return _existing_file(Path(text).expanduser(), text)


def _existing_file(path: Path, uri: str) -> Path:
    if not path.exists():
        raise DataError(f"input data file {path} does not exist (from '{uri}'); check the path")
    if not path.is_file():
        raise DataError(f"input data {path} is not a file (from '{uri}'); pass the CSV file itself")
    return path


def _download_s3(uri: str, bucket: str, key: str, workdir: Path | None) -> Path:
    if not bucket or not key or key.endswith("/") or Path(key).name in ("", ".", ".."):
        raise DataError(f"{uri}: an S3 input must name one object, as s3://bucket/key")
    from kubesage.util.boto_sessions import new_boto3_session

    target_dir = Path(workdir) if workdir is not None else process_temp_dir("kubesage-input-")
    target_dir.mkdir(parents=True, exist_ok=True)
    target = target_dir / Path(key).name
    with on_aws_failure(lambda failure: DataError(_describe_s3_failure(uri, failure))):
        # A fresh session reads the current environment (endpoint, credentials, region) every call.
        new_boto3_session().client("s3").download_file(bucket, key, str(target))
    return target


def write_target(uri: str) -> tuple[str, str] | None:
    """(bucket, key) when `uri` names an S3 object to write, None for a local path; DataError otherwise."""
    parsed = urlparse(str(uri).strip())
    if parsed.scheme.lower() != "s3":
        if parsed.scheme and len(parsed.scheme) > 1 and parsed.scheme.lower() != "file":
            raise DataError(
                f"{uri}: unsupported URI scheme '{parsed.scheme}://'; write to a local path or s3://bucket/key"
            )
        return None
    key = parsed.path.lstrip("/")
    if not parsed.netloc or not key or key.endswith("/"):
        raise DataError(f"{uri}: an S3 output must name one object, as s3://bucket/key")
    return parsed.netloc, key


def upload_output(local: Path, uri: str) -> None:
    """Upload a finished local file to the S3 object `uri` names (boto3, so AWS_ENDPOINT_URL works)."""
    target = write_target(uri)
    if target is None:
        raise DataError(f"{uri} is not an s3:// URI")
    from kubesage.util.boto_sessions import new_boto3_session

    with on_aws_failure(lambda failure: DataError(_describe_s3_failure(uri, failure, "upload to"))):
        new_boto3_session().client("s3").upload_file(str(local), target[0], target[1])


def _describe_s3_failure(uri: str, failure: AwsFailure, action: str = "download from") -> str:
    """An input that cannot be read is the user's data problem (DataError), so the message says
    what to fix; the failure comes from the one botocore mapping (kubesage.util.aws)."""
    if not failure.answered:
        return f"{uri}: could not {action} S3 ({failure.text}); check credentials and network"
    if failure.code == "NoSuchBucket":
        return f"{uri}: S3 bucket does not exist; check the bucket name"
    if failure.not_found:
        return f"{uri}: no such S3 object; check the bucket and key"
    if failure.access_denied:
        needed = "s3:GetObject" if action.startswith("download") else "s3:PutObject"
        return f"{uri}: access denied; the role or credentials need {needed} on this object"
    return f"{uri}: S3 refused to let kubesage {action} it ({failure.code or 'error'}: {failure.message})"


def file_sha256(path: Path | str) -> str:
    """Hex SHA-256 of a file's bytes: the data hash tagged on every run."""
    with Path(path).open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def read_raw_table(path: Path) -> pd.DataFrame:
    """Read and validate a raw churn CSV (header row, comma-separated).

    Returns the 21 RAW_COLUMNS in their canonical order: numeric columns as float64 (NaN where a
    field is empty, for the transform to impute), categorical columns, Phone and the label as
    stripped strings. Extra columns are allowed and ignored. Blank lines are skipped.

    Raises DataError for a missing or empty file, missing or misspelled columns, a row with the
    wrong number of fields, a non-numeric value in a numeric column, unexpected label values, or a
    label with only one class. Errors name the file's line (blank lines and quoted line breaks
    counted).

    Arrow reads the file (only the 21 columns, as text, multi-threaded): pandas' reader held every
    field as a Python string, about 7 times the table's size (1.26 GB for 1M rows).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"input data file {path} does not exist; check the path")
    if path.stat().st_size == 0:
        raise DataError(f"input data file {path} is empty (0 bytes); expected a CSV with a header row")
    header = _read_header(path)
    names = [name.strip() for name in header]
    _check_columns(path, names)
    columns = _read_text_columns(path, header, names)
    # Fully empty rows (",,,,") are skipped like blank lines; the row index keeps Arrow's numbering.
    empty = None
    for values in columns.values():
        blank = pc.equal(pc.utf8_length(values), 0)
        empty = blank if empty is None else pc.and_(empty, blank)
    kept = np.flatnonzero(~np.asarray(empty, dtype=bool)) if empty is not None else np.empty(0, dtype=np.int64)
    if kept.size == 0:
        raise DataError(f"input data file {path} has a header but no data rows")
    if kept.size != len(next(iter(columns.values()))):
        columns = {col: values.take(pa.array(kept)) for col, values in columns.items()}
    _check_labels(path, columns[LABEL_COLUMN], kept)
    import pandas as pd  # here, not at the top: `kubesage score` resolves its input with this module, without pandas

    text_dtype = pd.StringDtype("pyarrow", na_value=np.nan)  # what .astype(str) gives in pandas 3
    out: dict[str, pd.Series] = {}
    for col in RAW_COLUMNS:
        values = columns[col]
        if col in NUMERIC_COLUMNS:
            out[col] = pd.Series(_to_float(path, col, values, kept), dtype=np.float64)
        else:
            # pandas' own str dtype over the Arrow buffers: no Python string per value.
            out[col] = pd.Series(values.to_pandas(types_mapper={pa.string(): text_dtype}.get))
    return pd.DataFrame(out)


def _read_header(path: Path) -> list[str]:
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            for row in csv.reader(handle):
                if any(field.strip() for field in row):
                    return row
    except UnicodeDecodeError as exc:
        raise DataError(f"input data file {path} is not UTF-8 text ({exc.reason}); is it a CSV?") from exc
    except csv.Error as exc:
        raise DataError(f"input data file {path} is not a valid CSV: {exc}") from exc
    raise DataError(f"input data file {path} is empty; expected a CSV with a header row")


def _read_text_columns(path: Path, header: list[str], names: list[str]) -> dict[str, pa.ChunkedArray]:
    """The RAW_COLUMNS as stripped text, by position (the first column of each name, as pandas took)."""
    positions = {col: names.index(col) for col in RAW_COLUMNS}
    generated = [f"f{i}" for i in range(len(header))]

    def on_invalid(row: Any) -> str:
        # A line of only spaces is a blank line to pandas and to us; any other wrong width is an error.
        return "skip" if not str(row.text).strip() else "error"

    wanted = sorted(set(positions.values()))
    parts: dict[int, list[pa.Array]] = {i: [] for i in wanted}
    try:
        # Streamed block by block, each trimmed as it comes: the untrimmed text never exists whole.
        reader = pa_csv.open_csv(
            path,
            read_options=pa_csv.ReadOptions(column_names=generated, skip_rows=_header_line(path)),
            parse_options=pa_csv.ParseOptions(invalid_row_handler=on_invalid),
            convert_options=pa_csv.ConvertOptions(
                include_columns=[generated[i] for i in wanted],
                column_types={generated[i]: pa.string() for i in wanted},
                strings_can_be_null=False,
            ),
        )
        for batch in reader:
            for i in wanted:
                parts[i].append(pc.utf8_trim_whitespace(batch.column(generated[i])))
    except pa.ArrowInvalid as exc:
        text = str(exc)
        if "UTF8" in text or "utf8" in text:
            raise DataError(f"input data file {path} is not UTF-8 text ({text}); is it a CSV?") from exc
        raise DataError(f"input data file {path} is not a valid CSV: {text}") from exc
    return {col: pa.chunked_array(parts[i], type=pa.string()) for col, i in positions.items()}


def _header_line(path: Path) -> int:
    """Physical lines up to and including the header (blank lines before it included)."""
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        for row in reader:
            if any(field.strip() for field in row):
                return reader.line_num
    return 0


def _lines_of(path: Path, rows: set[int]) -> dict[int, int]:
    """The physical line of each data row (Arrow's numbering: blank lines not counted), by one pass
    of Python's csv reader; only on the error path, so a valid file is read once."""
    found: dict[int, int] = {}
    if not rows:
        return found
    last = max(rows)
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        for row in reader:
            if any(field.strip() for field in row):
                break  # the header
        index = 0
        for row in reader:
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            if index in rows:
                found[index] = reader.line_num
            index += 1
            if index > last:
                break
    return found


def _check_columns(path: Path, present: list[str]) -> None:
    missing = [col for col in RAW_COLUMNS if col not in present]
    if not missing:
        return
    expected = f"the {len(RAW_COLUMNS)} columns {', '.join(RAW_COLUMNS)}"
    if len(missing) == len(RAW_COLUMNS):
        shown = ",".join(present)
        shown = shown if len(shown) <= 80 else shown[:77] + "..."
        raise DataError(
            f"input data file {path}: its first line ('{shown}') has none of the expected column "
            f"names; the file needs a comma-separated header row with {expected}"
        )
    unexplained = [col for col in present if col not in RAW_COLUMNS]
    problems = []
    for col in missing:
        close = difflib.get_close_matches(col, unexplained, n=1, cutoff=0.6)
        hint = f" (found '{close[0]}' — misspelled?)" if close else ""
        problems.append(f"column '{col}' is missing{hint}")
    raise DataError(f"input data file {path}: {'; '.join(problems)}. The header must contain {expected}")


def _check_labels(path: Path, labels: pa.ChunkedArray, rows: np.ndarray) -> None:
    expected = pa.array([POSITIVE_LABEL, NEGATIVE_LABEL])
    bad = np.flatnonzero(~np.asarray(pc.is_in(labels, value_set=expected), dtype=bool))
    if bad.size:
        values = labels.take(pa.array(bad)).to_pylist()
        first: dict[str, int] = {}
        for position, value in zip(bad.tolist(), values, strict=True):
            first.setdefault(value, position)  # each value's first row
        lines = _lines_of(path, {int(rows[i]) for i in first.values()})
        listed = [f"'{value}' (first on line {lines[int(rows[i])]})" for value, i in first.items()]
        more = len(listed) - _MAX_LISTED_VALUES
        shown = ", ".join(listed[:_MAX_LISTED_VALUES]) + (f" and {more} more" if more > 0 else "")
        raise DataError(
            f"input data file {path}: column '{LABEL_COLUMN}' has unexpected value(s) {shown}; "
            f"expected '{POSITIVE_LABEL}' or '{NEGATIVE_LABEL}' (with the trailing period)"
        )
    positives = int(pc.sum(pc.equal(labels, POSITIVE_LABEL)).as_py() or 0)
    if positives in (0, len(labels)):
        only = POSITIVE_LABEL if positives else NEGATIVE_LABEL
        other = NEGATIVE_LABEL if positives else POSITIVE_LABEL
        raise DataError(
            f"input data file {path}: column '{LABEL_COLUMN}' has only one class ('{only}' in all "
            f"{len(labels)} rows); a classifier needs rows labelled '{other}' too"
        )


def _to_float(path: Path, col: str, text: pa.ChunkedArray, rows: np.ndarray) -> np.ndarray:
    """Stripped text to float64: "" and "nan" (any case) are missing (NaN); anything else must be a
    finite number, else DataError naming the line and the value."""
    missing = pc.or_(pc.equal(pc.utf8_length(text), 0), pc.equal(pc.utf8_lower(text), "nan"))
    try:
        numbers = np.asarray(pc.cast(pc.if_else(missing, None, text), pa.float64()).fill_null(np.nan), dtype=np.float64)
        bad = np.isinf(numbers)
    except pa.ArrowInvalid:
        # Arrow's parser refused a value: pandas' (the reference before Arrow) decides, per value.
        import pandas as pd

        series = pd.Series(text.to_pylist(), dtype=object)
        numbers = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64)
        is_missing = np.asarray(missing, dtype=bool)
        bad = (np.isnan(numbers) & ~is_missing) | np.isinf(numbers)
        numbers = np.where(is_missing, np.nan, numbers)
    if bool(bad.any()):
        first = int(np.flatnonzero(bad)[0])
        line = _lines_of(path, {int(rows[first])})[int(rows[first])]
        raise DataError(
            f"input data file {path}: column '{col}' must be numeric, but line {line} has "
            f"{text[first].as_py()!r}; fix or blank that value (blank values are imputed)"
        )
    return numbers
