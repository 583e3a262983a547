"""The feature schema and the one transform that turns raw churn records into model features.

The same `transform_columns` serves batch preprocessing (a DataFrame), the endpoint (raw JSON
records) and the Lambda (one record), so the three cannot drift apart. It needs only numpy, so the
Lambda and the serving image can use it without pandas.

Feature layout, as in the seed: one one-hot block per categorical column (categories sorted as
strings), then the numeric columns standardised with the training split's mean and standard
deviation. An unknown category encodes as all zeros. A missing numeric value (None, NaN or an empty
string) is imputed with the training split's median before scaling.

numpy is imported inside the batch functions only: `encode_record` (one record, plain Python, the
same per-value rules and arithmetic) is what the Lambda handler imports, and numpy alone would cost
it more import time than its whole budget.
"""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from kubesage.errors import SchemaError

if TYPE_CHECKING:
    import numpy as np

SCHEMA_VERSION = 1
FEATURE_SCHEMA_FILENAME = "feature_schema.json"

LABEL_COLUMN = "Churn?"
POSITIVE_LABEL = "True."
NEGATIVE_LABEL = "False."
DROPPED_COLUMNS: tuple[str, ...] = ("Phone",)
CATEGORICAL_COLUMNS: tuple[str, ...] = ("State", "Area Code", "Int'l Plan", "VMail Plan")
NUMERIC_COLUMNS: tuple[str, ...] = (
    "Account Length",
    "VMail Message",
    "Day Mins",
    "Day Calls",
    "Day Charge",
    "Eve Mins",
    "Eve Calls",
    "Eve Charge",
    "Night Mins",
    "Night Calls",
    "Night Charge",
    "Intl Mins",
    "Intl Calls",
    "Intl Charge",
    "CustServ Calls",
)
# The file's column order: the seed's raw CSV interleaves categoricals with the first numeric column.
RAW_COLUMNS: tuple[str, ...] = (
    "State",
    "Account Length",
    "Area Code",
    "Phone",
    "Int'l Plan",
    "VMail Plan",
    *NUMERIC_COLUMNS[1:],
    LABEL_COLUMN,
)


class Columns(Protocol):
    """Raw columns by name: a pandas DataFrame or a plain dict of sequences."""

    def __getitem__(self, key: str, /) -> Any: ...


@dataclass(frozen=True)
class NumericStats:
    """What the transform needs to impute and scale one numeric column."""

    mean: float
    std: float
    median: float


