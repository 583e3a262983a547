"""Data capture in SageMaker's own format, as the server writes it (kubesage.monitoring.reading reads it).

A SageMaker endpoint with data capture on writes JSON Lines to
`s3://PREFIX/ENDPOINT/VARIANT/yyyy/mm/dd/hh/<uuid>.jsonl`, one object per request:

    {"captureData": {"endpointInput": {"observedContentType", "mode": "INPUT", "data", "encoding"},
                     "endpointOutput": {...same, "mode": "OUTPUT"}},
     "eventMetadata": {"eventId", "inferenceTime"}, "eventVersion": "0"}

with `encoding` CSV, JSON or BASE64. `kubesage serve --capture DIR` writes the same records under
`DIR/ENDPOINT/VARIANT/yyyy/mm/dd/hh/`, so one reader serves both. The `Phone` column (dropped by the
model, personal data) is removed from raw records before anything is written, and dropped again
when reading captures someone else wrote.

The server's writer (kubesage.monitoring.capture_writer) keeps the request path cheap: the event loop
only samples and frames the raw bytes; a child process turns them into these records and writes them.
"""

from __future__ import annotations

import base64
import functools
import json
import os
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from kubesage.churn.schema import DROPPED_COLUMNS, LABEL_COLUMN
from kubesage.errors import MonitoringError

ENV_CAPTURE_DIR = "KUBESAGE_CAPTURE_DIR"
ENV_CAPTURE_PERCENT = "KUBESAGE_CAPTURE_PERCENT"
ENV_CAPTURE_ENDPOINT = "KUBESAGE_CAPTURE_ENDPOINT"
ENV_CAPTURE_VARIANT = "KUBESAGE_CAPTURE_VARIANT"
DEFAULT_ENDPOINT = "local"
DEFAULT_VARIANT = "AllTraffic"  # the variant name kubesage's endpoint template gives
CSV_TYPE = "text/csv"
JSON_TYPE = "application/json"
# Never written to a capture, never read from one: personal data the model does not use, and the label.
NEVER_CAPTURED: frozenset[str] = frozenset(DROPPED_COLUMNS)
# (first letter, quoted key) of each never-captured key, for the byte searches in _may_hold_private.
_NEVER_CAPTURED_KEYS = tuple((key[:1].encode(), f'"{key}"'.encode()) for key in NEVER_CAPTURED)


@dataclass(frozen=True)
class CaptureConfig:
    """Where and how much to capture; the server's workers get it through the environment."""

    directory: Path
    percent: float = 100.0
    endpoint: str = DEFAULT_ENDPOINT
    variant: str = DEFAULT_VARIANT

    def __post_init__(self) -> None:
        if not 0 < self.percent <= 100:
            raise MonitoringError(f"capture percentage {self.percent} must be in (0, 100]; 100 captures every request")
        for name, value in (("endpoint", self.endpoint), ("variant", self.variant)):
            if not value or "/" in value:
                raise MonitoringError(f"capture {name} name {value!r} must be non-empty and contain no '/'")

    def to_env(self) -> dict[str, str]:
        return {
            ENV_CAPTURE_DIR: str(self.directory),
            ENV_CAPTURE_PERCENT: repr(self.percent),
            ENV_CAPTURE_ENDPOINT: self.endpoint,
            ENV_CAPTURE_VARIANT: self.variant,
        }

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> CaptureConfig | None:
        """The configuration the image's `serve` (or `kubesage serve --capture`) set, or None: no capture."""
        env = os.environ if environ is None else environ
        directory = env.get(ENV_CAPTURE_DIR, "").strip()
        if not directory:
            return None
        raw_percent = env.get(ENV_CAPTURE_PERCENT, "").strip() or "100"
        try:
            percent = float(raw_percent)
        except ValueError:
            raise MonitoringError(f"{ENV_CAPTURE_PERCENT}={raw_percent!r} is not a number (a percentage)") from None
        return cls(
            directory=Path(directory),
            percent=percent,
            endpoint=env.get(ENV_CAPTURE_ENDPOINT, "").strip() or DEFAULT_ENDPOINT,
            variant=env.get(ENV_CAPTURE_VARIANT, "").strip() or DEFAULT_VARIANT,
        )


# ------------------------------------------------------------------ records


def encode_payload(data: bytes, content_type: str | None) -> dict[str, str]:
    """One side of a capture record: CSV or JSON as text when it is UTF-8, else BASE64 (as SageMaker)."""
    kind = (content_type or "").split(";")[0].strip().lower()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and kind == CSV_TYPE:
        encoding = "CSV"
    elif text is not None and (kind == JSON_TYPE or kind.endswith("+json")):
        encoding = "JSON"
    else:
        encoding, text = "BASE64", base64.b64encode(data).decode("ascii")
    return {"observedContentType": content_type or "", "data": text, "encoding": encoding}


def _may_hold_private(body: bytes) -> bool:
    """Whether a JSON body might name a never-captured key: single-byte searches first (memchr-fast;
    feature vectors hold neither a key's first letter nor a backslash), since a \\u escape could spell
    the key without its bytes ("\\u0050hone")."""
    if b"\\" in body:
        return True
    return any(first in body and key in body for first, key in _NEVER_CAPTURED_KEYS)


