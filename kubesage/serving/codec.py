"""Request bodies to feature matrices, probabilities to response bodies: the server's pure logic.

Accepted request shapes (documented in openapi.yaml as well):

- `text/csv`: one feature vector per line, comma separated, no header and no label column, as
  SageMaker's built-in XGBoost takes it. An empty field is a missing value (XGBoost and daal4py
  route it down each tree's default branch, as SageMaker XGBoost does); the literals `nan` and
  `inf` are rejected, because they usually mean an upstream bug rather than "unknown".
- `application/json`, feature vectors: `{"instances": [[...], ...]}` (SageMaker/TF-Serving style),
  `{"inputs": [[...], ...]}` (MLflow's scoring server, so its clients work unchanged),
  `{"instances": [{"features": [...]}, ...]}` (SageMaker linear-learner style), a bare list of
  lists, or one bare list of numbers. `null` is a missing value; the non-standard tokens `NaN`
  and `Infinity` are rejected.
- `application/json`, raw churn records (only when the model directory has a feature schema):
  `{"records": [{...}, ...]}`, a bare list of objects, or one object. They go through
  `kubesage.churn.features.transform_records`, the same transform as batch preprocessing.

Responses: `application/json` `{"predictions": [{"score": p}, ...]}` or `text/csv` with one
probability per line, chosen by the Accept header.
"""

from __future__ import annotations

import csv
import io
import json
import math
import threading
from collections.abc import Mapping, Sequence
from typing import Any, Final

import numpy as np
import orjson
import simdjson

from kubesage.churn.features import FeatureSchema, shorten, transform_records
from kubesage.errors import SchemaError
from kubesage.serving.errors import NotAcceptableError, RequestError, UnsupportedMediaTypeError

CSV: Final = "text/csv"
JSON: Final = "application/json"
SUPPORTED_CONTENT_TYPES: Final = (CSV, JSON)
# SageMaker real-time endpoints refuse bodies over 6 MiB; refusing them here too keeps local
# behaviour identical and bounds the memory one request can take.
MAX_BODY_BYTES: Final = 6_291_456
# Rows per request. A valid 6 MiB body of 103-feature vectors holds at most ~30,000 rows; the cap
# refuses hostile bodies such as [{}, {}, ...] (2 million empty records) before they are expanded.
MAX_ROWS: Final = 50_000
# Below this many lines a Python split beats pandas' C parser, whose fixed cost is about 1 ms.
PANDAS_MIN_ROWS: Final = 64
_NUMBER_TYPES: Final = frozenset({int, float, type(None)})
# JSON object keys that hold feature vectors: SageMaker/TF-Serving's, then MLflow's.
VECTOR_KEYS: Final = ("instances", "inputs")


def media_type(header: str | None) -> str:
    """`Text/CSV; charset=utf-8` -> `text/csv`; a missing header is the empty string."""
    if not header:
        return ""
    return header.split(";", 1)[0].strip().lower()


# Accept values clients send on nearly every request, answered without parsing.
_COMMON_ACCEPT: Final = {JSON: JSON, CSV: CSV, "*/*": JSON, "": JSON}


def choose_output(accept: str | None) -> str:
    """The response media type for an Accept header: JSON unless CSV is preferred; 406 if neither."""
    if accept is None:
        return JSON
    common = _COMMON_ACCEPT.get(accept)
    if common is not None:
        return common
    if not accept.strip():
        return JSON
    offers: list[tuple[float, int, str]] = []
    for position, item in enumerate(accept.split(",")):
        kind, _, params = item.partition(";")
        quality = 1.0
        for param in params.split(";"):
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if quality > 0 and math.isfinite(quality):
            offers.append((-quality, position, kind.strip().lower()))
    for _, _, kind in sorted(offers):
        if kind in (JSON, "application/*", "*/*", "*"):
            return JSON
        if kind in (CSV, "text/*"):
            return CSV
    raise NotAcceptableError(f"cannot produce any of Accept: {accept!r}; this server answers {JSON} or {CSV}")


def decode_request(body: bytes, content_type: str | None, n_features: int, schema: FeatureSchema | None) -> np.ndarray:
    """Parse a request body into a float64 matrix of shape (rows, n_features)."""
    kind = media_type(content_type)
    if kind not in SUPPORTED_CONTENT_TYPES:
        shown = content_type if content_type else "none"
        raise UnsupportedMediaTypeError(
            f"Content-Type {shown!r} is not supported; send {CSV} (feature vectors, no header) or {JSON}"
        )
    if not body.strip():
        raise RequestError("the request body is empty; send at least one feature vector or record")
    if kind == CSV:
        if body.count(b"\n") > MAX_ROWS:
            raise RequestError(_too_many_rows(f"more than {MAX_ROWS:,}"))
        return parse_csv(body, n_features)
    fast = _parse_json_vectors(body, n_features)
    if fast is not None:
        return fast
    _check_json_row_count(body)
    return json_to_features(parse_json(body), n_features, schema)


