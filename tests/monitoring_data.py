"""Captures made from the real churn data, for the drift tests: the rows preprocess (seed 42) held out,
written as SageMaker's data capture writes them, in any of its three encodings."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pandas as pd

from kubesage.churn.features import FeatureSchema, transform_columns
from kubesage.components.preprocess import SplitFractions, split_frame
from kubesage.monitoring.capture import capture_record, format_time

ROWS_PER_REQUEST = 10
T0 = 1_796_000_000.0  # 2026-11-29T...Z: every request one second apart from here


def held_out_rows(churn: pd.DataFrame) -> pd.DataFrame:
    """The rows preprocess (seed 42) did not train on: validation and test, 1,500 rows."""
    splits = split_frame(churn, churn["Churn?"], SplitFractions(), 42)
    return pd.concat([splits["validation"], splits["test"]])


def model_baseline(prepared: dict[str, Path], folder: Path) -> Path:
    """preprocess's baseline with the feature schema beside it, as a registered model holds them."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("statistics.json", "constraints.json"):
        (folder / name).write_bytes((prepared["baseline"] / name).read_bytes())
    (folder / "feature_schema.json").write_bytes(prepared["schema"].read_bytes())
    return folder


def write_captures(frame: pd.DataFrame, folder: Path, schema: FeatureSchema, encodings: tuple[str, ...]) -> Path:
    """The rows as capture files in SageMaker's layout, ROWS_PER_REQUEST per request, rotating encodings."""
    records = frame.drop(columns=["Churn?"]).to_dict(orient="records")
    lines: dict[Path, list[str]] = {}
    for i in range(0, len(records), ROWS_PER_REQUEST):
        chunk = records[i : i + ROWS_PER_REQUEST]
        encoding = encodings[(i // ROWS_PER_REQUEST) % len(encodings)]
        if encoding == "CSV":
            vectors = transform_columns(pd.DataFrame(chunk), schema)
            body, kind = "\n".join(",".join(repr(float(v)) for v in row) for row in vectors).encode(), "text/csv"
        else:
            body, kind = json.dumps({"records": chunk}).encode(), "application/json"
        epoch = T0 + i
        record = capture_record(body, kind, b'{"predictions": []}', "application/json", epoch)
        if encoding == "BASE64":
            request = record["captureData"]["endpointInput"]
            request.update(encoding="BASE64", data=base64.b64encode(request["data"].encode()).decode())
        hour = folder / "ep" / "AllTraffic" / format_time(epoch)[:13].replace("-", "/").replace("T", "/")
        lines.setdefault(hour / "capture.jsonl", []).append(json.dumps(record))
    for path, content in lines.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(content) + "\n")
    return folder
