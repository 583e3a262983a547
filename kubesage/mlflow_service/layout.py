"""Where the service keeps its state, and the settings chosen at its first `up` (ports, names).

The state folder (`--state-dir`, `$KUBESAGE_STATE_DIR`, default `.kubesage/mlflow`) holds the
PostgreSQL cluster, the S3 stand-in's snapshot, logs, pid files and two files readable only by their
owner: `admin.env` (the admin's tracking credentials, to `source`) and `secrets.json` (the database
password and the Flask secret key the server needs on every start).
"""

from __future__ import annotations

import json
import os
import secrets
import stat
from dataclasses import asdict, dataclass
from pathlib import Path

from kubesage.errors import TrackingError
from kubesage.util.ports import free_port

ENV_STATE_DIR = "KUBESAGE_STATE_DIR"
DEFAULT_STATE_DIR = Path(".kubesage") / "mlflow"
ADMIN_USERNAME = "admin"
BUCKET = "kubesage-mlflow"
DATABASE = "mlflow"
DB_USER = "kubesage"
# moto's fixed test keys: the S3 stand-in accepts any; real S3 takes the server's role or keys.
STANDIN_AWS_KEYS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


def state_dir(given: str | Path | None = None) -> Path:
    return Path(given or os.environ.get(ENV_STATE_DIR) or DEFAULT_STATE_DIR).resolve()


@dataclass(frozen=True)
class Settings:
    """What `up` chose the first time and every later `up` reuses, so the URI never changes."""

    host: str
    port: int
    postgres_port: int
    s3_port: int
    allowed_hosts: str

    @property
    def tracking_uri(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def s3_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.s3_port}"


@dataclass(frozen=True)
class Secrets:
    """Generated once; never printed, never in a command line (`ps` shows those), never in MLflow."""

    admin_password: str
    postgres_password: str
    flask_secret_key: str


@dataclass(frozen=True)
class Layout:
    root: Path

    @property
    def settings_file(self) -> Path:
        return self.root / "service.json"

    @property
    def secrets_file(self) -> Path:
        return self.root / "secrets.json"

    @property
    def admin_env(self) -> Path:
        return self.root / "admin.env"

    @property
    def users_dir(self) -> Path:
        return self.root / "users"

    @property
    def postgres_dir(self) -> Path:
        return self.root / "postgres"

    @property
    def pgdata(self) -> Path:
        return self.postgres_dir / "data"

    @property
    def s3_snapshot(self) -> Path:
        return self.root / "s3-snapshot"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def auth_config(self) -> Path:
        return self.root / "basic_auth.ini"

    def pid_file(self, name: str) -> Path:
        return self.root / "run" / f"{name}.pid"


def write_private(path: Path, text: str) -> None:
    """Create or replace `path` readable and writable by its owner only, never wider for a moment."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(path.suffix + ".tmp")
    temporary.unlink(missing_ok=True)
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, stat.S_IRUSR | stat.S_IWUSR)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    temporary.replace(path)


def load_settings(layout: Layout, host: str, port: int | None, allowed_hosts: str | None) -> Settings:
    """The settings of an existing service folder, or new ones (free ports where none were given)."""
    if layout.settings_file.is_file():
        saved = Settings(**json.loads(layout.settings_file.read_text(encoding="utf-8")))
        if port and port != saved.port:
            raise TrackingError(
                f"the service in {layout.root} listens on port {saved.port}, not {port}: run `kubesage mlflow up` "
                f"without --port, or use another --state-dir for a second service"
            )
        return saved
    port = port or free_port()
    hosts = allowed_hosts or f"{host}:{port},localhost:{port},127.0.0.1:{port}"
    settings = Settings(host=host, port=port, postgres_port=free_port(), s3_port=free_port(), allowed_hosts=hosts)
    layout.root.mkdir(parents=True, exist_ok=True)
    layout.settings_file.write_text(json.dumps(asdict(settings), indent=2), encoding="utf-8")
    return settings


def saved_settings(layout: Layout) -> Settings | None:
    if not layout.settings_file.is_file():
        return None
    return Settings(**json.loads(layout.settings_file.read_text(encoding="utf-8")))


def load_secrets(layout: Layout) -> Secrets:
    """The service's secrets, generated at the first `up` (MLflow wants an admin password of 12+ characters)."""
    if layout.secrets_file.is_file():
        return Secrets(**json.loads(layout.secrets_file.read_text(encoding="utf-8")))
    generated = Secrets(
        admin_password=secrets.token_urlsafe(24),
        postgres_password=secrets.token_urlsafe(24),
        flask_secret_key=secrets.token_hex(32),
    )
    write_private(layout.secrets_file, json.dumps(asdict(generated)))
    write_private(layout.admin_env, credentials_env(ADMIN_USERNAME, generated.admin_password))
    return generated


def credentials_env(username: str, password: str) -> str:
    """A file to `set -a; . FILE` before `kubesage run`: MLflow clients read these two variables."""
    return f"MLFLOW_TRACKING_USERNAME={username}\nMLFLOW_TRACKING_PASSWORD={password}\n"


def read_credentials(path: Path) -> tuple[str, str]:
    values = dict(line.split("=", 1) for line in path.read_text(encoding="utf-8").splitlines() if "=" in line)
    return values["MLFLOW_TRACKING_USERNAME"], values["MLFLOW_TRACKING_PASSWORD"]
