"""The order work units are handed to pytest-xdist's workers: the longest first, by the last run's times.

xdist's loadgroup scheduler hands the units out in the collection's order (with `--no-loadscope-reorder`;
by default it sorts them by their number of tests), and a worker takes its next unit while two tests of
the current one are still to run. By number of tests, the one-test modules that run a whole pipeline
(the notebook, the demo) came last, and one worker still ran one of them 12-20 s after the other had
ended. Longest first, the many sub-second units come last and even out the ends (longest processing
time first, the classic greedy schedule for identical machines).

The times are each unit's setup, call and teardown seconds, summed by the controller at the end of a run
and kept in pytest's cache (`.pytest_cache`, key `UNIT_SECONDS_KEY`). A clean clone has no cache (CI's
run, a new contributor's first): there the times of a `make test` run committed in `UNIT_SECONDS_FILE`
order the units (the cache's win where it has a unit); `python -m tests.schedule` writes the cache's
times into it. With neither, the order is xdist's default, most tests first. A unit no time names goes
first: it may be long.
"""

from __future__ import annotations

import json
import sys
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path

import pytest

UNIT_SECONDS_KEY = "kubesage/xdist-unit-seconds"
UNIT_SECONDS_FILE = Path(__file__).with_name("unit_seconds.json")
# Where pytest's cache keeps the key's value, read by `python -m tests.schedule` outside a session.
CACHED_UNIT_SECONDS = Path(__file__).resolve().parents[1] / ".pytest_cache" / "v" / UNIT_SECONDS_KEY


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
    """The units' known seconds: the last runs' (pytest's cache) over the committed ones."""
    return {**committed_seconds(), **_last_runs_seconds(config)}


def _last_runs_seconds(config: pytest.Config) -> dict[str, float]:
    cache = getattr(config, "cache", None)
    return _as_seconds(cache.get(UNIT_SECONDS_KEY, {})) if cache is not None else {}


def committed_seconds(path: Path = UNIT_SECONDS_FILE) -> dict[str, float]:
    try:
        return _as_seconds(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return {}


def _as_seconds(known: object) -> dict[str, float]:
    return {str(unit): float(value) for unit, value in known.items()} if isinstance(known, dict) else {}


def store_seconds(config: pytest.Config, times: UnitTimes) -> None:
    cache = getattr(config, "cache", None)
    if cache is not None and times.seconds:
        # The last runs' times only: copies of the committed ones would outlive a refresh of the file.
        cache.set(UNIT_SECONDS_KEY, times.merged_into(_last_runs_seconds(config)))


def write_committed_seconds(source: Path = CACHED_UNIT_SECONDS, target: Path = UNIT_SECONDS_FILE) -> int:
    """Write the cache's unit times (after a `make test`) to the committed file; how many units."""
    known = committed_seconds(source)  # the cache's file has the committed file's format
    if not known:
        raise SystemExit(f"no unit times in {source}: run `make test` first")
    rounded = {unit: round(seconds, 1) for unit, seconds in sorted(known.items())}
    target.write_text(json.dumps(rounded, indent=1) + "\n", encoding="utf-8")
    return len(rounded)


if __name__ == "__main__":
    if sys.argv[1:]:
        raise SystemExit("usage: python -m tests.schedule (after `make test`; takes no arguments)")
    print(f"{write_committed_seconds()} units' times written to {UNIT_SECONDS_FILE}", file=sys.stderr)
