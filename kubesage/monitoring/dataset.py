"""Captured requests back to raw churn records: the table `kubesage drift` profiles.

Whatever the client sent becomes one row of raw columns (State, Account Length, ...), so captures
compare with the training split's raw columns whatever their encoding:

- raw JSON records (`{"records": [...]}`, a list of objects, one object) are the rows themselves;
- feature vectors (JSON `instances`/`inputs`, or CSV lines of the model's feature count) are turned
  back with the model's feature schema: the one-hot group's category, `value * std + mean` for a
  numeric column (an all-zero group, an unknown category, is a missing value);
- other CSV lines are raw columns in the file's order (without Phone and the label); extra fields are
  named `_c<i>` as Model Monitor names headerless columns, so they show as extra columns.

A line that cannot be read is counted with its file, line and reason and never stops the run.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd

from kubesage.churn.schema import FeatureSchema
from kubesage.errors import MonitoringError
from kubesage.monitoring.capture import NOT_FEATURES
from kubesage.monitoring.columns import MONITORED_COLUMNS
from kubesage.monitoring.reading import CaptureLine, Malformed, decode_line

VECTOR_KEYS = ("instances", "inputs")


@dataclass
class CaptureTable:
    """The captured rows of a window, with what was read and what could not be."""

    frame: pd.DataFrame
    events: int = 0
    lines: int = 0
    outside_window: int = 0
    malformed: list[Malformed] = field(default_factory=list)


def vector_to_record(vector: list[float], schema: FeatureSchema) -> dict[str, Any]:
    """One engineered feature vector back to its raw columns (the inverse of `encode_record`)."""
    if len(vector) != schema.n_features:
        raise MonitoringError(f"a feature vector has {len(vector)} values; the model takes {schema.n_features}")
    record: dict[str, Any] = {}
    offset = 0
    for col, cats in schema.categories.items():
        group = vector[offset : offset + len(cats)]
        hot = [i for i, v in enumerate(group) if v == 1.0]
        record[col] = cats[hot[0]] if len(hot) == 1 else None
        offset += len(cats)
    for col, stats in schema.numeric.items():
        value = vector[offset]
        # Rounded to 9 decimals: the scaling's float error would otherwise make whole numbers fractional.
        record[col] = None if value is None or math.isnan(value) else round(value * stats.std + stats.mean, 9)
        offset += 1
    return record


def body_to_records(data: bytes, content_type: str, schema: FeatureSchema | None) -> list[dict[str, Any]]:
    """One request body to raw records; MonitoringError names why it cannot be read."""
    kind = content_type.split(";")[0].strip().lower()
    if kind == "text/csv":
        return _csv_records(data, schema)
    if kind == "application/json" or kind.endswith("+json"):
        try:
            payload = json.loads(data)
        except ValueError as exc:
            raise MonitoringError(f"the captured JSON body does not parse ({exc})") from None
        return _json_records(payload, schema)
    raise MonitoringError(f"content type {content_type!r} is neither text/csv nor application/json")


def _json_records(payload: Any, schema: FeatureSchema | None) -> list[dict[str, Any]]:
    if isinstance(payload, dict):
        for key in VECTOR_KEYS:
            if key in payload:
                return _vectors(payload[key], schema)
        items = payload.get("records", [payload])
    else:
        items = payload
    if not isinstance(items, list) or not items:
        raise MonitoringError("the captured JSON holds no records or feature vectors")
    if all(isinstance(item, dict) for item in items):
        return [_raw(item) for item in items]
    if all(isinstance(item, int | float) for item in items):
        return _vectors([items], schema)
    return _vectors(items, schema)


def _vectors(rows: Any, schema: FeatureSchema | None) -> list[dict[str, Any]]:
    if schema is None:
        raise MonitoringError("feature vectors need the model's feature schema to be read as raw columns")
    if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
        raise MonitoringError("feature vectors must be lists of numbers")
    try:
        return [vector_to_record([math.nan if v is None else float(v) for v in row], schema) for row in rows]
    except (TypeError, ValueError):
        raise MonitoringError("a feature vector holds a value that is not a number") from None


def _raw(item: dict[str, Any]) -> dict[str, Any]:
    return {str(k): v for k, v in item.items() if k not in NOT_FEATURES}


def _csv_records(data: bytes, schema: FeatureSchema | None) -> list[dict[str, Any]]:
    try:
        rows = [row for row in csv.reader(io.StringIO(data.decode("utf-8"))) if row]
    except (UnicodeDecodeError, csv.Error) as exc:
        raise MonitoringError(f"the captured CSV body does not parse ({exc})") from None
    if not rows:
        raise MonitoringError("the captured CSV body is empty")
    out = []
    for row in rows:
        if schema is not None and len(row) == schema.n_features:
            try:
                out.append(vector_to_record([float(v) if v.strip() else math.nan for v in row], schema))
            except ValueError:
                raise MonitoringError("a CSV feature vector holds a value that is not a number") from None
        else:
            names = [*MONITORED_COLUMNS, *(f"_c{i}" for i in range(len(MONITORED_COLUMNS), len(row)))]
            out.append({name: (value if value.strip() else None) for name, value in zip(names, row, strict=False)})
    return out


def read_table(
    lines: Iterable[CaptureLine],
    schema: FeatureSchema | None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> CaptureTable:
    """Every readable request of the window [start, end) as one table of raw columns."""
    rows: list[dict[str, Any]] = []
    table = CaptureTable(frame=pd.DataFrame())
    for line in lines:
        table.lines += 1
        try:
            request = decode_line(line)
            if (start is not None and request.inference_time < start) or (
                end is not None and request.inference_time >= end
            ):
                table.outside_window += 1
                continue
            rows.extend(body_to_records(request.data, request.content_type, schema))
            table.events += 1
        except MonitoringError as exc:
            table.malformed.append(Malformed(line.source, line.line, str(exc)))
    table.frame = pd.DataFrame.from_records(rows) if rows else pd.DataFrame()
    return table
