"""The checks of Model Monitor's `constraint_violations.json`, and PSI, on the current table's profiles.

- `missing_column_check`: a baseline column no captured record has;
- `extra_column_check`: a column the baseline does not have (Phone and the label never count);
- `data_type_check`: over `datatype_check_threshold` of a numeric column's values are not numbers
  (or, for an Integral column, not whole numbers);
- `completeness_check`: the share of present values is below the constraint's `completeness`;
- `categorical_values_check`: over `domain_content_threshold` of a string column's values are outside
  the baseline's domain;
- `baseline_drift_check`: the distance to the baseline is over `comparison_threshold`: for numbers
  the two-sample Kolmogorov-Smirnov statistic (scipy's `ks_2samp`, as Model Monitor), for strings the
  L-infinity distance between the category shares (`categorical_comparison_threshold`). With the
  `Robust` method a distance over the threshold is a violation only when the difference is also
  significant at 5% (KS test, or chi-squared on the category counts): one captured request is never
  "drift". Model Monitor does not publish its Robust rule; this is kubesage's reading.

PSI (population stability index, ten baseline-quantile bins or the categories, 1e-4 floor) is reported
per feature alongside; it is not a Model Monitor check.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import stats as scipy_stats

from kubesage.monitoring.statistics import ColumnProfile, MonitoringConfig, sketch_sample

SIGNIFICANCE = 0.05
PSI_BINS = 10
PSI_FLOOR = 1e-4
# Cochran's rule for the chi-squared test: no expected count below 1, at most a fifth below 5. A few
# captured requests fail it, and a rare category's one hit would otherwise read as p << 0.05.
CHI2_MIN_EXPECTED = 1.0
CHI2_SMALL_EXPECTED = 5.0
CHI2_MAX_SMALL_SHARE = 0.2
# The KS p-value is asymptotic (method="asymp"): below this many captured values it has no meaning, and
# one request's value in a tail of the baseline read as p < 0.05.
KS_MIN_VALUES = 30


@dataclass(frozen=True)
class Violation:
    feature_name: str
    constraint_check_type: str
    description: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


@dataclass(frozen=True)
class FeatureDrift:
    """One feature's comparison with the baseline."""

    name: str
    inferred_type: str
    method: str  # "KS" or "LInfinity"
    distance: float | None
    p_value: float | None
    psi: float | None
    drifted: bool


