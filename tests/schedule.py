"""The order work units are handed to pytest-xdist's workers: the longest first, by the last run's times.

xdist's loadgroup scheduler hands the units out in the collection's order (with `--no-loadscope-reorder`;
by default it sorts them by their number of tests), and a worker takes its next unit while two tests of
the current one are still to run. By number of tests, the one-test modules that run a whole pipeline
(the notebook, the demo) came last, and one worker still ran one of them 12-20 s after the other had
ended. Longest first, the many sub-second units come last and even out the ends (longest processing
time first, the classic greedy schedule for identical machines).

The times are each unit's setup, call and teardown seconds, summed by the controller at the end of a run
and kept in pytest's cache (`.pytest_cache`, key `UNIT_SECONDS_KEY`). Without them (a clean clone's first
run) the order is xdist's default, most tests first. A unit the cache does not know yet goes first: it
may be long.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable

import pytest

UNIT_SECONDS_KEY = "kubesage/xdist-unit-seconds"


def unit_of_nodeid(nodeid: str) -> str:
    """The work unit of a test id as xdist's loadgroup scheduler names it (`...::test@unit`)."""
    if nodeid.rfind("@") > nodeid.rfind("]"):
        return nodeid.rsplit("@", 1)[1]
    return nodeid


def longest_first(items: list[pytest.Item], unit_of: Callable[[pytest.Item], str], seconds: dict[str, float]) -> None:
    """Reorder `items` in place: units by their known seconds, longest first (unknown ones before all),
    each unit's tests kept together in their order. With no time known, by their number of tests."""
    units = [unit_of(item) for item in items]
    first_index: dict[str, int] = {}
    for index, unit in enumerate(units):
        first_index.setdefault(unit, index)
    tests = Counter(units)
    cost = {unit: seconds.get(unit, float("inf")) if seconds else float(tests[unit]) for unit in tests}
    ranked = sorted(zip(items, units, strict=True), key=lambda pair: (-cost[pair[1]], first_index[pair[1]]))
    items[:] = [item for item, _ in ranked]


class UnitTimes:
    """Sums the phases' durations of each unit as reports arrive; merged into the cache at the end."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    def add(self, report: pytest.TestReport) -> None:
        self.seconds[unit_of_nodeid(report.nodeid)] += report.duration

    def merged_into(self, known: dict[str, float]) -> dict[str, float]:
        """The cache's times with this run's units replaced (a partial run forgets nothing else)."""
        return {**known, **{unit: round(total, 2) for unit, total in self.seconds.items()}}


def cached_seconds(config: pytest.Config) -> dict[str, float]:
    cache = getattr(config, "cache", None)
    if cache is None:
        return {}
    known = cache.get(UNIT_SECONDS_KEY, {})
    return {str(unit): float(value) for unit, value in known.items()} if isinstance(known, dict) else {}


def store_seconds(config: pytest.Config, times: UnitTimes) -> None:
    cache = getattr(config, "cache", None)
    if cache is not None and times.seconds:
        cache.set(UNIT_SECONDS_KEY, times.merged_into(cached_seconds(config)))
