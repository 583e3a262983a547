"""Edits to the compiled IR before it goes to the cluster: pure functions on the PipelineSpec dict.

Pods do not inherit the CLI's environment, so the MLflow hand-off travels in the IR itself: each
executor's container `env`. Only the hand-off variables go there (tracking URI, parent run id,
experiment id, runner name), never a credential: a URI carrying one is refused. Credentials reach the
pods as a *reference* to a Kubernetes secret in the platform spec (kfp-kubernetes' `use_secret_as_env`
form), which the cluster resolves when it starts each pod.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from kubesage.errors import PipelineNotFoundError, RunnerError
from kubesage.ir.graph import dags, executors
from kubesage.ir.schema import check_against_schema
from kubesage.tracking.contract import ENV_TRACKING_URI
from kubesage.tracking.credentials import credential_env_names
from kubesage.util.redact import uri_credentials


def check_no_credentials(env: Mapping[str, str]) -> None:
    """The IR is readable by anyone who can read the run: refuse a tracking URI that carries secrets."""
    credentials = uri_credentials(env.get(ENV_TRACKING_URI, ""))
    if credentials:
        raise RunnerError(
            f"MLFLOW_TRACKING_URI carries a credential ({', '.join(credentials)}), and KFP stores each run's IR "
            "where anyone who can read the run sees it. Use a plain http(s)://host URI and give the pods "
            "MLFLOW_TRACKING_USERNAME/PASSWORD (or MLFLOW_TRACKING_TOKEN) from a Kubernetes secret"
        )


def prepare(
    spec: Mapping[str, Any],
    env: Mapping[str, str] | None = None,
    image: str | None = None,
    enable_caching: bool | None = None,
) -> dict[str, Any]:
    """A copy of `spec` with `env` in every executor, `image` on every executor, caching set on every task."""
    out = copy.deepcopy(dict(spec))
    if env:
        check_no_credentials(env)
    for container in executors(out).values():
        if env:
            kept = [e for e in container.get("env", []) if e.get("name") not in env]
            container["env"] = kept + [{"name": k, "value": v} for k, v in env.items()]
        if image:
            container["image"] = image
    if enable_caching is not None:
        for _, dag in dags(out):
            for task in dag.get("tasks", {}).values():
                task.setdefault("cachingOptions", {})["enableCache"] = enable_caching
    return out


# The secret's data keys, as `kubectl create secret generic NAME --from-literal=username=...` writes them.
SECRET_KEYS = {
    "MLFLOW_TRACKING_USERNAME": "username",
    "MLFLOW_TRACKING_PASSWORD": "password",
    "MLFLOW_TRACKING_TOKEN": "token",
}


def secret_env_platform_spec(
    spec: Mapping[str, Any], secret_name: str, env: Mapping[str, str]
) -> dict[str, Any] | None:
    """The PlatformSpec that gives every executor the MLflow credentials set in `env` (names only are
    read) from Kubernetes secret `secret_name`, as kfp-kubernetes' `use_secret_as_env` writes it;
    None when `env` holds no credential."""
    names = credential_env_names(env)
    if not names:
        return None
    secret_as_env = {
        "secretName": secret_name,  # kfp-kubernetes still writes the deprecated field beside the parameter
        "secretNameParameter": {"runtimeValue": {"constant": secret_name}},
        "keyToEnv": [{"secretKey": SECRET_KEYS[name], "envVar": name} for name in names],
        "optional": False,  # a pod whose secret is missing does not start, rather than meet a 401 later
    }
    executors_config = {label: {"secretAsEnv": [secret_as_env]} for label in executors(spec)}
    return {"platforms": {"kubernetes": {"deploymentSpec": {"executors": executors_config}}}}


def validate(spec: Mapping[str, Any]) -> None:
    """KFP's schema check, as the KFP API server will run it: a broken edit fails here, offline."""
    try:
        check_against_schema(spec)
    except PipelineNotFoundError as exc:
        raise RunnerError(f"the IR is not a valid PipelineSpec after kubesage's edits: {exc}") from exc
