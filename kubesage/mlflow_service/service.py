"""`up`, `down`, `status` and `user add`: plain functions the CLI (kubesage/cli/mlflow_service.py) wraps.

`up` is idempotent: it starts what is not running (PostgreSQL, the S3 stand-in, MLflow) and leaves
what is. The MLflow server gets its secrets through its environment, never its command line.
"""

from __future__ import annotations

import configparser
import io
import os
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubesage.errors import TrackingError
from kubesage.mlflow_service import postgres, processes, s3_standin
from kubesage.mlflow_service.layout import (
    ADMIN_USERNAME,
    BUCKET,
    STANDIN_AWS_KEYS,
    Layout,
    Secrets,
    Settings,
    credentials_env,
    load_secrets,
    load_settings,
    read_credentials,
    saved_settings,
    write_private,
)

MLFLOW = "mlflow"
S3 = "s3"
# Only sources that are this server's own artifacts may become model versions: a version pointing at
# a path or bucket elsewhere would make clients download from there (MLflow's source validation).
SOURCE_REGEX = r"^(models:/m-[0-9a-f]+|runs:/[0-9a-f]+/.+|mlflow-artifacts:/.+)$"
DEFAULT_EXPERIMENT = "customer-churn"
DEFAULT_MODEL = "customer-churn"
START_TIMEOUT = 300.0


@dataclass(frozen=True)
class ServiceStatus:
    state_dir: Path
    tracking_uri: str | None
    postgres: bool
    s3: bool
    mlflow: bool
    admin_credentials: Path

    @property
    def all_running(self) -> bool:
        return self.postgres and self.s3 and self.mlflow

    @property
    def nothing_running(self) -> bool:
        return not (self.postgres or self.s3 or self.mlflow)

    def lines(self) -> list[str]:
        def state(on: bool) -> str:
            return "running" if on else "stopped"

        return [
            f"MLflow server  {state(self.mlflow)}  {self.tracking_uri or '(never started)'}",
            f"PostgreSQL     {state(self.postgres)}  data in {self.state_dir / 'postgres'}",
            f"S3 (moto stand-in)  {state(self.s3)}",
            f"admin credentials: {self.admin_credentials} (source it: set -a; . {self.admin_credentials}; set +a)",
        ]


AUTH_CACHE_TTL_SECONDS = 60  # MLflow's suggested value (basic_auth.ini)


def auth_config(database_uri: str) -> str:
    """basic-auth's ini: users in the tracking database, nobody sees an experiment without a grant."""
    config = configparser.ConfigParser()
    config["mlflow"] = {
        "default_permission": "NO_PERMISSIONS",
        "database_uri": database_uri,
        "admin_username": ADMIN_USERNAME,
        "authorization_function": "mlflow.server.auth:authenticate_request_basic_auth",
        "grant_default_workspace_access": "false",
        # Without it every request pays a scrypt check of the password (~0.1-0.2 s of CPU on this
        # machine), one at a time on the single worker: a pipeline run's few hundred calls queued for
        # minutes. With one worker, a password change or user deletion through the API takes effect
        # at once; only out-of-band database edits wait for the TTL.
        "auth_cache_ttl_seconds": str(AUTH_CACHE_TTL_SECONDS),
    }
    text = io.StringIO()
    config.write(text)
    return text.getvalue()


def mlflow_server_command(
    database_uri: str, artifacts_destination: str, host: str, port: int, allowed_hosts: str
) -> list[str]:
    """`mlflow server` with basic-auth, proxied artifacts and allowed hosts; the same here and in the image."""
    return [
        sys.executable, "-m", "mlflow", "server", "--app-name", "basic-auth",
        "--backend-store-uri", database_uri,
        "--artifacts-destination", artifacts_destination,
        "--host", host, "--port", str(port), "--workers", "1",
        "--allowed-hosts", allowed_hosts,
    ]  # fmt: skip


def server_command(settings: Settings) -> list[str]:
    return mlflow_server_command(
        postgres.uri(settings.postgres_port), f"s3://{BUCKET}/artifacts", settings.host, settings.port,
        settings.allowed_hosts,
    )  # fmt: skip


