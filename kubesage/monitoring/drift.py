"""`kubesage drift`'s one function: captures of a window against a baseline, Model Monitor's files out.

    result = run_drift(DriftRequest(captures="captures/", baseline_dir=model_dir, output_dir="drift/"))
    result.violations  # what constraint_violations.json holds; result.report the HTML page

Writes into `output_dir`: `statistics.json` (the captured data, Model Monitor's format, typed as the
baseline), `constraint_violations.json`, `drift.json` (per feature: method, distance, p-value, PSI;
the window; the malformed lines) and `report.html`. Tracking (MLflow) and CloudWatch metrics are
separate adapters (kubesage.monitoring.publish) so this stays a pure function of its files.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from kubesage.churn.schema import FEATURE_SCHEMA_FILENAME, FeatureSchema
from kubesage.errors import MonitoringError
from kubesage.monitoring.checks import FeatureDrift, Violation, check
from kubesage.monitoring.dataset import CaptureTable, read_table
from kubesage.monitoring.reading import Malformed, iter_lines
from kubesage.monitoring.report import render_report
from kubesage.monitoring.statistics import (
    CONSTRAINTS_FILENAME,
    STATISTICS_FILENAME,
    VIOLATIONS_FILENAME,
    InferredType,
    profile_table,
    read_json,
    statistics,
    write_json,
)

DRIFT_FILENAME = "drift.json"
MLFLOW_EXTRA_FILES = "extra_files"
REPORT_FILENAME = "report.html"
# Malformed lines listed in drift.json and the report; all are counted.
MALFORMED_SHOWN = 20


@dataclass(frozen=True)
class DriftRequest:
    """What to compare: captures (a folder or s3:// prefix), the baseline's folder, the window."""

    captures: str
    baseline_dir: Path
    output_dir: Path
    start: datetime | None = None
    end: datetime | None = None

    def __post_init__(self) -> None:
        if self.start is not None and self.end is not None and self.start >= self.end:
            raise MonitoringError(f"the window's start {self.start:%Y-%m-%dT%H:%M:%SZ} is not before its end")


@dataclass
class DriftResult:
    output_dir: Path
    rows: int
    events: int
    lines: int
    outside_window: int
    malformed: list[Malformed]
    violations: list[Violation]
    drifts: list[FeatureDrift]
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def report(self) -> Path:
        return self.files["report"]

    @property
    def drifted_features(self) -> list[str]:
        return [d.name for d in self.drifts if d.drifted]

    def summary(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "requests": self.events,
            "capture_lines": self.lines,
            "outside_window": self.outside_window,
            "malformed_lines": len(self.malformed),
            "malformed": [asdict(m) for m in self.malformed[:MALFORMED_SHOWN]],
            "violations": len(self.violations),
            "violation_list": [v.to_dict() for v in self.violations],
            "drifted_features": self.drifted_features,
            "features": [
                {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in asdict(d).items()}
                for d in self.drifts
            ],
        }


def load_baseline(baseline_dir: Path) -> tuple[dict[str, Any], dict[str, Any], FeatureSchema | None]:
    """statistics.json and constraints.json (and the feature schema, when beside them) of a model:
    in the folder itself, or in its `extra_files/` (where MLflow's log_model put them)."""
    extra = baseline_dir / MLFLOW_EXTRA_FILES
    if not (baseline_dir / STATISTICS_FILENAME).is_file() and (extra / STATISTICS_FILENAME).is_file():
        baseline_dir = extra
    baseline_stats = read_json(baseline_dir / STATISTICS_FILENAME, "baseline statistics")
    baseline_constraints = read_json(baseline_dir / CONSTRAINTS_FILENAME, "baseline constraints")
    schema_path = baseline_dir / FEATURE_SCHEMA_FILENAME
    schema = FeatureSchema.load(schema_path) if schema_path.is_file() else None
    return baseline_stats, baseline_constraints, schema


def analyse(
    table: CaptureTable, baseline_stats: dict[str, Any], baseline_constraints: dict[str, Any]
) -> tuple[dict[str, Any], list[Violation], list[FeatureDrift]]:
    """The current statistics (typed as the baseline) and the checks, on a table already read."""
    profiles = profile_table(table.frame)
    types: dict[str, InferredType] = {
        str(f["name"]): f["inferred_type"] for f in baseline_stats.get("features", []) if "inferred_type" in f
    }
    current = statistics(profiles, len(table.frame), types)
    violations, drifts = check(profiles, baseline_stats, baseline_constraints) if len(table.frame) else ([], [])
    return current, violations, drifts


def run_drift(request: DriftRequest) -> DriftResult:
    """Read the captures of the window, check them against the baseline, write the four files."""
    baseline_stats, baseline_constraints, schema = load_baseline(request.baseline_dir)
    table = read_table(iter_lines(request.captures, request.start, request.end), schema, request.start, request.end)
    if table.frame.empty:
        shown = (
            f" ({len(table.malformed)} malformed line(s), e.g. {table.malformed[0].reason})" if table.malformed else ""
        )
        raise MonitoringError(
            f"no captured requests in {request.captures} for the window{shown}; "
            "serve with --capture, or widen --start/--end"
        )
    current, violations, drifts = analyse(table, baseline_stats, baseline_constraints)
    out = request.output_dir
    out.mkdir(parents=True, exist_ok=True)
    result = DriftResult(
        output_dir=out,
        rows=len(table.frame),
        events=table.events,
        lines=table.lines,
        outside_window=table.outside_window,
        malformed=table.malformed,
        violations=violations,
        drifts=drifts,
    )
    window = {
        "start": request.start.isoformat() if request.start else None,
        "end": request.end.isoformat() if request.end else None,
    }
    result.files["statistics"] = write_json(out / STATISTICS_FILENAME, current)
    result.files["violations"] = write_json(
        out / VIOLATIONS_FILENAME, {"violations": [v.to_dict() for v in violations]}
    )
    result.files["drift"] = write_json(
        out / DRIFT_FILENAME, {"captures": request.captures, "window": window, **result.summary()}
    )
    report = out / REPORT_FILENAME
    report.write_text(
        render_report(result.summary(), baseline_stats, current, request.captures, window), encoding="utf-8"
    )
    result.files["report"] = report
    return result
