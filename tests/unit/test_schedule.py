"""The order the suite's work units are handed to xdist's workers (tests/schedule.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import pytest

from tests.schedule import UnitTimes, longest_first, unit_of_nodeid


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