def baseline_features(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {str(f["name"]): f for f in document.get("features", [])}


def categorical_shares(feature: dict[str, Any]) -> dict[str, float]:
    buckets = feature["string_statistics"]["distribution"]["categorical"]["buckets"]
    return {str(b["value"]): float(b["count"]) for b in buckets}


def ks_distance(current: np.ndarray, baseline: np.ndarray) -> tuple[float, float | None]:
    """Model Monitor's numeric distance: the two-sample KS statistic, with its p-value (None when the
    captured values are too few for it)."""
    result = scipy_stats.ks_2samp(current, baseline, method="asymp")
    return float(result.statistic), float(result.pvalue) if current.size >= KS_MIN_VALUES else None


def linf_distance(current: dict[str, float], baseline: dict[str, float]) -> tuple[float, float | None]:
    """L-infinity distance between category shares, with a chi-squared test's p-value on the counts
    (None when the counts are too few for the test to mean anything)."""
    keys = sorted(set(current) | set(baseline))
    cur = np.array([current.get(k, 0.0) for k in keys])
    base = np.array([baseline.get(k, 0.0) for k in keys])
    distance = float(np.max(np.abs(cur / cur.sum() - base / base.sum())))
    table = np.vstack([cur, base])
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2:
        return distance, 1.0
    result = scipy_stats.chi2_contingency(table, correction=False)
    expected = np.asarray(result.expected_freq)
    if expected.min() < CHI2_MIN_EXPECTED or (expected < CHI2_SMALL_EXPECTED).mean() > CHI2_MAX_SMALL_SHARE:
        return distance, None
    return distance, float(result.pvalue)


def psi(current: np.ndarray, baseline: np.ndarray) -> float:
    """Population stability index over probability vectors (same bins), floored at PSI_FLOOR."""
    cur = np.maximum(current / max(current.sum(), 1.0), PSI_FLOOR)
    base = np.maximum(baseline / max(baseline.sum(), 1.0), PSI_FLOOR)
    return float(np.sum((cur - base) * np.log(cur / base)))


def numeric_psi(current: np.ndarray, baseline: np.ndarray) -> float:
    edges = np.unique(np.quantile(baseline, np.linspace(0, 1, PSI_BINS + 1)[1:-1]))
    bins = np.concatenate([[-np.inf], edges, [np.inf]])
    return psi(np.histogram(current, bins)[0].astype(float), np.histogram(baseline, bins)[0].astype(float))


def compare_feature(profile: ColumnProfile, feature: dict[str, Any], config: MonitoringConfig) -> FeatureDrift:
    """One feature's distance, p-value and PSI against its baseline statistics."""
    inferred = str(feature["inferred_type"])
    robust = config.comparison_method == "Robust"
    if "string_statistics" in feature:
        base = categorical_shares(feature)
        cur = {k: float(v) for k, v in profile.strings.items()}
        if not cur:
            return FeatureDrift(profile.name, inferred, "LInfinity", None, None, None, False)
        distance, p_value = linf_distance(cur, base)
        keys = sorted(set(cur) | set(base))
        index = psi(np.array([cur.get(k, 0.0) for k in keys]), np.array([base.get(k, 0.0) for k in keys]))
        significant = p_value is not None and p_value < SIGNIFICANCE
        drifted = distance > config.categorical_comparison_threshold and (not robust or significant)
        return FeatureDrift(profile.name, inferred, "LInfinity", distance, p_value, index, drifted)
    sample = sketch_sample(feature["numerical_statistics"]["distribution"]["kll"]["sketch"])
    if profile.numbers.size == 0 or sample.size == 0:
        return FeatureDrift(profile.name, inferred, "KS", None, None, None, False)
    distance, p_value = ks_distance(profile.numbers, sample)
    significant = p_value is not None and p_value < SIGNIFICANCE
    drifted = distance > config.comparison_threshold and (not robust or significant)
    return FeatureDrift(profile.name, inferred, "KS", distance, p_value, numeric_psi(profile.numbers, sample), drifted)


def check(
    profiles: dict[str, ColumnProfile],
    baseline_statistics: dict[str, Any],
    baseline_constraints: dict[str, Any],
) -> tuple[list[Violation], list[FeatureDrift]]:
    """Every violation of the constraints by the current table, and each feature's drift measures."""
    config = MonitoringConfig.from_dict(baseline_constraints.get("monitoring_config", {}))
    expected = baseline_features(baseline_constraints)
    stats = baseline_features(baseline_statistics)
    violations: list[Violation] = []
    drifts: list[FeatureDrift] = []
    for name, constraint in expected.items():
        profile = profiles.get(name)
        if profile is None:
            violations.append(
                Violation(name, "missing_column_check", f"Column {name!r} of the baseline is not in the captured data")
            )
            continue
        violations.extend(_type_and_content(profile, constraint, config))
        if name in stats:
            drift = compare_feature(profile, stats[name], config)
            drifts.append(drift)
            if drift.drifted:
                limit = (
                    config.categorical_comparison_threshold
                    if drift.method == "LInfinity"
                    else config.comparison_threshold
                )
                violations.append(
                    Violation(
                        name,
                        "baseline_drift_check",
                        f"Baseline drift distance: {drift.distance:.4f} exceeds threshold: {limit} "
                        f"({drift.method}, {config.comparison_method}, p-value "
                        f"{'n/a' if drift.p_value is None else format(drift.p_value, '.2g')})",
                    )
                )
    for name in profiles:
        if name not in expected:
            violations.append(
                Violation(
                    name, "extra_column_check", f"Column {name!r} is in the captured data but not in the baseline"
                )
            )
    return violations, drifts


def _type_and_content(profile: ColumnProfile, constraint: dict[str, Any], config: MonitoringConfig) -> list[Violation]:
    out: list[Violation] = []
    name = profile.name
    expected_type = str(constraint.get("inferred_type", "Unknown"))
    present = profile.present
    if expected_type in ("Integral", "Fractional") and present:
        matching = len(profile.numbers) if expected_type == "Fractional" else profile.integral
        share = matching / present
        if 1 - share > config.datatype_check_threshold:
            out.append(
                Violation(
                    name,
                    "data_type_check",
                    f"Data type match requirement is not met. Expected data type: {expected_type}, Expected match: "
                    f"{100 * (1 - config.datatype_check_threshold):.0f}%. Observed: only {100 * share:.1f}% of data "
                    f"is {expected_type}.",
                )
            )
    required = float(constraint.get("completeness", 0.0))
    if profile.total and profile.completeness < required - 1e-12:
        out.append(
            Violation(
                name,
                "completeness_check",
                f"Data completeness requirement is not met. Expected: {100 * required:.1f}%, observed: "
                f"{100 * profile.completeness:.1f}% of values present.",
            )
        )
    domains = constraint.get("string_constraints", {}).get("domains")
    if expected_type == "String" and domains is not None and present:
        allowed = set(map(str, domains))
        unknown = sum(c for v, c in profile.strings.items() if v not in allowed)
        if unknown / present > config.domain_content_threshold:
            examples = ", ".join(repr(v) for v in sorted(v for v in profile.strings if v not in allowed)[:3])
            out.append(
                Violation(
                    name,
                    "categorical_values_check",
                    f"Data content check failed: {100 * unknown / present:.1f}% of values are outside the baseline's "
                    f"domain (threshold {100 * config.domain_content_threshold:.0f}%), e.g. {examples}.",
                )
            )
    return out


def finite_or_none(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else value