def _too_many_rows(count: str) -> str:
    return (
        f"the body holds {count} rows; the limit is {MAX_ROWS:,} per request: split it, or use batch "
        "transform for bulk scoring"
    )


def _check_json_row_count(body: bytes) -> None:
    """Refuse too many rows before the reference parser builds a Python object per row.

    simdjson's document is lazy, so counting the top-level (or instances/inputs/records) array
    costs one scan of the body; bodies simdjson cannot read are left to the reference parser.
    """
    try:
        document = _parse_document(body)
        rows = document
        if isinstance(document, simdjson.Object):
            key = next((key for key in (*VECTOR_KEYS, "records") if key in document), None)
            rows = document[key] if key is not None else None
        count = len(rows) if isinstance(rows, simdjson.Array) else 0
        del document, rows  # no proxy may outlive the reused parser's next parse
    except (ValueError, TypeError, KeyError, RuntimeError):
        return
    if count > MAX_ROWS:
        raise RequestError(_too_many_rows(f"{count:,}"))


# ---------------------------------------------------------------------------------------- CSV


def parse_csv(body: bytes, n_features: int) -> np.ndarray:
    """Feature vectors, one per line; empty fields are missing (NaN), nan/inf literals are refused."""
    newlines = body.count(b"\n")
    fast: np.ndarray | None = None
    if newlines >= PANDAS_MIN_ROWS:
        fast = _parse_csv_pandas(body, n_features)
    elif newlines == 0 or (newlines == 1 and body.endswith(b"\n")):
        fast = _parse_csv_row(body, n_features)
    if fast is not None:
        return fast
    return _parse_csv_python(_decode_text(body), n_features)


def _parse_csv_row(body: bytes, n_features: int) -> np.ndarray | None:
    """One complete, finite row straight from bytes (the single-record hot path); None: ask the Python path.

    float() takes ASCII bytes and ignores surrounding whitespace (a trailing \r\n too), exactly
    as the Python path's float() does on the decoded text; anything it refuses (an empty field,
    a BOM, a header) or a non-finite value goes to the Python path, which names the problem.
    """
    fields = body.split(b",")
    if len(fields) != n_features:
        return None
    try:
        matrix = np.array(list(map(float, fields)), dtype=np.float64).reshape(1, n_features)
    except ValueError:
        return None
    return matrix if np.isfinite(matrix).all() else None


def _decode_text(body: bytes) -> str:
    try:
        return body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise RequestError(f"the CSV body is not valid UTF-8 (byte {exc.start})") from None


