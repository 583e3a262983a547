"""The local traffic split: the API front -> handler -> the split -> two served versions, on loopback.

What is real: two `kubesage serve` apps (kubesage.serving.app on uvicorn, one per version), the API
front and the handler calling the split over HTTP with boto3, and `kubesage rollback --local-api`.
The new version that fails is a real serving app too: its model file is corrupt, so it cannot load
and answers 503, as a broken new model would. The split and its alarm stand in for SageMaker's
deployment guardrails (kubesage.local_api.split says how they differ: requests, not minutes).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from kubesage.deploy.bundle import bundle_from_model
from kubesage.local_api.front import BackgroundServer, GatewayServer, SplitServer, in_process_api
from kubesage.local_api.gateway import InProcessInvoker
from kubesage.local_api.split import ALARM_5XX, ALARM_LATENCY, SplitConfig, TrafficSplit
from kubesage.serving.app import create_app
from tests.integration.api_helpers import registered_model_dir, seed_record

pytestmark = pytest.mark.integration
KEY = "split-key-0123456789abcdefghijklmnopqrst"


@pytest.fixture(scope="module")
def model_dir(trained_model: Path, prepared: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    return registered_model_dir(trained_model, prepared, tmp_path_factory.mktemp("registered"), threshold=0.5)


@pytest.fixture(scope="module")
def current(model_dir: Path) -> Iterator[str]:
    """The version serving now: a kubesage serve app on the good model."""
    with BackgroundServer(create_app(model_dir, exit_on_load_failure=False), name="current") as server:
        yield server.url


@pytest.fixture(scope="module")
def broken(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A new version that fails: its model file is corrupt, so the serving app answers 503."""
    target = tmp_path_factory.mktemp("broken")
    shutil.copytree(model_dir, target, dirs_exist_ok=True)
    (target / "xgboost-model.ubj").write_bytes(b"not a model")
    with BackgroundServer(create_app(target, exit_on_load_failure=False), name="broken") as server:
        yield server.url


def _front(model_dir: Path, split: TrafficSplit) -> tuple[SplitServer, GatewayServer]:
    router = SplitServer(split).start()
    api = in_process_api(bundle_from_model(str(model_dir)), router.url, "kubesage-local")
    return router, GatewayServer(InProcessInvoker(api), KEY, split=split).start()


def _send(url: str, record: dict[str, str], times: int) -> list[int]:
    body = json.dumps(record)
    return [
        httpx.post(f"{url}/predict", headers={"x-api-key": KEY}, content=body, timeout=60).status_code
        for _ in range(times)
    ]


def test_a_failing_new_version_trips_the_5xx_alarm_and_the_split_rolls_back(
    model_dir: Path, current: str, broken: str, churn_csv: Path
) -> None:
    record, _ = seed_record(churn_csv)
    split = TrafficSplit(current, broken, SplitConfig(canary_percent=50, min_requests=2, bake_requests=10))
    router, gateway = _front(model_dir, split)
    try:
        # Every other request goes to the new version; its 503s reach the client as the handler's 502.
        assert _send(gateway.url, record, 4) == [200, 502, 200, 502]
        state = httpx.get(f"{gateway.url}/_kubesage/traffic", headers={"x-api-key": KEY}).json()
        assert (state["state"], state["new_version_percent"], state["alarm"]) == ("rolled-back", 0, ALARM_5XX)
        assert state["reason"] == "2 of the new version's 2 answers were 5xx (100% > 5%)"
        assert state["new"]["requests"] == 2 and state["current"]["requests"] == 2
        assert state["summary"] == (
            f"rolled back: all traffic to {current}; alarm {ALARM_5XX} fired: "
            "2 of the new version's 2 answers were 5xx (100% > 5%)"
        )
        # From then on the current version answers everything; the new one sees nothing more.
        assert _send(gateway.url, record, 4) == [200] * 4
        assert split.new.requests == 2 and split.current.requests == 6
        # The state routes need the key, like /predict.
        assert httpx.get(f"{gateway.url}/_kubesage/traffic").status_code == 403
    finally:
        gateway.stop()
        router.stop()


def test_a_slow_new_version_trips_the_latency_alarm_a_good_one_is_promoted_and_rollback_returns_it(
    model_dir: Path, current: str, churn_csv: Path, tmp_path: Path
) -> None:
    """The same good app as both versions: a latency threshold below any real answer trips the alarm;
    the default thresholds let it through to promotion, and `kubesage rollback --local-api` undoes that."""
    from kubesage.cli import main

    record, _ = seed_record(churn_csv)
    slow = TrafficSplit(current, current, SplitConfig(canary_percent=50, min_requests=2, max_latency_ms=0.001))
    router, gateway = _front(model_dir, slow)
    try:
        assert _send(gateway.url, record, 4) == [200] * 4
        assert (slow.state, slow.fired) == ("rolled-back", ALARM_LATENCY)
        assert slow.reason.startswith("the new version's mean latency ") and slow.reason.endswith(" ms > 0.001 ms")
    finally:
        gateway.stop()
        router.stop()

    good = TrafficSplit(current, current, SplitConfig(canary_percent=50, min_requests=2, bake_requests=2))
    router, gateway = _front(model_dir, good)
    try:
        assert _send(gateway.url, record, 4) == [200] * 4
        assert good.state == "promoted" and good.new.requests == 2
        assert _send(gateway.url, record, 2) == [200, 200]
        assert good.new.requests == 4  # all traffic to the new version now
        key_file = tmp_path / "key"
        key_file.write_text(KEY)
        runner = CliRunner()
        done = runner.invoke(main, ["rollback", "--local-api", gateway.url, "--api-key-file", str(key_file)])
        assert done.exit_code == 0, done.output
        assert done.stdout.strip() == f"rolled back: all traffic to {current}; rolled back by hand (kubesage rollback)"
        assert _send(gateway.url, record, 2) == [200, 200]
        assert good.new.requests == 4 and good.state == "rolled-back"
        key_file.write_text("wrong-key")
        refused = runner.invoke(main, ["rollback", "--local-api", gateway.url, "--api-key-file", str(key_file)])
        assert refused.exit_code == 1
        assert "refused the key; pass its key with --api-key-file" in refused.stderr
    finally:
        gateway.stop()
        router.stop()
