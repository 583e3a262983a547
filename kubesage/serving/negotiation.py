"""Content negotiation: the media types the server reads and answers, and the Accept header's choice."""

from __future__ import annotations

import math
from typing import Final

from kubesage.http_errors import NotAcceptableError

CSV: Final = "text/csv"
JSON: Final = "application/json"
SUPPORTED_CONTENT_TYPES: Final = (CSV, JSON)


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
