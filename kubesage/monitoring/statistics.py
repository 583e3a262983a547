"""Model Monitor's data-quality files: `statistics.json` and `constraints.json`, from a table of raw columns.

The formats are SageMaker Model Monitor's (version 0): per feature an `inferred_type` (Integral,
Fractional, String), `numerical_statistics` (common counts, mean, sum, std_dev, min, max and a KLL
`distribution`: ten equal-width buckets and a sketch) or `string_statistics` (distinct count and
categorical buckets); constraints hold per feature the type, completeness, non-negativity and string
domains, and the `monitoring_config` thresholds the checks read.

The sketch has KLL's shape (`parameters` c and k, `data` one list per compactor level, a value at
level L weighing 2**L) but is compacted deterministically: up to k values stay exact at level 0; a
longer column keeps every 2**L-th sorted value at the smallest level L that fits in k. The KS distance
is computed against that weighted sample, so a baseline of up to 2,048 rows is compared exactly.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from kubesage.churn.schema import category_key
from kubesage.errors import MonitoringError
from kubesage.monitoring.columns import MONITORED_COLUMNS, STRING_COLUMNS

STATISTICS_FILENAME = "statistics.json"
CONSTRAINTS_FILENAME = "constraints.json"
VIOLATIONS_FILENAME = "constraint_violations.json"
SKETCH_K = 2048
SKETCH_C = 0.64
BUCKETS = 10
# Whole-number test for values decoded from scaled feature vectors (rounded to 9 decimals there).
WHOLE_TOLERANCE = 1e-6

InferredType = Literal["Integral", "Fractional", "String", "Unknown"]


@dataclass(frozen=True)
class MonitoringConfig:
    """Model Monitor's `monitoring_config`, with its default thresholds."""

    datatype_check_threshold: float = 0.1
    domain_content_threshold: float = 0.1
    comparison_threshold: float = 0.1
    comparison_method: str = "Robust"
    categorical_comparison_threshold: float = 0.1
    categorical_drift_method: str = "LInfinity"

    def to_dict(self) -> dict[str, Any]:
        return {
            "evaluate_constraints": "Enabled",
            "emit_metrics": "Enabled",
            "datatype_check_threshold": self.datatype_check_threshold,
            "domain_content_threshold": self.domain_content_threshold,
            "distribution_constraints": {
                "perform_comparison": "Enabled",
                "comparison_threshold": self.comparison_threshold,
                "comparison_method": self.comparison_method,
                "categorical_comparison_threshold": self.categorical_comparison_threshold,
                "categorical_drift_method": self.categorical_drift_method,
            },
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MonitoringConfig:
        dist = data.get("distribution_constraints", {})
        config = cls(
            datatype_check_threshold=float(data.get("datatype_check_threshold", 0.1)),
            domain_content_threshold=float(data.get("domain_content_threshold", 0.1)),
            comparison_threshold=float(dist.get("comparison_threshold", 0.1)),
            comparison_method=str(dist.get("comparison_method", "Robust")),
            categorical_comparison_threshold=float(dist.get("categorical_comparison_threshold", 0.1)),
            categorical_drift_method=str(dist.get("categorical_drift_method", "LInfinity")),
        )
        if config.comparison_method not in ("Simple", "Robust"):
            raise MonitoringError(f"comparison_method {config.comparison_method!r} is not Simple or Robust")
        if config.categorical_drift_method != "LInfinity":
            raise MonitoringError(
                f"categorical_drift_method {config.categorical_drift_method!r} is not supported; use LInfinity"
            )
        return config


@dataclass(frozen=True)
class ColumnProfile:
    """One column's values sorted by kind: missing, numbers (for numeric columns), strings."""

    name: str
    as_string: bool
    total: int
    missing: int
    numbers: np.ndarray
    integral: int
    strings: Counter[str] = field(default_factory=Counter)

    @property
    def present(self) -> int:
        return self.total - self.missing

    @property
    def completeness(self) -> float:
        return self.present / self.total if self.total else 0.0

    def inferred_type(self, datatype_threshold: float = 0.0) -> InferredType:
        if self.as_string:
            return "String"
        if self.present == 0:
            return "Unknown"
        if len(self.strings) and sum(self.strings.values()) / self.present > datatype_threshold:
            return "String"
        return "Integral" if self.integral == len(self.numbers) else "Fractional"


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and not value.strip()


def profile_column(name: str, values: list[Any], as_string: bool) -> ColumnProfile:
    """Sort one column's values: a numeric column's non-numbers are kept as strings (the type check reads them)."""
    missing = sum(1 for v in values if _is_missing(v))
    strings: Counter[str] = Counter()
    numbers: list[float] = []
    for value in values:
        if _is_missing(value):
            continue
        if as_string:
            strings[category_key(value) or ""] += 1
            continue
        try:
            number = float(value) if not isinstance(value, bool) else math.nan
        except (TypeError, ValueError):
            number = math.nan
        if math.isfinite(number):
            numbers.append(number)
        else:
            strings[str(value)] += 1
    array = np.sort(np.asarray(numbers, dtype=np.float64))
    integral = int(np.sum(np.abs(array - np.round(array)) <= WHOLE_TOLERANCE)) if array.size else 0
    return ColumnProfile(name, as_string, len(values), missing, array, integral, strings)


def profile_table(frame: pd.DataFrame) -> dict[str, ColumnProfile]:
    """Every column of the table, monitored columns first in the record's order, then any extra ones."""
    names = [c for c in MONITORED_COLUMNS if c in frame.columns] + [
        str(c) for c in frame.columns if c not in MONITORED_COLUMNS
    ]
    return {
        name: profile_column(name, frame[name].tolist(), as_string=name in STRING_COLUMNS or name.startswith("_c"))
        for name in names
    }


# ------------------------------------------------------------------ sketch


def sketch_of(sorted_values: np.ndarray, k: int = SKETCH_K) -> dict[str, Any]:
    """A KLL-shaped sketch: exact up to k values, else every 2**L-th value at level L (see the module doc)."""
    n = len(sorted_values)
    level = 0 if n <= k else math.ceil(math.log2(n / k))
    step = 2**level
    kept = sorted_values[step // 2 :: step] if level else sorted_values
    data: list[list[float]] = [[] for _ in range(level)] + [[float(v) for v in kept]]
    return {"parameters": {"c": SKETCH_C, "k": float(k)}, "data": data}


def sketch_sample(sketch: dict[str, Any]) -> np.ndarray:
    """The weighted sample a sketch stands for: each value at level L repeated 2**L times."""
    parts = [np.repeat(np.asarray(level, dtype=np.float64), 2**i) for i, level in enumerate(sketch.get("data", []))]
    return np.sort(np.concatenate(parts)) if parts else np.empty(0)


def _buckets(values: np.ndarray) -> list[dict[str, float]]:
    if values.size == 0:
        return []
    low, high = float(values[0]), float(values[-1])
    if low == high:
        return [{"lower_bound": low, "upper_bound": high, "count": float(values.size)}]
    counts, edges = np.histogram(values, bins=BUCKETS, range=(low, high))
    return [
        {"lower_bound": float(edges[i]), "upper_bound": float(edges[i + 1]), "count": float(counts[i])}
        for i in range(BUCKETS)
    ]


# ------------------------------------------------------------------ statistics.json


def feature_statistics(profile: ColumnProfile, inferred: InferredType) -> dict[str, Any]:
    common = {"num_present": profile.present, "num_missing": profile.missing}
    if inferred == "String" or profile.as_string:
        counts = profile.strings
        return {
            "name": profile.name,
            "inferred_type": "String",
            "string_statistics": {
                "common": common,
                "distinct_count": float(len(counts)),
                "distribution": {
                    "categorical": {"buckets": [{"value": v, "count": float(c)} for v, c in sorted(counts.items())]}
                },
            },
        }
    values = profile.numbers
    stats: dict[str, Any] = {"common": {"num_present": int(values.size), "num_missing": profile.missing}}
    if values.size:
        stats.update(
            mean=float(values.mean()),
            sum=float(values.sum()),
            std_dev=float(values.std()),
            min=float(values[0]),
            max=float(values[-1]),
        )
    stats["distribution"] = {"kll": {"buckets": _buckets(values), "sketch": sketch_of(values)}}
    return {"name": profile.name, "inferred_type": inferred, "numerical_statistics": stats}


def statistics(
    profiles: dict[str, ColumnProfile], item_count: int, types: dict[str, InferredType] | None = None
) -> dict[str, Any]:
    """statistics.json of a table; `types` (the baseline's) fixes each column's type where known."""
    features = []
    for name, profile in profiles.items():
        inferred = (types or {}).get(name) or profile.inferred_type()
        if inferred in ("Integral", "Fractional") and profile.as_string:
            inferred = "String"
        features.append(feature_statistics(profile, inferred))
    return {"version": 0.0, "dataset": {"item_count": item_count}, "features": features}


def constraints(profiles: dict[str, ColumnProfile], config: MonitoringConfig | None = None) -> dict[str, Any]:
    """constraints.json suggested from the baseline, as Model Monitor's baselining job suggests them."""
    features = []
    for name, profile in profiles.items():
        inferred = profile.inferred_type()
        feature: dict[str, Any] = {"name": name, "inferred_type": inferred, "completeness": profile.completeness}
        if inferred == "String":
            feature["string_constraints"] = {"domains": sorted(profile.strings)}
        else:
            feature["num_constraints"] = {"is_non_negative": bool(profile.numbers.size and profile.numbers[0] >= 0)}
        features.append(feature)
    return {"version": 0.0, "features": features, "monitoring_config": (config or MonitoringConfig()).to_dict()}


def baseline_files(frame: pd.DataFrame, directory: str | Path, config: MonitoringConfig | None = None) -> Path:
    """Write statistics.json and constraints.json of a raw table (the training split) into `directory`."""
    columns = [c for c in MONITORED_COLUMNS if c in frame.columns]
    profiles = profile_table(frame[columns])
    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    write_json(target / STATISTICS_FILENAME, statistics(profiles, len(frame)))
    write_json(target / CONSTRAINTS_FILENAME, constraints(profiles, config))
    return target


def write_json(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return path


def read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MonitoringError(
            f"no {what} at {path}; the training pipeline's preprocess step writes it (re-run the pipeline)"
        ) from None
    except ValueError as exc:
        raise MonitoringError(f"{what} {path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("features"), list):
        raise MonitoringError(f"{what} {path} has no 'features' list; is it a Model Monitor {what}?")
    return data
