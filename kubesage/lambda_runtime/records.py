"""Request bodies to validated raw churn records, with one message per bad field.

A body is one raw record (an object), a list of them, or `{"records": [...]}`. A record has the
seed's 20 raw input fields (the 21-column file without `Churn?`); `Phone` is optional and unused.
Numbers may be JSON numbers or numeric strings, as in the seed's own test payload.

The checks are the domain's, not the model's: counts are whole and non-negative, minutes and
charges non-negative, plans `yes`/`no`, states two capital letters, area codes three digits. A
state or area code the training split never saw is valid: it encodes as all zeros.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections.abc import Mapping
from difflib import get_close_matches
from typing import Any

from kubesage.churn.schema import CATEGORICAL_COLUMNS, DROPPED_COLUMNS, NUMERIC_COLUMNS, shorten
from kubesage.http_errors import PayloadTooLargeError
from kubesage.lambda_runtime.errors import FieldProblem, InvalidRequestError

MAX_RECORDS = 1000
# The work a request may cause is bounded by what a valid one needs, not by Lambda's 6 MB payload
# limit: the largest real churn record is 618 bytes as indented JSON, so 1,000 of them fit in 1 MiB.
# A 6 MB body would take seconds of CPU to parse and check on a 256 MB function; it is refused first.
MAX_BODY_BYTES = 1_048_576
# The 400 lists at most this many problems (and says how many records were checked), so the answer
# stays a few kilobytes whatever the body; validation stops collecting once it has them.
MAX_PROBLEMS = 50
# Echoed field names are cut to this many characters: the answer never repeats a client's megabytes.
MAX_NAME_CHARS = 40
COUNT_COLUMNS = frozenset(
    {"Account Length", "VMail Message", "Day Calls", "Eve Calls", "Night Calls", "Intl Calls", "CustServ Calls"}
)
PLAN_COLUMNS = ("Int'l Plan", "VMail Plan")
PLAN_VALUES = ("yes", "no")
REQUIRED_FIELDS: tuple[str, ...] = (*CATEGORICAL_COLUMNS, *NUMERIC_COLUMNS)
OPTIONAL_FIELDS: tuple[str, ...] = DROPPED_COLUMNS
KNOWN_FIELDS = frozenset(REQUIRED_FIELDS + OPTIONAL_FIELDS)
# A record has 20 fields (Phone among them, optional); one with far more is refused whole, before
# any key is checked, so a body of unknown keys costs one problem, not one per key.
MAX_KEYS_PER_RECORD = 2 * len(KNOWN_FIELDS)
_STATE = re.compile(r"[A-Z]{2}")
_AREA_CODE = re.compile(r"[0-9]{3}")
SHAPE_HINT = 'send one raw churn record as a JSON object, a list of them, or {"records": [...]}'


def read_body(body: str | bytes | None, is_base64: bool = False) -> list[dict[str, Any]]:
    """The records in a request body (API Gateway's `body` and `isBase64Encoded`), shape checked only."""
    if body is None or body == "" or body == b"":
        raise InvalidRequestError(f"the request body is empty; {SHAPE_HINT}")
    raw = body.encode("utf-8") if isinstance(body, str) else body
    if is_base64:
        try:
            raw = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidRequestError("the request body is marked base64 but is not valid base64") from None
    if len(raw) > MAX_BODY_BYTES:
        raise PayloadTooLargeError(
            f"the body is {len(raw):,} bytes; the limit is {MAX_BODY_BYTES:,} (1 MiB, room for {MAX_RECORDS:,} records)"
        )
    try:
        document = json.loads(raw, parse_constant=_reject_constant)
    except UnicodeDecodeError:
        raise InvalidRequestError("the request body is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise InvalidRequestError(
            f"the request body is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
        ) from None
    except ValueError as exc:  # NaN / Infinity tokens
        raise InvalidRequestError(f"the request body is not valid JSON ({exc})") from None
    except RecursionError:  # json's parser recurses per level; a deep body is the client's mistake
        raise InvalidRequestError(f"the request body is nested too deeply; {SHAPE_HINT}") from None
    return _records(document)


def _reject_constant(token: str) -> Any:
    raise ValueError(f"{token} is not a JSON number")


def _records(document: Any) -> list[dict[str, Any]]:
    if isinstance(document, Mapping) and "records" in document:
        if len(document) != 1:
            extra = [_name(k) for k in document if k != "records"]
            shown = ", ".join(repr(k) for k in sorted(extra)[:5]) + (", ..." if len(extra) > 5 else "")
            raise InvalidRequestError(f"unexpected key(s) [{shown}] next to 'records'; {SHAPE_HINT}")
        document = document["records"]
        if not isinstance(document, list):
            raise InvalidRequestError(f"'records' must be a list of objects; {SHAPE_HINT}")
    records = [document] if isinstance(document, Mapping) else document
    if not isinstance(records, list):
        raise InvalidRequestError(f"the body is a JSON {_json_type(document)}; {SHAPE_HINT}")
    if not records:
        raise InvalidRequestError(f"the body holds no records; {SHAPE_HINT}")
    if len(records) > MAX_RECORDS:
        raise InvalidRequestError(f"the body holds {len(records):,} records; send at most {MAX_RECORDS:,} per request")
    problems = [
        FieldProblem(i, "", f"record {i} is a JSON {_json_type(r)}, expected an object of raw fields")
        for i, r in enumerate(records)
        if not isinstance(r, Mapping)
    ][:MAX_PROBLEMS]
    if problems:
        raise InvalidRequestError(summary(problems), problems)
    return records


def validate_records(records: list[dict[str, Any]]) -> None:
    """Raise InvalidRequestError listing the bad fields (up to MAX_PROBLEMS); return if all are valid."""
    problems: list[FieldProblem] = []
    for i, record in enumerate(records):
        problems.extend(record_problems(i, record))
        if len(problems) >= MAX_PROBLEMS:
            # Stop here: the client fixes these first, and the work stays bounded.
            raise InvalidRequestError(summary(problems[:MAX_PROBLEMS], checked=i + 1), problems[:MAX_PROBLEMS])
    if problems:
        raise InvalidRequestError(summary(problems), problems)


def record_problems(index: int, record: Mapping[str, Any]) -> list[FieldProblem]:
    if len(record) > MAX_KEYS_PER_RECORD:
        too_many = f"record {index} has {len(record):,} keys; a raw churn record has at most {len(KNOWN_FIELDS)} fields"
        return [FieldProblem(index, "", too_many)]
    problems: list[FieldProblem] = []
    for name in REQUIRED_FIELDS:
        if name not in record:
            problems.append(FieldProblem(index, name, "is missing"))
            continue
        message = _field_problem(name, record[name])
        if message:
            problems.append(FieldProblem(index, name, message))
    for name in OPTIONAL_FIELDS:
        if name in record and not isinstance(record[name], str | None):
            problems.append(FieldProblem(index, name, f"must be a string, got {_json_type(record[name])}"))
    for name in sorted(set(record) - KNOWN_FIELDS, key=str):
        shown = _name(name)
        close = get_close_matches(shown, sorted(KNOWN_FIELDS), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        problems.append(FieldProblem(index, shown, f"is not an input field{hint}"))
    return problems


def _name(key: Any) -> str:
    """A client's key as echoed back: cut short, so a long key costs the answer 40 characters."""
    return shorten(str(key), MAX_NAME_CHARS)


def _field_problem(name: str, value: Any) -> str | None:
    """Why `value` is not valid for field `name`, or None."""
    if name == "State":
        if not isinstance(value, str):
            return f"must be a string, got {_json_type(value)}"
        return None if _STATE.fullmatch(value) else f"must be a two-letter state code like 'PA', got {_quote(value)}"
    if name in PLAN_COLUMNS:
        if not isinstance(value, str):
            return f"must be a string, got {_json_type(value)}"
        return None if value in PLAN_VALUES else f"must be 'yes' or 'no', got {_quote(value)}"
    if name == "Area Code":
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            return f"must be a three-digit area code, got {_json_type(value)}"
        number = _number(value)
        if number is None:
            return f"must be a three-digit area code, got {_quote(value)}"
        text = str(int(number)) if number.is_integer() else ""
        return None if _AREA_CODE.fullmatch(text) else f"must be a three-digit area code, got {_quote(value)}"
    # A numeric field.
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return f"must be a number, got {_json_type(value)}"
    number = _number(value)
    if number is None:
        return f"must be a number, got {_quote(value)}"
    if number < 0:
        return f"must be zero or more, got {_quote(value)}"
    if name in COUNT_COLUMNS and not number.is_integer():
        return f"must be a whole number (a count), got {_quote(value)}"
    return None


def _number(value: int | float | str) -> float | None:
    """A finite float, or None when the value is not one (empty, text, inf, nan, too large)."""
    try:
        number = float(value)
    except (ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


def summary(problems: list[FieldProblem], checked: int | None = None) -> str:
    """The 400's message; `checked` says validation stopped after that many records (problems capped)."""
    shown = "; ".join((f"record {p.record}: '{p.field}' {p.message}" if p.field else p.message) for p in problems[:10])
    more = f"; and {len(problems) - 10} more" if len(problems) > 10 else ""
    noun = "problem" if len(problems) == 1 else "problems"
    count = f"{len(problems)} {noun}"
    if checked is not None:
        count = f"at least {count} (checking stopped at the first {len(problems)}, in record {checked - 1})"
    return f"{count} in the request: {shown}{more}"


def _quote(value: Any) -> str:
    return shorten(json.dumps(value))


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, Mapping):
        return "object"
    return type(value).__name__
