"""Raw churn data input: resolve an input URI to a local file, then read and validate it.

Every problem with the input becomes a `DataError` whose message names what was wrong (the file,
the column, the 1-based line, the value) and what to do, so the CLI can print it and exit non-zero
before anything is trained or registered.
"""

from __future__ import annotations

import difflib
import hashlib
import tempfile
from pathlib import Path
from urllib.parse import unquote, urlparse
from urllib.request import url2pathname

import numpy as np
import pandas as pd

from kubesage.churn.features import (
    LABEL_COLUMN,
    NEGATIVE_LABEL,
    NUMERIC_COLUMNS,
    POSITIVE_LABEL,
    RAW_COLUMNS,
)
from kubesage.errors import DataError
from kubesage.util.aws import AwsFailure, on_aws_failure

SUPPORTED_SCHEMES = ("a local path", "file://", "s3://")
# Header is line 1 of the file, so data row i (0-based) sits on line i + 2.
_FIRST_DATA_LINE = 2
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
    import boto3

    target_dir = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="kubesage-input-"))
    target_dir.mkdir(parents=True, exist_ok=True)
    target = target_dir / Path(key).name
    with on_aws_failure(lambda failure: DataError(_describe_s3_failure(uri, failure))):
        # A fresh session reads the current environment (endpoint, credentials, region) every call.
        boto3.session.Session().client("s3").download_file(bucket, key, str(target))
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
    import boto3

    with on_aws_failure(lambda failure: DataError(_describe_s3_failure(uri, failure, "upload to"))):
        boto3.session.Session().client("s3").upload_file(str(local), target[0], target[1])


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
    stripped strings. Extra columns are allowed and ignored. Fully blank lines are skipped.

    Raises DataError for a missing or empty file, missing or misspelled columns, a non-numeric
    value in a numeric column, unexpected label values, or a label with only one class.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"input data file {path} does not exist; check the path")
    if path.stat().st_size == 0:
        raise DataError(f"input data file {path} is empty (0 bytes); expected a CSV with a header row")
    raw = _read_strings(path)
    raw.columns = pd.Index([str(c).strip() for c in raw.columns])
    _check_columns(path, list(raw.columns))
    table = raw.loc[:, list(RAW_COLUMNS)].apply(lambda col: col.str.strip())
    # Line numbers are taken before blank lines are dropped, so errors point at the real line.
    table.index = pd.RangeIndex(_FIRST_DATA_LINE, _FIRST_DATA_LINE + len(table))
    table = table.loc[~(table == "").all(axis=1)]
    if table.empty:
        raise DataError(f"input data file {path} has a header but no data rows")
    _check_labels(path, table[LABEL_COLUMN])
    out: dict[str, pd.Series] = {}
    for col in RAW_COLUMNS:
        out[col] = _to_float(path, col, table[col]) if col in NUMERIC_COLUMNS else table[col].astype(str)
    return pd.DataFrame(out).reset_index(drop=True)


def _read_strings(path: Path) -> pd.DataFrame:
    # Everything as text, nothing turned into NaN, so validation sees exactly what the file says.
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False, skip_blank_lines=False)
    except pd.errors.EmptyDataError as exc:
        raise DataError(f"input data file {path} is empty; expected a CSV with a header row") from exc
    except pd.errors.ParserError as exc:
        raise DataError(f"input data file {path} is not a valid CSV: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise DataError(f"input data file {path} is not UTF-8 text ({exc.reason}); is it a CSV?") from exc


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


def _check_labels(path: Path, labels: pd.Series) -> None:
    expected = {POSITIVE_LABEL, NEGATIVE_LABEL}
    bad = labels.loc[~labels.isin(expected)]
    if not bad.empty:
        first = bad.drop_duplicates()  # keeps each value's first row, whose index is its line
        listed = [f"'{value}' (first on line {line})" for line, value in first.items()]
        more = len(listed) - _MAX_LISTED_VALUES
        shown = ", ".join(listed[:_MAX_LISTED_VALUES]) + (f" and {more} more" if more > 0 else "")
        raise DataError(
            f"input data file {path}: column '{LABEL_COLUMN}' has unexpected value(s) {shown}; "
            f"expected '{POSITIVE_LABEL}' or '{NEGATIVE_LABEL}' (with the trailing period)"
        )
    counts = labels.value_counts()
    if len(counts) < 2:
        only = str(counts.index[0])
        other = NEGATIVE_LABEL if only == POSITIVE_LABEL else POSITIVE_LABEL
        raise DataError(
            f"input data file {path}: column '{LABEL_COLUMN}' has only one class ('{only}' in all "
            f"{int(counts.iloc[0])} rows); a classifier needs rows labelled '{other}' too"
        )


def _to_float(path: Path, col: str, text: pd.Series) -> pd.Series:
    numbers = pd.to_numeric(text, errors="coerce").astype(np.float64)
    missing = (text == "") | text.str.lower().isin(_MISSING_TOKENS)
    bad = (numbers.isna() & ~missing) | np.isinf(numbers)
    if bool(bad.any()):
        line = int(text.index[np.flatnonzero(bad.to_numpy())[0]])
        raise DataError(
            f"input data file {path}: column '{col}' must be numeric, but line {line} has "
            f"{text.loc[line]!r}; fix or blank that value (blank values are imputed)"
        )
    return numbers.where(~missing, np.nan)
