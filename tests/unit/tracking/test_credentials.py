"""Which MLflow credentials steps need, and 401/403 from an authenticating server as one line."""

from __future__ import annotations

import pytest
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INTERNAL_ERROR, PERMISSION_DENIED, UNAUTHENTICATED

from kubesage.errors import TrackingError
from kubesage.tracking.credentials import credential_env_names
from kubesage.tracking.mlflow_calls import access_refused, mlflow_call


def test_the_token_wins_over_user_and_password_as_in_mlflow() -> None:
    assert credential_env_names({}) == []
    assert credential_env_names({"MLFLOW_TRACKING_USERNAME": "u", "MLFLOW_TRACKING_PASSWORD": "p"}) == [
        "MLFLOW_TRACKING_USERNAME",
        "MLFLOW_TRACKING_PASSWORD",
    ]
    assert credential_env_names({"MLFLOW_TRACKING_TOKEN": "t", "MLFLOW_TRACKING_USERNAME": "u"}) == [
        "MLFLOW_TRACKING_TOKEN"
    ]


def test_403_names_the_user_and_the_grant_to_ask_for(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "bob")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "bobs-password-123")
    denied = MlflowException("Permission denied", error_code=PERMISSION_DENIED)
    with pytest.raises(TrackingError) as caught, mlflow_call("read run 1a2b", "http://u:pw@mlflow:5000"):
        raise denied
    message = str(caught.value)
    assert message.startswith("MLflow at http://***@mlflow:5000 refused user bob permission to read run 1a2b (403)")
    assert "kubesage mlflow user add bob" in message and "bobs-password-123" not in message
    assert "\n" not in message


def test_401_says_which_variables_to_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME", raising=False)
    refused = access_refused(MlflowException("x", error_code=UNAUTHENTICATED), "open a run", "http://m")
    assert refused is not None
    assert "did not accept the credentials of (no user) (401)" in str(refused)
    assert "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD" in str(refused)
    assert access_refused(MlflowException("boom", error_code=INTERNAL_ERROR), "x", "http://m") is None
