"""SageMaker SDK telemetry: off unless the user turns it on, as the SDK itself resolves it.

Each test asks the SDK (its own `resolve_value_from_config` on TelemetryOptOut, what its telemetry
decorator reads) about the sessions local mode uses: the default session the SDK builds for
`LocalPipelineSession.create_pipeline`, and a LocalPipelineSession.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from kubesage.runners.sagemaker.compiler import offline_env
from kubesage.runners.sagemaker.telemetry import ADMIN_CONFIG_OVERRIDE, sdk_telemetry, telemetry_opted_out
from kubesage.util.boto_sessions import new_boto3_session


@pytest.fixture(autouse=True)
def own_sdk_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """No config of this machine's user or admin: each test writes the one it needs."""
    user, admin = tmp_path / "user-config.yaml", tmp_path / "admin-config.yaml"
    for path in (user, admin):
        path.write_text("SchemaVersion: '1.0'\n")  # the SDK refuses an override naming no file
    monkeypatch.setenv("SAGEMAKER_USER_CONFIG_OVERRIDE", str(user))
    monkeypatch.setenv(ADMIN_CONFIG_OVERRIDE, str(admin))
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(name, value)
    with offline_env("us-east-1"):
        yield user


@pytest.fixture(autouse=True)
def sdk_schema_checked_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """`jsonschema.validate` checks the schema itself against its metaschema on every call: 0.3 s of
    CPU for the SDK's config schema, which the SDK validates a config against ~15 times per test here
    (9 s for the module). The schema is checked once; every config is still validated, as the SDK does."""
    checked: list[Any] = []  # the schemas checked (kept, so that no id is reused)

    def validate(instance: Any, schema: Any, cls: Any = None, *args: Any, **kwargs: Any) -> None:
        cls = cls or jsonschema.validators.validator_for(schema)
        if not any(schema is seen for seen in checked):
            cls.check_schema(schema)
            checked.append(schema)
        error = jsonschema.exceptions.best_match(cls(schema, *args, **kwargs).iter_errors(instance))
        if error is not None:
            raise error

    monkeypatch.setattr(jsonschema, "validate", validate)


def _sessions() -> list[Any]:
    from sagemaker.core.telemetry.telemetry_logging import _get_default_sagemaker_session
    from sagemaker.mlops.local import LocalPipelineSession

    local = LocalPipelineSession(boto_session=new_boto3_session(region_name="us-east-1"), default_bucket="b")
    return [_get_default_sagemaker_session(), local]


def test_off_by_default_for_every_session_local_mode_reports_through() -> None:
    with sdk_telemetry(enabled=False) as note:
        assert [telemetry_opted_out(session) for session in _sessions()] == [True, True]
    assert "off" in note
    assert [telemetry_opted_out(session) for session in _sessions()] == [False, False], "the SDK's default, outside"


def test_the_runner_option_turns_it_on() -> None:
    with sdk_telemetry(enabled=True):
        assert [telemetry_opted_out(session) for session in _sessions()] == [False, False]


def test_the_users_own_sdk_config_turns_it_on(own_sdk_config: Path) -> None:
    own_sdk_config.write_text(
        yaml.safe_dump({"SchemaVersion": "1.0", "SageMaker": {"PythonSDK": {"Modules": {"TelemetryOptOut": False}}}})
    )
    with sdk_telemetry(enabled=False):
        assert [telemetry_opted_out(session) for session in _sessions()] == [False, False]


def test_an_admin_config_keeps_its_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    admin = tmp_path / "admin.yaml"
    admin.write_text(yaml.safe_dump({"SchemaVersion": "1.0", "SageMaker": {"PythonSDK": {"Modules": {}}}}))
    monkeypatch.setenv(ADMIN_CONFIG_OVERRIDE, str(admin))
    with sdk_telemetry(enabled=False):
        merged = yaml.safe_load(Path(os.environ[ADMIN_CONFIG_OVERRIDE]).read_text())
        assert merged["SageMaker"]["PythonSDK"]["Modules"] == {"TelemetryOptOut": True}
        assert all(telemetry_opted_out(session) for session in _sessions())
    assert os.environ[ADMIN_CONFIG_OVERRIDE] == str(admin)
