"""MLflow credentials reach KFP pods as a Kubernetes secret reference, in the form kfp-kubernetes writes."""

# No `from __future__ import annotations`: KFP reads the component signatures as real types.

from pathlib import Path
from typing import Any

import pytest
import yaml
from kfp import compiler, dsl, kubernetes

from kubesage.runners.kfp.ir import secret_env_platform_spec
from tests.standins.kfp_api import MissingSecretError, secret_env_by_task


@dsl.component
def echo(text: str) -> str:
    return text


@dsl.pipeline(name="two-steps")
def two_steps(text: str = "hi") -> None:
    first = echo(text=text)
    second = echo(text=first.output)
    for task in (first, second):
        kubernetes.use_secret_as_env(
            task,
            secret_name="kubesage-mlflow",
            secret_key_to_env={"username": "MLFLOW_TRACKING_USERNAME", "password": "MLFLOW_TRACKING_PASSWORD"},
        )


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], dict[str, Any]]:
    path = Path(tmp_path_factory.mktemp("ir")) / "two.yaml"
    compiler.Compiler().compile(two_steps, str(path))
    spec, platform = yaml.safe_load_all(path.read_text(encoding="utf-8"))
    return spec, platform


def test_the_reference_is_what_use_secret_as_env_compiles_to(compiled: tuple[dict[str, Any], dict[str, Any]]) -> None:
    spec, platform = compiled
    env = {"MLFLOW_TRACKING_USERNAME": "alice", "MLFLOW_TRACKING_PASSWORD": "never-copied-123"}
    ours = secret_env_platform_spec(spec, "kubesage-mlflow", env)
    assert ours == platform
    assert "never-copied-123" not in yaml.safe_dump(ours)


def test_no_credentials_no_platform_spec_and_a_token_maps_to_its_key(
    compiled: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    spec, _ = compiled
    assert secret_env_platform_spec(spec, "s", {}) is None
    token = secret_env_platform_spec(spec, "s", {"MLFLOW_TRACKING_TOKEN": "t"})
    assert token is not None
    executor = token["platforms"]["kubernetes"]["deploymentSpec"]["executors"]["exec-echo"]
    assert executor["secretAsEnv"][0]["keyToEnv"] == [{"secretKey": "token", "envVar": "MLFLOW_TRACKING_TOKEN"}]


def test_the_standin_resolves_each_task_from_its_store_and_fails_a_missing_secret(
    compiled: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    spec, platform = compiled
    store = {"kubesage-mlflow": {"username": "alice", "password": "pw-123456789"}}
    resolved = secret_env_by_task(spec, platform, store)
    pod_env = {"MLFLOW_TRACKING_USERNAME": "alice", "MLFLOW_TRACKING_PASSWORD": "pw-123456789"}
    assert resolved == {"echo": pod_env, "echo-2": pod_env}
    assert secret_env_by_task(spec, {}, store) == {}
    with pytest.raises(MissingSecretError, match="CreateContainerConfigError: secret 'kubesage-mlflow'"):
        secret_env_by_task(spec, platform, {})
