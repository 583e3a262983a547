"""The team service's state folder, settings, secrets and server command: pure logic, no processes."""

from __future__ import annotations

import configparser
from pathlib import Path

import pytest

from kubesage.errors import TrackingError
from kubesage.mlflow_service.layout import (
    Layout,
    credentials_env,
    load_secrets,
    load_settings,
    read_credentials,
    write_private,
)
from kubesage.mlflow_service.service import auth_config, server_command, server_env


def test_private_files_are_never_wider_than_0600(tmp_path: Path) -> None:
    target = tmp_path / "a" / "secret.txt"
    write_private(target, "x")
    write_private(target, "y")  # replaced, still private
    assert target.read_text() == "y" and target.stat().st_mode & 0o777 == 0o600


def test_settings_are_chosen_once_and_a_different_port_is_refused(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    first = load_settings(layout, "127.0.0.1", 5123, None)
    assert first.tracking_uri == "http://127.0.0.1:5123"
    assert first.allowed_hosts == "127.0.0.1:5123,localhost:5123,127.0.0.1:5123"
    assert load_settings(layout, "0.0.0.0", None, None) == first  # the saved ones win
    with pytest.raises(TrackingError, match="listens on port 5123, not 6000: .* another --state-dir"):
        load_settings(layout, "127.0.0.1", 6000, None)


def test_secrets_are_generated_once_with_the_admin_credentials_in_a_sourceable_file(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    secrets = load_secrets(layout)
    assert load_secrets(layout) == secrets
    assert len(secrets.admin_password) >= 12  # MLflow refuses a shorter admin password
    assert read_credentials(layout.admin_env) == ("admin", secrets.admin_password)
    assert layout.admin_env.stat().st_mode & 0o777 == 0o600
    assert credentials_env("u", "p") == "MLFLOW_TRACKING_USERNAME=u\nMLFLOW_TRACKING_PASSWORD=p\n"


def test_the_server_runs_basic_auth_on_postgres_with_secrets_only_in_its_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    layout = Layout(tmp_path)
    settings = load_settings(layout, "127.0.0.1", 5123, "mlflow.example.com")
    secrets = load_secrets(layout)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "the-callers-own")
    command = server_command(settings)
    assert command[command.index("--app-name") + 1] == "basic-auth"
    assert command[command.index("--allowed-hosts") + 1] == "mlflow.example.com"
    assert command[command.index("--backend-store-uri") + 1] == (
        f"postgresql+psycopg2://kubesage@127.0.0.1:{settings.postgres_port}/mlflow"
    )
    assert not any(secret in " ".join(command) for secret in vars(secrets).values())
    env = server_env(layout, settings, secrets)
    assert env["PGPASSWORD"] == secrets.postgres_password
    assert env["MLFLOW_AUTH_ADMIN_PASSWORD"] == secrets.admin_password
    assert env["MLFLOW_FLASK_SERVER_SECRET_KEY"] == secrets.flask_secret_key
    assert env["MLFLOW_S3_ENDPOINT_URL"] == settings.s3_endpoint
    assert env["MLFLOW_CREATE_MODEL_VERSION_SOURCE_VALIDATION_REGEX"].startswith("^(models:/m-")
    assert "MLFLOW_TRACKING_PASSWORD" not in env  # the server is no client of itself
    config = configparser.ConfigParser()
    config.read_string(auth_config(f"postgresql+psycopg2://kubesage@127.0.0.1:{settings.postgres_port}/mlflow"))
    assert dict(config["mlflow"]) == {
        "default_permission": "NO_PERMISSIONS",
        "database_uri": f"postgresql+psycopg2://kubesage@127.0.0.1:{settings.postgres_port}/mlflow",
        "admin_username": "admin",
        "authorization_function": "mlflow.server.auth:authenticate_request_basic_auth",
        "grant_default_workspace_access": "false",
        "auth_cache_ttl_seconds": "60",
    }