def _parse_csv_pandas(body: bytes, n_features: int) -> np.ndarray | None:
    """Large batches through pandas' C parser; None means "let the Python path judge it".

    The Python path is the reference: any batch pandas does not parse into exactly n_features
    finite columns (bad value, short or long row, missing value, nan literal) is re-parsed there,
    so both paths accept the same inputs and report errors the same way.
    """
    import pandas as pd

    try:
        frame = pd.read_csv(
            io.BytesIO(body),
            header=None,
            sep=",",
            dtype=np.float64,
            quoting=csv.QUOTE_NONE,
            keep_default_na=False,
            na_values=[],
            skip_blank_lines=True,
            encoding="utf-8-sig",
            engine="c",
            # One pass instead of chunks stitched together: about 20% faster on 1,000 rows, and
            # the body (<= 6 MiB) bounds the memory either way.
            low_memory=False,
        )
    except (ValueError, TypeError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError):
        return None
    matrix = frame.to_numpy(dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[1] != n_features or not np.isfinite(matrix).all():
        return None
    return np.ascontiguousarray(matrix)


def _parse_csv_python(text: str, n_features: int) -> np.ndarray:
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise RequestError("the CSV body has no rows")
    values: list[float] = []
    for row, line in enumerate(lines, start=1):
        fields = line.split(",")
        if len(fields) != n_features:
            raise RequestError(_count_message(f"CSV row {row}", len(fields), n_features))
        try:
            parsed = [float(field) for field in fields]
        except ValueError:
            parsed = [_csv_field(field, row, col) for col, field in enumerate(fields, start=1)]
        values.extend(parsed)
    matrix = np.array(values, dtype=np.float64).reshape(len(lines), n_features)
    if not np.isfinite(matrix).all():
        _raise_first_non_finite_csv(lines)
    return matrix


def _csv_field(field: str, row: int, col: int) -> float:
    text = field.strip()
    if not text:
        return math.nan
    try:
        value = float(text)
    except ValueError:
        hint = " (a header row is not accepted)" if row == 1 else ""
        raise RequestError(f"CSV row {row}, column {col}: {shorten(text)!r} is not a number{hint}") from None
    return value


def _raise_first_non_finite_csv(lines: Sequence[str]) -> None:
    for row, line in enumerate(lines, start=1):
        for col, field in enumerate(line.split(","), start=1):
            text = field.strip()
            if text and not math.isfinite(_csv_field(text, row, col)):
                raise RequestError(
                    f"CSV row {row}, column {col}: {shorten(text)!r} is not a finite number; "
                    "leave the field empty for a missing value"
                )


# --------------------------------------------------------------------------------------- JSON


def _refuse_constant(token: str) -> float:
    raise RequestError(f"{token} is not valid JSON; send null for a missing value")


def parse_json(body: bytes) -> Any:
    try:
        return json.loads(body, parse_constant=_refuse_constant)
    except RequestError:
        raise
    except json.JSONDecodeError as exc:
        raise RequestError(f"the body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except UnicodeDecodeError:
        raise RequestError("the JSON body is not valid UTF-8") from None
    except RecursionError:
        raise RequestError("the JSON body is nested too deeply") from None
    except ValueError as exc:
        # Python refuses to convert integers of 4,300+ digits (CVE-2020-10735's limit): a
        # client's mistake, so a 400, never a 500.
        if "digits" in str(exc):
            raise RequestError("a number in the JSON body has too many digits (4,300 or more)") from None
        raise RequestError(f"the body is not valid JSON: {exc}") from None


def _parse_json_vectors(body: bytes, n_features: int) -> np.ndarray | None:
    """Complete feature vectors straight into float64 via simdjson (the hot path); None: ask the reference path.

    Takes `{"instances"|"inputs": [[...], ...]}`, a bare list of lists, or one bare list. simdjson
    flattens nested arrays into the buffer, so the shape is proven separately: the body holds
    exactly one `[` per vector plus the outer one (a nested array or a bracket in a string adds
    one), and every vector has n_features numbers. Anything else, including null (missing) values,
    which the buffer cannot hold, goes to the reference path, which accepts or names the problem.
    """
    try:
        document = _parse_document(body)
        if isinstance(document, simdjson.Object):
            key = next((key for key in VECTOR_KEYS if key in document), None)
            if key is None or len(document) != 1:
                return None
            vectors = document[key]
        else:
            vectors = document
        if not isinstance(vectors, simdjson.Array) or len(vectors) == 0:
            return None
        flat = np.frombuffer(vectors.as_buffer(of_type="d"), dtype=np.float64)
        rows = len(vectors)
        brackets = _count_open_brackets(body)
        if document is vectors and brackets == 1 and rows == n_features == flat.size:
            return flat.reshape(1, n_features)  # one bare vector
        if brackets != rows + 1 or flat.size != rows * n_features:
            return None
        if not all(isinstance(vector, simdjson.Array) and len(vector) == n_features for vector in vectors):
            return None
    except (ValueError, TypeError, KeyError, RuntimeError):  # simdjson's parse, type, UTF-8 and big-integer errors
        return None
    return flat.reshape(rows, n_features)


_PARSERS = threading.local()


def _parse_document(body: bytes) -> Any:
    """Parse with this thread's reused simdjson parser.

    A fresh parser re-allocates (and page-faults) buffers several times the body's size on every
    request, which halved 1,000-row throughput. _parse_json_vectors lets no document proxy
    outlive its call; should one survive anyway (an exception's traceback holding it), simdjson
    refuses the reuse with RuntimeError and this thread gets a new parser instead of an error.
    """
    parser: simdjson.Parser | None = getattr(_PARSERS, "parser", None)
    if parser is not None:
        try:
            return parser.parse(body)
        except RuntimeError:
            pass
    _PARSERS.parser = simdjson.Parser()
    return _PARSERS.parser.parse(body)


def _count_open_brackets(body: bytes) -> int:
    # bytes.replace is memchr-driven: 6x faster than bytes.count(b"[") on a 750 kB body.
    return len(body) - len(body.replace(b"[", b""))


def json_to_features(payload: Any, n_features: int, schema: FeatureSchema | None) -> np.ndarray:
    """Dispatch on the documented JSON shapes; see the module docstring."""
    if isinstance(payload, Mapping):
        for key in VECTOR_KEYS:
            if key in payload:
                return instances_to_features(payload[key], n_features, key=key)
        if "records" in payload:
            return records_to_features(payload["records"], schema)
        if schema is None:
            raise RequestError(
                'a JSON object must hold "instances" (feature vectors); this model has no feature '
                "schema, so it cannot take raw records"
            )
        return records_to_features([payload], schema)
    if isinstance(payload, list):
        if payload and all(isinstance(item, Mapping) for item in payload) and not _has_features_key(payload):
            return records_to_features(payload, schema)
        if payload and all(_is_number(item) or item is None for item in payload):
            return instances_to_features([payload], n_features)
        return instances_to_features(payload, n_features)
    raise RequestError(
        f'the JSON body is a {_json_type(payload)}; send {{"instances": [[...], ...]}}, a list of '
        'feature vectors or {"records": [...]}'
    )


def _has_features_key(items: Sequence[Mapping[str, Any]]) -> bool:
    return all(set(item) == {"features"} for item in items)


def instances_to_features(instances: Any, n_features: int, key: str = "instances") -> np.ndarray:
    """Feature vectors found under `key` (named in the errors) or given as a bare list."""
    if not isinstance(instances, list):
        raise RequestError(f'"{key}" must be a list of feature vectors, not a {_json_type(instances)}')
    if not instances:
        raise RequestError(f'"{key}" is empty; send at least one feature vector')
    rows: list[list[Any]] = []
    seen_types: set[type] = set()
    for i, item in enumerate(instances):
        row = item.get("features") if isinstance(item, Mapping) else item
        if not isinstance(row, list):
            raise RequestError(
                f"instance {i} is a {_json_type(item)}; expected a list of {n_features} numbers "
                'or {"features": [...]}'
            )
        if len(row) != n_features:
            raise RequestError(_count_message(f"instance {i}", len(row), n_features))
        seen_types.update(map(type, row))
        rows.append(row)
    if not seen_types <= _NUMBER_TYPES:
        _raise_first_non_number(rows)
    try:
        matrix = np.array(rows, dtype=np.float64)
    except OverflowError:
        raise RequestError("a feature value is too large for a 64-bit float") from None
    if np.isinf(matrix).any():
        row, col = (int(v) for v in np.argwhere(np.isinf(matrix))[0])
        raise RequestError(f"instance {row}, feature {col}: the value is too large for a 64-bit float")
    return matrix


def _raise_first_non_number(rows: Sequence[Sequence[Any]]) -> None:
    for i, row in enumerate(rows):
        for j, value in enumerate(row):
            if not _is_number(value) and value is not None:
                raise RequestError(
                    f"instance {i}, feature {j}: {shorten(json.dumps(value))} is not a number "
                    "(use null for a missing value)"
                )


def records_to_features(records: Any, schema: FeatureSchema | None) -> np.ndarray:
    if schema is None:
        raise RequestError(
            "this model has no feature schema (feature_schema.json), so it takes feature vectors only: "
            'send {"instances": [[...], ...]} or text/csv'
        )
    if not isinstance(records, list):
        raise RequestError(f'"records" must be a list of objects, not a {_json_type(records)}')
    if not records:
        raise RequestError('"records" is empty; send at least one record')
    try:
        return transform_records(records, schema)
    except SchemaError as exc:
        raise RequestError(str(exc)) from None
    except OverflowError:
        raise RequestError("a numeric field is too large for a 64-bit float") from None


def _is_number(value: Any) -> bool:
    return type(value) in (int, float)


def _json_type(value: Any) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}
    for kind, name in names.items():
        if isinstance(value, kind):
            return name
    return "number"


# ------------------------------------------------------------------------------------ Responses


def encode_predictions(probabilities: np.ndarray, output: str) -> bytes:
    """Probabilities as `{"predictions": [{"score": p}, ...]}` or one per CSV line.

    Both repr() and orjson write the shortest text that round-trips, so clients read back the
    exact float64 the model produced.
    """
    scores = probabilities.tolist()
    if output == CSV:
        return ("\n".join(map(repr, scores)) + "\n").encode()
    return orjson.dumps({"predictions": [{"score": score} for score in scores]})


def error_body(status: int, code: str, message: str) -> bytes:
    return json.dumps({"code": code, "message": message, "status": status}).encode()


def _count_message(where: str, got: int, expected: int) -> str:
    hint = " (leave out the label column)" if got == expected + 1 else ""
    return f"{where} has {got} values; the model expects {expected} features{hint}"
