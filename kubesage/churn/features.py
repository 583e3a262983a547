"""The batch transform that turns raw churn columns into model features, over numpy.

The schema, the column lists and one record's plain-Python encoding are kubesage.churn.schema (the
Lambda's code, no numpy); this module re-exports them, so callers import the feature logic from one
place. The same per-value rules (`category_key`, `parse_number`) serve batch preprocessing (a
DataFrame), the endpoint (raw JSON records, `transform_records`) and the Lambda (`encode_record`),
so they cannot drift apart. It needs only numpy, so the serving image can use it without pandas;
numpy is imported inside the batch functions, so importing the column lists from here stays cheap.

Feature layout, as in the seed: one one-hot block per categorical column (categories sorted as
strings), then the numeric columns standardised with the training split's mean and standard
deviation. An unknown category encodes as all zeros. A missing numeric value (None, NaN or an empty
string) is imputed with the training split's median before scaling.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from kubesage.churn.schema import (
    CATEGORICAL_COLUMNS,
    DROPPED_COLUMNS,
    FEATURE_SCHEMA_FILENAME,
    LABEL_COLUMN,
    NEGATIVE_LABEL,
    NUMERIC_COLUMNS,
    POSITIVE_LABEL,
    RAW_COLUMNS,
    SCHEMA_VERSION,
    FeatureSchema,
    NumericStats,
    category_key,
    encode_record,
    parse_number,
    shorten,
)
from kubesage.errors import SchemaError

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "CATEGORICAL_COLUMNS",
    "DROPPED_COLUMNS",
    "FEATURE_SCHEMA_FILENAME",
    "LABEL_COLUMN",
    "NEGATIVE_LABEL",
    "NUMERIC_COLUMNS",
    "POSITIVE_LABEL",
    "RAW_COLUMNS",
    "SCHEMA_VERSION",
    "Columns",
    "FeatureSchema",
    "NumericStats",
    "category_key",
    "encode_record",
    "fit_schema",
    "parse_number",
    "shorten",
    "transform_columns",
    "transform_records",
]


class Columns(Protocol):
    """Raw columns by name: a pandas DataFrame or a plain dict of sequences."""

    def __getitem__(self, key: str, /) -> Any: ...


def fit_schema(columns: Columns) -> FeatureSchema:
    """Learn categories and numeric statistics from the training split's raw columns."""
    import numpy as np

    categories: dict[str, list[str]] = {}
    for col in CATEGORICAL_COLUMNS:
        keys = _category_keys(_raw(columns, col))
        categories[col] = sorted({k for k in keys if k is not None})
    numeric: dict[str, NumericStats] = {}
    for col in NUMERIC_COLUMNS:
        values = _parse_numeric(col, _raw(columns, col))
        present = values[~np.isnan(values)]
        if present.size == 0:
            raise SchemaError(f"column '{col}' has no numeric values in the training split")
        std = float(np.std(present))
        numeric[col] = NumericStats(
            mean=float(np.mean(present)),
            std=std if std > 0 else 1.0,
            median=float(np.median(present)),
        )
    return FeatureSchema(categories=categories, numeric=numeric)


def transform_columns(columns: Columns, schema: FeatureSchema) -> np.ndarray:
    """Turn raw columns (a DataFrame or a dict of sequences) into a float64 feature matrix."""
    import numpy as np

    n_rows = _row_count(columns, schema)
    out = np.zeros((n_rows, schema.n_features), dtype=np.float64)
    offset = 0
    for col, cats in schema.categories.items():
        index = {cat: i for i, cat in enumerate(cats)}
        positions = np.fromiter(
            (-1 if key is None else index.get(key, -1) for key in _category_keys(_raw(columns, col))),
            dtype=np.int64,
            count=n_rows,
        )
        rows = np.flatnonzero(positions >= 0)
        out[rows, offset + positions[rows]] = 1.0
        offset += len(cats)
    for col, stats in schema.numeric.items():
        values = _parse_numeric(col, _raw(columns, col))
        values = np.where(np.isnan(values), stats.median, values)
        out[:, offset] = (values - stats.mean) / stats.std
        offset += 1
    return out


def transform_records(records: Iterable[Mapping[str, Any]], schema: FeatureSchema) -> np.ndarray:
    """Transform raw JSON-style records (one dict per customer) with the same code as batches."""
    rows = list(records)
    for i, record in enumerate(rows):
        if not isinstance(record, Mapping):
            raise SchemaError(f"record {i} is a {type(record).__name__}, expected an object of raw columns")
    for i, record in enumerate(rows):
        # Stop at the first incomplete record: scanning every record of a hostile body such as
        # [{}, {}, ...] against every column took seconds and many times the body in memory.
        missing = [col for col in schema.input_columns if col not in record]
        if missing:
            raise SchemaError(f"record {i} is missing column(s) {', '.join(repr(m) for m in missing)}")
    columns = {col: [r[col] for r in rows] for col in schema.input_columns}
    return transform_columns(columns, schema)


def _raw(columns: Columns, name: str) -> Any:
    """One column as given (a pandas Series, a numpy array or a sequence), for the vectorised paths."""
    try:
        return columns[name]
    except KeyError as exc:
        raise SchemaError(f"missing column '{name}'") from exc


def _category_keys(values: Any) -> Sequence[str | None]:
    """`category_key` of every value; a column of strings (a preprocessed batch) in one vectorised pass.

    Equal to `[category_key(v) for v in values]` (tested): strings are stripped and an empty one is
    missing. Anything else (numbers, None, mixed objects) goes value by value.
    """
    import pandas as pd

    if isinstance(values, pd.Series) and pd.api.types.infer_dtype(values, skipna=False) == "string":
        stripped = values.str.strip()
        return [None if key == "" else key for key in stripped.tolist()]
    return [category_key(v) for v in _as_list(values)]


def _as_list(values: Any) -> Sequence[Any]:
    return values.tolist() if hasattr(values, "tolist") else values


def _row_count(columns: Columns, schema: FeatureSchema) -> int:
    lengths = {len(_raw(columns, col)) for col in schema.input_columns}
    if len(lengths) != 1:
        raise SchemaError("raw columns have different lengths")
    return lengths.pop()


def _parse_numeric(col: str, values: Any) -> np.ndarray:
    """Parse one numeric column; None, NaN and "" are missing, anything else must be a finite number."""
    import numpy as np

    array = values.to_numpy() if hasattr(values, "to_numpy") else values
    if isinstance(array, np.ndarray) and array.dtype.kind in "fiu":
        # Already numbers (read_raw_table's float64 columns): parse_number's rules in one pass.
        parsed = array.astype(np.float64)
        infinite = np.flatnonzero(np.isinf(parsed))
        if infinite.size:
            parse_number(col, float(parsed[infinite[0]]), int(infinite[0]))  # raises its SchemaError
        return parsed
    values = _as_list(values)
    parsed = np.empty(len(values), dtype=np.float64)
    for row, value in enumerate(values):
        parsed[row] = parse_number(col, value, row)
    return parsed
