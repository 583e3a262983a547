"""The churn feature schema and one record's encoding, in plain Python (no numpy).

What the Lambda handler needs to turn one raw record into the model's feature vector, and what it
ships in its zip: the column lists, `FeatureSchema` (categories and numeric statistics, as JSON) and
`encode_record`. The batch transform over columns (numpy, pandas) is kubesage.churn.features, which
applies the same per-value rules (`category_key`, `parse_number`), so the two cannot drift apart.
"""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kubesage.errors import SchemaError

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
