"""The time window of a drift check: --start/--end, --last, and the hour folders it skips."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from kubesage.errors import MonitoringError
from kubesage.monitoring.reading import hour_in_window, parse_time, window

NOW = datetime(2026, 12, 5, 3, 30, tzinfo=UTC)


def test_last_counts_back_from_end_or_now() -> None:
    assert window(None, None, "90m", now=NOW) == (datetime(2026, 12, 5, 2, 0, tzinfo=UTC), None)
    assert window(None, "2026-12-04T00:00:00Z", "1d", now=NOW) == (
        datetime(2026, 12, 3, tzinfo=UTC),
        datetime(2026, 12, 4, tzinfo=UTC),
    )
    assert window("2026-12-05T01:00:00", None, None) == (datetime(2026, 12, 5, 1, tzinfo=UTC), None)  # UTC by default
    assert window(None, None, None) == (None, None)


@pytest.mark.parametrize(
    ("start", "last", "message"),
    [
        (None, "soon", "--last 'soon' is not a duration like 30m, 24h or 7d"),
        (None, "5w", "--last '5w' is not a duration"),
        ("2026-12-05", "1h", "give --last or --start, not both"),
        ("yesterday", None, "'yesterday' is not an ISO 8601 time"),
    ],
)
def test_bad_windows_say_what_to_write(start: str | None, last: str | None, message: str) -> None:
    with pytest.raises(MonitoringError, match=message):
        window(start, None, last, now=NOW)


def test_hour_folders_outside_the_window_are_skipped() -> None:
    start, end = parse_time("2026-12-05T02:30:00Z"), parse_time("2026-12-05T04:00:00Z")
    hours = {h: hour_in_window(("ep", "AllTraffic", "2026", "12", "05", f"{h:02d}"), start, end) for h in range(6)}
    assert hours == {0: False, 1: False, 2: True, 3: True, 4: False, 5: False}
    assert hour_in_window(("somewhere",), start, end)  # not SageMaker's layout: read, filtered by record time
