"""What one request may hold, and the messages that say so (shared by the CSV and JSON readers)."""

from __future__ import annotations

from typing import Final

# SageMaker real-time endpoints refuse bodies over 6 MiB; refusing them here too keeps local
# behaviour identical and bounds the memory one request can take.
MAX_BODY_BYTES: Final = 6_291_456
# Rows per request. A valid 6 MiB body of 103-feature vectors holds at most ~30,000 rows; the cap
# refuses hostile bodies such as [{}, {}, ...] (2 million empty records) before they are expanded.
MAX_ROWS: Final = 50_000


def too_many_rows(count: str) -> str:
    return (
        f"the body holds {count} rows; the limit is {MAX_ROWS:,} per request: split it, or use batch "
        "transform for bulk scoring"
    )


def feature_count_message(where: str, got: int, expected: int) -> str:
    """A row of the wrong width; one value too many is most likely the label column."""
    hint = " (leave out the label column)" if got == expected + 1 else ""
    return f"{where} has {got} values; the model expects {expected} features{hint}"