def strip_private(body: bytes, content_type: str | None) -> bytes:
    """The body without the never-captured columns: raw JSON records lose their `Phone` key.

    CSV bodies are feature vectors (the server takes no raw CSV records), so they hold no phone number.
    """
    if media_type(content_type) != JSON_TYPE or not _may_hold_private(body):
        return body
    try:
        payload = json.loads(body)
    except ValueError:
        return body
    records = payload.get("records") if isinstance(payload, dict) and "records" in payload else payload
    items = records if isinstance(records, list) else [records]
    changed = False
    for item in items:
        if isinstance(item, dict):
            for key in NEVER_CAPTURED & item.keys():
                del item[key]
                changed = True
    return json.dumps(payload, separators=(",", ":")).encode() if changed else body


def capture_record(
    body: bytes,
    content_type: str | None,
    answer: bytes,
    answer_type: str,
    inference_time: float,
    event_id: str | None = None,
) -> dict[str, Any]:
    """One request as SageMaker's data capture writes it (eventVersion 0)."""
    request = encode_payload(strip_private(body, content_type), content_type)
    response = encode_payload(answer, answer_type)
    return {
        "captureData": {
            "endpointInput": {**request, "mode": "INPUT"},
            "endpointOutput": {**response, "mode": "OUTPUT"},
        },
        "eventMetadata": {"eventId": event_id or str(uuid.uuid4()), "inferenceTime": format_time(inference_time)},
        "eventVersion": "0",
    }


# Control characters a JSON string may not hold raw (newline, tab and carriage return are escaped below).
_CONTROL = bytes(c for c in range(32) if c not in (9, 10, 13))


def _json_text(data: bytes) -> bytes | None:
    """`data` as the inside of a JSON string, by byte replacement; None when it needs the full encoder
    (non-ASCII bytes or control characters). A regular expression doing the check cost 30 us a record."""
    if not data.isascii() or len(data.translate(None, _CONTROL)) != len(data):
        return None
    escaped = data.replace(b"\\", b"\\\\").replace(b'"', b'\\"')
    return escaped.replace(b"\n", b"\\n").replace(b"\r", b"\\r").replace(b"\t", b"\\t")


def record_line(
    body: bytes, content_type: str | None, answer: bytes, answer_type: str, epoch: float, event_id: str
) -> bytes:
    """`capture_record` as one JSON line, built from bytes: what the capture writer process writes.

    The common case (an ASCII CSV or JSON body) is escaped with a few C-level byte replacements instead
    of building and encoding a dict (the writer keeps up with a busy server on a fraction of a core);
    anything else goes through `capture_record` and orjson. Both give the same record (tested).
    """
    body = strip_private(body, content_type)
    frame = _frame(content_type, answer_type)
    request_text = _json_text(body) if frame is not None else None
    response_text = _json_text(answer) if frame is not None else None
    if frame is None or request_text is None or response_text is None:
        return orjson.dumps(capture_record(body, content_type, answer, answer_type, epoch, event_id))
    head, middle, tail = frame
    time_and_end = format_time(epoch).encode() + b'"},"eventVersion":"0"}'
    return b"".join(
        (head, request_text, middle, response_text, tail, event_id.encode(), b'","inferenceTime":"', time_and_end)
    )


@functools.lru_cache(maxsize=64)
def _frame(content_type: str | None, answer_type: str) -> tuple[bytes, bytes, bytes] | None:
    """The constant parts of a record line for one pair of media types (cached: a server sees a few),
    or None when the pair needs the full encoder (BASE64, or a header a JSON string cannot hold raw)."""
    request_kind, response_kind = _encoding_of(content_type), _encoding_of(answer_type)
    texts = ((content_type or ""), answer_type)
    if "BASE64" in (request_kind, response_kind) or not all(_plain_header(t) for t in texts):
        return None
    head = f'{{"captureData":{{"endpointInput":{{"observedContentType":"{texts[0]}","data":"'
    middle = (
        f'","encoding":"{request_kind}","mode":"INPUT"}},"endpointOutput":{{"observedContentType":"{texts[1]}","data":"'
    )
    tail = f'","encoding":"{response_kind}","mode":"OUTPUT"}}}},"eventMetadata":{{"eventId":"'
    return head.encode(), middle.encode(), tail.encode()


def _plain_header(text: str) -> bool:
    return text.isascii() and text.isprintable() and '"' not in text and "\\" not in text


@functools.lru_cache(maxsize=64)
def media_type(content_type: str | None) -> str:
    """`text/csv; charset=utf-8` -> `text/csv` (cached: a server sees a handful of distinct values)."""
    return (content_type or "").split(";")[0].strip().lower()


def _encoding_of(content_type: str | None) -> str:
    kind = media_type(content_type)
    if kind == CSV_TYPE:
        return "CSV"
    if kind == JSON_TYPE or kind.endswith("+json"):
        return "JSON"
    return "BASE64"


def format_time(epoch: float) -> str:
    """SageMaker's inferenceTime: UTC, to the second, with a Z."""
    return _second(int(epoch))


@functools.lru_cache(maxsize=4)
def _second(epoch: int) -> str:
    # Cached: a busy server captures thousands of requests within the same second.
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def hour_prefix(config: CaptureConfig, epoch: float) -> Path:
    """SageMaker's layout below the capture prefix: ENDPOINT/VARIANT/yyyy/mm/dd/hh."""
    moment = datetime.fromtimestamp(epoch, UTC)
    return config.directory / config.endpoint / config.variant / moment.strftime("%Y/%m/%d/%H")


NOT_FEATURES: frozenset[str] = NEVER_CAPTURED | {LABEL_COLUMN}
