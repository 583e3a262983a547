"""The kfp runner's IR edits and checks: pure functions on the compiled customer_churn IR."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from kubesage.errors import RunnerError
from kubesage.ir.graph import executors
from kubesage.runners.kfp.ir import prepare, validate
from kubesage.runners.kfp.runner import check_tracking_uri
from kubesage.runners.registry import load_pipeline

HANDOFF = {
    "MLFLOW_TRACKING_URI": "http://10.0.0.5:5000",
    "KUBESAGE_MLFLOW_PARENT_RUN_ID": "abc123",
    "KUBESAGE_MLFLOW_EXPERIMENT_ID": "7",
    "KUBESAGE_RUNNER": "kfp",
}


@pytest.fixture(scope="module")
def spec(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return load_pipeline("customer_churn", tmp_path_factory.mktemp("ir")).spec


def test_every_executor_gets_the_handoff_and_the_image(spec: dict[str, Any]) -> None:
    out = prepare(spec, HANDOFF, image="registry.local/kubesage:2", enable_caching=False)
    validate(out)
    containers = executors(out)
    assert len(containers) == 5  # preprocess, train, evaluate, register, report-not-registered
    for container in containers.values():
        assert {e["name"]: e["value"] for e in container["env"]} == HANDOFF
        assert container["image"] == "registry.local/kubesage:2"
    assert "env" not in next(iter(executors(spec).values()))  # the source IR is left alone


def test_caching_is_set_on_tasks_inside_conditions_too(spec: dict[str, Any]) -> None:
    out = prepare(spec, enable_caching=False)
    flags = [t["cachingOptions"]["enableCache"] for c in out["components"].values() if "dag" in c
             for t in c["dag"]["tasks"].values()]  # fmt: skip
    assert flags and not any(flags)
    assert not any(t["cachingOptions"]["enableCache"] for t in out["root"]["dag"]["tasks"].values())


def test_existing_env_entries_are_replaced_not_duplicated(spec: dict[str, Any]) -> None:
    once = prepare(spec, {**HANDOFF, "KUBESAGE_MLFLOW_PARENT_RUN_ID": "old"})
    twice = prepare(once, HANDOFF)
    for container in executors(twice).values():
        names = [e["name"] for e in container["env"]]
        assert sorted(names) == sorted(HANDOFF)
        assert {e["name"]: e["value"] for e in container["env"]}["KUBESAGE_MLFLOW_PARENT_RUN_ID"] == "abc123"


@pytest.mark.parametrize(
    "uri", ["http://user:secret@mlflow:5000", "https://mlflow:5000/?token=abc", "http://:pw@mlflow"]
)
def test_a_tracking_uri_with_credentials_is_refused(spec: dict[str, Any], uri: str) -> None:
    with pytest.raises(RunnerError, match="Kubernetes secret"):
        prepare(spec, {**HANDOFF, "MLFLOW_TRACKING_URI": uri})


@pytest.mark.parametrize(
    "uri", ["sqlite:///mlflow.db", "file:///tmp/mlruns", "/tmp/mlruns", "mlruns", "postgresql://db/mlflow"]
)
def test_a_file_tracking_store_is_refused_with_the_server_command(uri: str) -> None:
    with pytest.raises(RunnerError, match="mlflow server --backend-store-uri"):
        check_tracking_uri(uri)


@pytest.mark.parametrize(
    "uri",
    [
        "http://192.168.49.1:5000",
        "https://mlflow.example.com",
        "HTTPS://MLflow.example.com",  # schemes are case-insensitive (the kfp runner refused this before)
        "databricks",
        "databricks://profile",
        "arn:aws:sagemaker:us-east-1:111122223333:mlflow-tracking-server/kubesage",
    ],
)
def test_a_server_tracking_uri_passes(uri: str) -> None:
    check_tracking_uri(uri)


def test_a_broken_edit_fails_the_proto_check(spec: dict[str, Any]) -> None:
    broken = prepare(spec)
    broken["root"]["dag"]["tasks"]["train"]["cachingOptions"] = {"enableCache": "sometimes"}
    with pytest.raises(RunnerError, match="not a valid PipelineSpec"):
        validate(broken)


def test_compile_writes_the_ir_with_the_image(spec: dict[str, Any], tmp_path: Path) -> None:
    from kubesage.runners.registry import get_runner

    source = load_pipeline("customer_churn", tmp_path)
    written = get_runner("kfp", {"image_uri": "r.local/k:3"}).compile(source, tmp_path / "out.yaml")
    out = yaml.safe_load(written.read_text())
    validate(out)
    assert {c["image"] for c in executors(out).values()} == {"r.local/k:3"}
