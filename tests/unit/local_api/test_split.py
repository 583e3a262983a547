"""The local traffic split's logic on its own: the deterministic share, the alarm, the option ranges."""

from __future__ import annotations

import pytest

from kubesage.errors import ParameterError
from kubesage.local_api.split import ALARM_5XX, SplitConfig, TrafficSplit


def test_the_canary_share_is_exact_and_the_alarm_waits_for_enough_answers() -> None:
    split = TrafficSplit("http://old", "http://new", SplitConfig(canary_percent=10, min_requests=3, bake_requests=5))
    routes = [split.route() for _ in range(100)]
    assert routes.count("new") == 10 and routes[9] == "new" and routes[:9] == ["current"] * 9
    split.record("new", 500, 1.0)
    split.record("new", 500, 1.0)
    assert split.state == "canary"  # two answers are not yet enough to judge
    split.record("current", 500, 1.0)  # the current version's errors are not the new version's
    assert split.state == "canary"
    split.record("new", 200, 1.0)
    assert (split.state, split.fired) == ("rolled-back", ALARM_5XX)
    assert split.reason == "2 of the new version's 3 answers were 5xx (67% > 5%)"
    assert {split.route() for _ in range(20)} == {"current"}


def test_a_healthy_new_version_is_promoted_after_its_bake() -> None:
    split = TrafficSplit("http://old", "http://new", SplitConfig(canary_percent=50, min_requests=2, bake_requests=3))
    for status in (200, 200, 503, 200):  # one 5xx in four is 25%: over 5%, so it rolls back...
        split.record("new", status, 1.0)
    assert split.state == "rolled-back"
    fine = TrafficSplit("http://old", "http://new", SplitConfig(canary_percent=50, min_requests=2, bake_requests=3))
    for _ in range(3):
        fine.record("new", 200, 1.0)
    assert fine.state == "promoted" and {fine.route() for _ in range(5)} == {"new"}
    assert fine.snapshot()["summary"] == "promoted: all traffic to http://new"


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (SplitConfig(canary_percent=60), "--canary-percent 60 is out of range: a canary is 1-50% of the traffic"),
        (
            SplitConfig(min_requests=5, bake_requests=4),
            "--bake-requests 4 must be at least the alarm's --min-requests 5",
        ),
        (SplitConfig(max_5xx_rate=2), "--max-5xx-rate 2 is out of range"),
        (SplitConfig(max_latency_ms=-1), "--max-latency-ms -1 is out of range"),
    ],
)
def test_out_of_range_split_options_are_refused_in_one_line(config: SplitConfig, message: str) -> None:
    with pytest.raises(ParameterError, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        config.check()
