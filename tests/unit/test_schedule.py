"""The order the suite's work units are handed to xdist's workers (tests/schedule.py)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest

from tests.schedule import (
    UnitTimes,
    cached_seconds,
    committed_seconds,
    longest_first,
    store_seconds,
    unit_of_nodeid,
    write_committed_seconds,
)


@dataclass(frozen=True)
class FakeItem:
    name: str
    unit: str


def ordered(items: list[FakeItem], seconds: dict[str, float]) -> list[str]:
    as_items = cast(list[pytest.Item], items)
    longest_first(as_items, lambda item: cast(Any, item).unit, seconds)
    return [cast(Any, item).name for item in as_items]


ITEMS = [
    FakeItem("a1", "a"),
    FakeItem("b1", "b"),
    FakeItem("a2", "a"),
    FakeItem("c1", "c"),
    FakeItem("c2", "c"),
    FakeItem("c3", "c"),
]


def test_units_go_longest_first_with_their_tests_together_in_order() -> None:
    assert ordered(list(ITEMS), {"a": 1.0, "b": 30.0, "c": 0.5}) == ["b1", "a1", "a2", "c1", "c2", "c3"]


def test_a_unit_the_last_run_did_not_have_goes_first() -> None:
    assert ordered(list(ITEMS), {"a": 1.0, "c": 0.5}) == ["b1", "a1", "a2", "c1", "c2", "c3"]


def test_without_times_the_units_with_most_tests_go_first_as_xdist_orders_them() -> None:
    assert ordered(list(ITEMS), {}) == ["c1", "c2", "c3", "a1", "a2", "b1"]


def test_a_units_phases_are_summed_and_a_partial_run_keeps_the_other_units_times() -> None:
    times = UnitTimes()
    for nodeid, duration in [("t.py::x@g", 1.5), ("t.py::x@g", 2.0), ("u.py::y[p@q]", 0.25)]:
        times.add(cast(pytest.TestReport, FakeReport(nodeid, duration)))
    assert times.merged_into({"g": 9.0, "old": 4.0}) == {"g": 3.5, "u.py::y[p@q]": 0.25, "old": 4.0}


def test_the_unit_is_the_group_after_the_last_at_sign_outside_parameters() -> None:
    assert unit_of_nodeid("tests/t.py::test[a@b]@compliance-local") == "compliance-local"
    assert unit_of_nodeid("tests/t.py::test[a@b]") == "tests/t.py::test[a@b]"


@dataclass(frozen=True)
class FakeReport:
    nodeid: str
    duration: float


@dataclass(frozen=True)
class FakeCache:
    values: dict[str, Any]

    def get(self, key: str, default: Any) -> Any:
        return self.values.get(key, default)

    def set(self, key: str, value: Any) -> None:
        self.values[key] = value


@dataclass(frozen=True)
class FakeConfig:
    cache: FakeCache


def test_a_clean_clone_orders_by_the_committed_times_and_the_cache_wins_where_it_knows_a_unit() -> None:
    committed = committed_seconds()
    assert committed["tests/integration/test_mlflow_service.py"] > 30  # a make test run's times
    assert len(committed) > 100
    config = cast(pytest.Config, FakeConfig(FakeCache({})))
    assert cached_seconds(config) == committed  # no cache: CI's first run, a new contributor's
    known = {"kubesage/xdist-unit-seconds": {"compliance-local": 1.0, "new-unit": 2.0}}
    merged = cached_seconds(cast(pytest.Config, FakeConfig(FakeCache(known))))
    assert merged["compliance-local"] == 1.0 and merged["new-unit"] == 2.0
    assert merged["tests/integration/test_mlflow_service.py"] == committed["tests/integration/test_mlflow_service.py"]


def test_the_cache_times_are_written_to_the_committed_file_rounded(tmp_path: Path) -> None:
    source, target = tmp_path / "cache.json", tmp_path / "unit_seconds.json"
    source.write_text(json.dumps({"b": 12.345, "a": 0.04}))
    assert write_committed_seconds(source, target) == 2
    assert json.loads(target.read_text()) == {"a": 0.0, "b": 12.3}
    assert committed_seconds(target) == {"a": 0.0, "b": 12.3}
    with pytest.raises(SystemExit, match="run `make test` first"):
        write_committed_seconds(tmp_path / "missing.json", target)
    assert committed_seconds(tmp_path / "missing.json") == {}


def test_the_cache_keeps_the_runs_times_not_copies_of_the_committed_ones() -> None:
    """Copied into the cache, the committed times would outrank a refreshed file for good."""
    cache = FakeCache({"kubesage/xdist-unit-seconds": {"old": 4.0}})
    times = UnitTimes()
    times.add(cast(pytest.TestReport, FakeReport("t.py::x@g", 1.5)))
    store_seconds(cast(pytest.Config, FakeConfig(cache)), times)
    assert cache.values["kubesage/xdist-unit-seconds"] == {"g": 1.5, "old": 4.0}
