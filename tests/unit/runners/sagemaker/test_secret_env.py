"""The names-only mapping from env variables to Secrets Manager secrets, and the refusal without one."""

from __future__ import annotations

import pytest

from kubesage.errors import RunnerError
from kubesage.runners.sagemaker import secret_env
from kubesage.runners.sagemaker.base import check_credentials_reach_steps


def test_the_mapping_round_trips_and_names_no_value() -> None:
    mapping = secret_env.mlflow_secret_env("arn:aws:secretsmanager:us-east-1:1:secret:kubesage/mlflow-AbC123")
    text = secret_env.encode(mapping)
    assert secret_env.decode(text) == mapping
    assert set(mapping) == {"MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN"}
    assert all(ref.optional for ref in mapping.values())
    with pytest.raises(RunnerError, match="KUBESAGE_SECRET_ENV is not a mapping"):
        secret_env.decode('{"X": {"secret": "s"}}')


def test_credentials_without_a_secret_are_refused_before_the_run() -> None:
    check_credentials_reach_steps({}, None)
    check_credentials_reach_steps({"MLFLOW_TRACKING_USERNAME": "ci"}, "kubesage/mlflow")
    with pytest.raises(RunnerError, match="MLFLOW_TRACKING_USERNAME is set.*--option mlflow_secret=kubesage/mlflow"):
        check_credentials_reach_steps({"MLFLOW_TRACKING_USERNAME": "ci", "MLFLOW_TRACKING_PASSWORD": "p"}, None)