@dataclass(frozen=True)
class FeatureSchema:
    """Everything needed to turn a raw record into the model's feature vector, as plain JSON."""

    categories: dict[str, list[str]]
    numeric: dict[str, NumericStats]
    label_column: str = LABEL_COLUMN
    positive_label: str = POSITIVE_LABEL
    negative_label: str = NEGATIVE_LABEL
    dropped_columns: list[str] = field(default_factory=lambda: list(DROPPED_COLUMNS))
    version: int = SCHEMA_VERSION

    @property
    def feature_names(self) -> list[str]:
        names = [f"{col}={cat}" for col, cats in self.categories.items() for cat in cats]
        return names + list(self.numeric)

    @property
    def n_features(self) -> int:
        return sum(len(c) for c in self.categories.values()) + len(self.numeric)

    @property
    def input_columns(self) -> list[str]:
        return list(self.categories) + list(self.numeric)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["feature_names"] = self.feature_names
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False)

    def save(self, path: str | Path) -> Path:
        target = Path(path)
        if target.is_dir():
            target = target / FEATURE_SCHEMA_FILENAME
        target.write_text(self.to_json(), encoding="utf-8")
        return target

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureSchema:
        try:
            version = int(data.get("version", SCHEMA_VERSION))
            if version != SCHEMA_VERSION:
                raise SchemaError(
                    f"feature schema version {version} is not supported (expected {SCHEMA_VERSION}); "
                    "re-run preprocess with this kubesage version"
                )
            categories = {str(k): [str(c) for c in v] for k, v in data["categories"].items()}
            numeric = {
                str(k): NumericStats(float(v["mean"]), float(v["std"]), float(v["median"]))
                for k, v in data["numeric"].items()
            }
            return cls(
                categories=categories,
                numeric=numeric,
                label_column=str(data.get("label_column", LABEL_COLUMN)),
                positive_label=str(data.get("positive_label", POSITIVE_LABEL)),
                negative_label=str(data.get("negative_label", NEGATIVE_LABEL)),
                dropped_columns=[str(c) for c in data.get("dropped_columns", DROPPED_COLUMNS)],
                version=version,
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise SchemaError(f"feature schema is malformed ({exc!r}); re-run preprocess to regenerate it") from exc

    @classmethod
    def load(cls, path: str | Path) -> FeatureSchema:
        source = Path(path)
        if source.is_dir():
            source = source / FEATURE_SCHEMA_FILENAME
        try:
            return cls.from_dict(json.loads(source.read_text(encoding="utf-8")))
        except FileNotFoundError as exc:
            raise SchemaError(f"no feature schema at {source}; preprocess writes one") from exc
        except json.JSONDecodeError as exc:
            raise SchemaError(f"feature schema {source} is not valid JSON: {exc}") from exc


def category_key(value: Any) -> str | None:
    """Normalise a categorical value so 415, 415.0 and "415" all name the same category."""
    if value is None:
        return None
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if value.is_integer():
            return str(int(value))
    # numbers.Integral covers numpy's integer scalars too, without importing numpy.
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return str(int(value))
    text = str(value).strip()
    return text or None


def fit_schema(columns: Columns) -> FeatureSchema:
    """Learn categories and numeric statistics from the training split's raw columns."""
    import numpy as np

    categories: dict[str, list[str]] = {}
    for col in CATEGORICAL_COLUMNS:
        keys = {category_key(v) for v in _column(columns, col)}
        categories[col] = sorted(k for k in keys if k is not None)
    numeric: dict[str, NumericStats] = {}
    for col in NUMERIC_COLUMNS:
        values = _parse_numeric(col, _column(columns, col))
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
        for row, value in enumerate(_column(columns, col)):
            position = index.get(category_key(value))  # type: ignore[arg-type]
            if position is not None:
                out[row, offset + position] = 1.0
        offset += len(cats)
    for col, stats in schema.numeric.items():
        values = _parse_numeric(col, _column(columns, col))
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


def encode_record(record: Mapping[str, Any], schema: FeatureSchema) -> list[float]:
    """One raw record to its feature vector in plain Python: `transform_columns` for a single row.

    The same category keys, number parsing, median imputation and float64 arithmetic
    ((value - mean) / std), so the result equals `transform_columns` bit for bit (tested).
    """
    out: list[float] = []
    for col, cats in schema.categories.items():
        if col not in record:
            raise SchemaError(f"record is missing column '{col}'")
        key = category_key(record[col])
        out.extend(1.0 if key == cat else 0.0 for cat in cats)
    for col, stats in schema.numeric.items():
        if col not in record:
            raise SchemaError(f"record is missing column '{col}'")
        number = parse_number(col, record[col], 0)
        if math.isnan(number):
            number = stats.median
        out.append((number - stats.mean) / stats.std)
    return out


def _column(columns: Columns, name: str) -> Sequence[Any]:
    try:
        values = columns[name]
    except KeyError as exc:
        raise SchemaError(f"missing column '{name}'") from exc
    return values.tolist() if hasattr(values, "tolist") else values


def _row_count(columns: Columns, schema: FeatureSchema) -> int:
    lengths = {len(_column(columns, col)) for col in schema.input_columns}
    if len(lengths) != 1:
        raise SchemaError("raw columns have different lengths")
    return lengths.pop()


def _parse_numeric(col: str, values: Sequence[Any]) -> np.ndarray:
    """Parse one numeric column; None, NaN and "" are missing, anything else must be a finite number."""
    import numpy as np

    parsed = np.empty(len(values), dtype=np.float64)
    for row, value in enumerate(values):
        parsed[row] = parse_number(col, value, row)
    return parsed


def parse_number(col: str, value: Any, row: int) -> float:
    """One raw numeric value: NaN when missing (None, NaN, ""), else a finite float or SchemaError."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return math.nan
    if isinstance(value, bool):
        raise SchemaError(f"column '{col}', row {row}: {value!r} is not a number")
    try:
        number = float(value)
    except OverflowError:
        raise SchemaError(f"column '{col}', row {row}: the value is too large for a number") from None
    except (TypeError, ValueError):
        raise SchemaError(f"column '{col}', row {row}: {shorten(repr(value))} is not a number") from None
    if math.isinf(number):
        raise SchemaError(f"column '{col}', row {row}: {shorten(repr(value))} is not a finite number")
    return number


def shorten(text: str, limit: int = 40) -> str:
    """A value quoted in an error message, cut to `limit` characters."""
    return text if len(text) <= limit else text[: limit - 3] + "..."
