"""Reading captured requests back: every line of the capture files of a window, decoded to its body.

Local folders and `s3://bucket/prefix` alike (SageMaker's `ENDPOINT/VARIANT/yyyy/mm/dd/hh/*.jsonl`
layout: hour folders outside the window are not read; any other layout is read whole and filtered by
each record's `inferenceTime`). A line that is not a capture record raises MonitoringError with the
reason, which the caller counts; it never stops a run.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from kubesage.errors import MonitoringError


def parse_time(text: str) -> datetime:
    """An inferenceTime or a window bound (ISO 8601; no zone means UTC)."""
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise MonitoringError(f"{text!r} is not an ISO 8601 time (e.g. 2026-12-05T03:00:00Z)") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


_UNITS = {"m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> timedelta:
    """`30m`, `24h`, `7d` to a timedelta."""
    raw = text.strip().lower()
    if len(raw) < 2 or raw[-1] not in _UNITS or not raw[:-1].isdigit():
        raise MonitoringError(f"--last {text!r} is not a duration like 30m, 24h or 7d")
    return timedelta(seconds=int(raw[:-1]) * _UNITS[raw[-1]])


def window(
    start: str | None, end: str | None, last: str | None, now: datetime | None = None
) -> tuple[datetime | None, datetime | None]:
    """The [start, end) window from --start/--end (ISO 8601, UTC unless a zone is given) or --last."""
    if last and start:
        raise MonitoringError("give --last or --start, not both")
    end_time = parse_time(end) if end else None
    if last:
        return (end_time or now or datetime.now(UTC)) - parse_duration(last), end_time
    return (parse_time(start) if start else None), end_time


@dataclass(frozen=True)
class CaptureLine:
    """One line of a capture file, located for error messages."""

    source: str
    line: int
    text: str


@dataclass(frozen=True)
class Malformed:
    source: str
    line: int
    reason: str


@dataclass(frozen=True)
class CapturedRequest:
    inference_time: datetime
    content_type: str
    data: bytes


def decode_line(line: CaptureLine) -> CapturedRequest:
    """One capture line to its request body; MonitoringError (the reason) when it is not a capture record."""
    try:
        record = json.loads(line.text)
    except json.JSONDecodeError as exc:
        raise MonitoringError(f"not JSON ({exc.msg})") from None
    try:
        request = record["captureData"]["endpointInput"]
        data, encoding = request["data"], str(request.get("encoding", "")).upper()
        content_type = str(request.get("observedContentType", ""))
        when = parse_time(str(record["eventMetadata"]["inferenceTime"]))
    except (KeyError, TypeError, AttributeError) as exc:
        raise MonitoringError(f"not a capture record (no {exc})") from None
    if not isinstance(data, str):
        raise MonitoringError("endpointInput.data is not a string")
    if encoding in ("CSV", "JSON"):
        raw = data.encode("utf-8")
    elif encoding == "BASE64":
        try:
            raw = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise MonitoringError("endpointInput.data is not valid BASE64") from None
    else:
        raise MonitoringError(f"encoding {encoding!r} is not CSV, JSON or BASE64")
    return CapturedRequest(inference_time=when, content_type=content_type, data=raw)


def hour_in_window(parts: tuple[str, ...], start: datetime | None, end: datetime | None) -> bool:
    """Whether a yyyy/mm/dd/hh folder can hold records in [start, end): files outside are not read."""
    if len(parts) < 4 or not all(p.isdigit() for p in parts[-4:]):
        return True  # not SageMaker's layout: read it and filter by inferenceTime
    year, month, day, hour = (int(p) for p in parts[-4:])
    try:
        begin = datetime(year, month, day, hour, tzinfo=UTC)
    except ValueError:
        return True
    if end is not None and begin >= end:
        return False
    return not (start is not None and begin.timestamp() + 3600 <= start.timestamp())


def iter_lines(source: str, start: datetime | None = None, end: datetime | None = None) -> Iterator[CaptureLine]:
    """Every line of every `.jsonl` under a folder or an `s3://bucket/prefix`; hours outside the window skipped."""
    if source.startswith("s3://"):
        yield from _iter_s3_lines(source, start, end)
        return
    root = Path(source.removeprefix("file://"))
    if not root.exists():
        raise MonitoringError(f"capture folder {root} does not exist; serve with --capture {root} first")
    files = [root] if root.is_file() else sorted(root.rglob("*.jsonl"))
    for path in files:
        if not hour_in_window(path.parent.relative_to(root).parts if path != root else (), start, end):
            continue
        with path.open(encoding="utf-8", errors="replace") as handle:
            for number, text in enumerate(handle, start=1):
                if text.strip():
                    yield CaptureLine(str(path), number, text)


def _iter_s3_lines(source: str, start: datetime | None, end: datetime | None) -> Iterator[CaptureLine]:
    import boto3  # AWS_ENDPOINT_URL (moto, a local S3) is honoured by boto3 itself

    from kubesage.util.aws import aws_call

    bucket, _, prefix = source.removeprefix("s3://").partition("/")
    client = boto3.client("s3")
    with aws_call(f"s3:ListBucket on {source}"):
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        keys = [item["Key"] for page in pages for item in page.get("Contents", []) if item["Key"].endswith(".jsonl")]
    for key in sorted(keys):
        folders = tuple(key[len(prefix) :].strip("/").split("/")[:-1])
        if not hour_in_window(folders, start, end):
            continue
        with aws_call(f"s3:GetObject on s3://{bucket}/{key}"):
            body = client.get_object(Bucket=bucket, Key=key)["Body"].read().decode("utf-8", errors="replace")
        for number, text in enumerate(body.splitlines(), start=1):
            if text.strip():
                yield CaptureLine(f"s3://{bucket}/{key}", number, text)