def server_env(layout: Layout, settings: Settings, secret: Secrets) -> dict[str, str]:
    """The server's environment: its own secrets, the S3 endpoint and keys; none of the caller's
    tracking credentials (the server is not a client)."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "AWS_", "PG"))}
    return {
        **inherited,
        "PGPASSWORD": secret.postgres_password,
        "MLFLOW_AUTH_CONFIG_PATH": str(layout.auth_config),
        "MLFLOW_FLASK_SERVER_SECRET_KEY": secret.flask_secret_key,
        "MLFLOW_AUTH_ADMIN_USERNAME": ADMIN_USERNAME,
        "MLFLOW_AUTH_ADMIN_PASSWORD": secret.admin_password,
        "MLFLOW_S3_ENDPOINT_URL": settings.s3_endpoint,
        **STANDIN_AWS_KEYS,
        "AWS_DEFAULT_REGION": "us-east-1",
        "MLFLOW_CREATE_MODEL_VERSION_SOURCE_VALIDATION_REGEX": SOURCE_REGEX,
        # MLflow 3 also starts GenAI job consumers kubesage never uses.
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    }


def status(layout: Layout) -> ServiceStatus:
    settings = saved_settings(layout)
    return ServiceStatus(
        state_dir=layout.root,
        tracking_uri=settings.tracking_uri if settings else None,
        postgres=postgres.running(layout),
        s3=processes.running_pid(layout.pid_file(S3)) is not None,
        mlflow=processes.running_pid(layout.pid_file(MLFLOW)) is not None,
        admin_credentials=layout.admin_env,
    )


def up(
    layout: Layout, host: str = "127.0.0.1", port: int | None = None, allowed_hosts: str | None = None
) -> ServiceStatus:
    """Start whatever is not running; on a new state folder, create the cluster, database and secrets.

    The S3 stand-in and MLflow each spend seconds importing before they answer: each starts as soon as
    what it needs is there (the stand-in at once, MLflow once PostgreSQL accepts), and each is waited
    for only when the next step needs it answering. MLflow touches the bucket on a client's request,
    never while it starts, and both answer before `up` returns."""
    settings = load_settings(layout, host, port, allowed_hosts)
    secret = load_secrets(layout)
    s3_starting = _start_s3_standin(layout, settings)
    if not postgres.initialised(layout):
        postgres.init_cluster(layout, secret.postgres_password)
    if not postgres.running(layout):
        postgres.start(layout, settings.postgres_port)
    postgres.ensure_database(settings.postgres_port, secret.postgres_password)
    mlflow_starting = _start_mlflow(layout, settings, secret)
    if s3_starting is not None:
        processes.wait_http(f"{settings.s3_endpoint}/moto-api/", *s3_starting, "the S3 stand-in (moto)", 60)
    if s3_standin.ensure_bucket(settings.s3_endpoint):
        s3_standin.restore(layout, settings.s3_endpoint)
    if mlflow_starting is not None:
        processes.wait_http(f"{settings.tracking_uri}/health", *mlflow_starting, "the MLflow server", START_TIMEOUT)
    return status(layout)


def _start_s3_standin(layout: Layout, settings: Settings) -> tuple[int, Path] | None:
    """The stand-in's pid and log when this call started it; None when it was running."""
    if processes.running_pid(layout.pid_file(S3)) is not None:
        return None
    log = layout.logs / "s3-standin.log"
    pid = processes.start_detached(
        s3_standin.command(settings.s3_port), dict(os.environ), layout.pid_file(S3), log, "moto.server"
    )
    return pid, log


def _start_mlflow(layout: Layout, settings: Settings, secret: Secrets) -> tuple[int, Path] | None:
    """The server's pid and log when this call started it; None when it was running."""
    if processes.running_pid(layout.pid_file(MLFLOW)) is not None:
        return None
    write_private(layout.auth_config, auth_config(postgres.uri(settings.postgres_port)))
    log = layout.logs / "mlflow-server.log"
    pid = processes.start_detached(
        server_command(settings), server_env(layout, settings, secret), layout.pid_file(MLFLOW), log,
        f"--port {settings.port}",
    )  # fmt: skip
    return pid, log


def down(layout: Layout) -> ServiceStatus:
    """Stop MLflow, save the S3 stand-in's objects, stop it and PostgreSQL; the data stays."""
    processes.stop(layout.pid_file(MLFLOW))
    settings = saved_settings(layout)
    if settings and processes.running_pid(layout.pid_file(S3)) is not None:
        s3_standin.snapshot(layout, settings.s3_endpoint)
    processes.stop(layout.pid_file(S3))
    postgres.stop(layout)
    return status(layout)


@dataclass(frozen=True)
class NewUser:
    username: str
    credentials_file: Path
    experiment_id: str
    permission: str
    created: bool


def add_user(
    layout: Layout,
    username: str,
    experiment: str = DEFAULT_EXPERIMENT,
    model: str = DEFAULT_MODEL,
    permission: str = "EDIT",
) -> NewUser:
    """Create `username` with a generated password (kept in a 0600 file), grant it `experiment` and the
    registered model `model` (both created if missing), as the admin."""
    settings = saved_settings(layout)
    if settings is None or not status(layout).mlflow:
        raise TrackingError(f"no MLflow service runs from {layout.root}: start it with `kubesage mlflow up`")
    admin, admin_password = read_credentials(layout.admin_env)
    target = layout.users_dir / f"{username}.env"
    password = secrets.token_urlsafe(24)
    from mlflow.exceptions import MlflowException

    try:
        experiment_id, outcome = _grant(
            settings.tracking_uri, admin, admin_password, username, password, experiment, model, permission
        )
    except MlflowException as exc:
        raise TrackingError(f"could not add user {username!r} on {settings.tracking_uri}: {exc.message}") from exc
    if outcome == "created":
        write_private(target, credentials_env(username, password))
    return NewUser(username, target, experiment_id, permission, created=outcome == "created")


def _create_user(auth: Any, username: str, password: str) -> bool:
    """True when the user is new; an existing user keeps its password and only gets the grants."""
    from mlflow.exceptions import MlflowException

    try:
        auth.create_user(username, password)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
        return False
    return True


def _grant(
    uri: str,
    admin: str,
    admin_password: str,
    username: str,
    password: str,
    experiment: str,
    model: str,
    permission: str,
) -> tuple[str, str]:
    from mlflow import MlflowClient
    from mlflow.server.auth.client import AuthServiceClient

    saved = {
        k: os.environ.get(k) for k in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN")
    }
    os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"] = admin, admin_password
    os.environ.pop("MLFLOW_TRACKING_TOKEN", None)
    try:
        auth = AuthServiceClient(uri)
        created = _create_user(auth, username, password)
        client = MlflowClient(uri, registry_uri=uri)
        found = client.get_experiment_by_name(experiment)
        experiment_id = found.experiment_id if found else client.create_experiment(experiment)
        auth.grant_user_permission(username, "experiment", experiment_id, permission)
        if client.search_registered_models(filter_string=f"name = '{model}'") == []:
            client.create_registered_model(model)
        auth.grant_user_permission(username, "registered_model", model, permission)
        return experiment_id, "created" if created else "existed"
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
