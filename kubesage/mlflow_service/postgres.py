"""The service's PostgreSQL cluster: Debian's `postgresql` package, its data directory in the state
folder, listening on 127.0.0.1 only, password (SCRAM) authentication for every connection.

PostgreSQL refuses to run as root, so when kubesage runs as root the cluster belongs to the
`postgres` user the Debian package creates. In production this is RDS or any PostgreSQL: the server
takes its URI (mlflow/README.md).
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from kubesage.errors import TrackingError
from kubesage.mlflow_service.layout import DATABASE, DB_USER, Layout, write_private

INSTALL_HINT = "install Debian's PostgreSQL: `apt-get install -y postgresql` (or set PG_BIN to its bin folder)"


def bin_dir() -> Path:
    """The folder holding initdb and pg_ctl: $PG_BIN, Debian's /usr/lib/postgresql/N/bin, or PATH."""
    if given := os.environ.get("PG_BIN"):
        return Path(given)
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parent.parent.name))
    if versions:
        return versions[-1].parent
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    raise TrackingError(f"PostgreSQL's pg_ctl was not found: {INSTALL_HINT}")


@dataclass(frozen=True)
class Owner:
    """Who runs the cluster: this user, or `postgres` when this is root."""

    name: str | None
    uid: int
    gid: int

    @classmethod
    def for_this_process(cls) -> Owner:
        if os.geteuid() != 0:
            return cls(None, os.geteuid(), os.getegid())
        try:
            entry = pwd.getpwnam("postgres")
        except KeyError as exc:
            raise TrackingError(
                f"running as root, and PostgreSQL needs an unprivileged `postgres` user: {INSTALL_HINT}"
            ) from exc
        return cls("postgres", entry.pw_uid, entry.pw_gid)


def _subprocess(owner: Owner, command: Sequence[str]) -> subprocess.CompletedProcess[str]:
    """`command` as the cluster's owner (dropping root when kubesage runs as root), output captured."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C.UTF-8"}
    if owner.name:
        return subprocess.run(
            list(command), capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL, env=env,
            user=owner.uid, group=owner.gid, extra_groups=[],
        )  # fmt: skip
    return subprocess.run(list(command), capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL, env=env)


def _run(owner: Owner, command: Sequence[str], what: str) -> str:
    result = _subprocess(owner, command)
    if result.returncode != 0:
        raise TrackingError(f"{what} failed ({result.returncode}): {(result.stderr or result.stdout).strip()[-600:]}")
    return result.stdout


def _check_reachable(owner: Owner, folder: Path) -> None:
    """The `postgres` user must traverse every parent of the data directory (a 0700 home or pytest's
    /tmp/pytest-of-root is not traversable): say so, instead of initdb's 'Permission denied'."""
    if owner.name is None:
        return
    for parent in [*reversed(folder.parents)]:
        mode = parent.stat().st_mode
        if parent.stat().st_uid != owner.uid and not mode & 0o001:
            raise TrackingError(
                f"PostgreSQL runs as `postgres` here (kubesage runs as root) and cannot enter {parent} "
                f"(mode {oct(mode & 0o777)}): choose a --state-dir it can reach, or `chmod o+x {parent}`"
            )


def initialised(layout: Layout) -> bool:
    return (layout.pgdata / "PG_VERSION").is_file()


def init_cluster(layout: Layout, password: str) -> None:
    """initdb with a superuser `kubesage` whose password is the service's generated one."""
    owner = Owner.for_this_process()
    layout.postgres_dir.mkdir(parents=True, exist_ok=True)
    _check_reachable(owner, layout.postgres_dir)
    os.chown(layout.postgres_dir, owner.uid, owner.gid)
    layout.postgres_dir.chmod(0o700)
    password_file = layout.postgres_dir / "initial-password"
    write_private(password_file, password + "\n")
    os.chown(password_file, owner.uid, owner.gid)
    try:
        _run(
            owner,
            [
                str(bin_dir() / "initdb"), "-D", str(layout.pgdata), "-U", DB_USER, "--auth=scram-sha-256",
                f"--pwfile={password_file}", "-E", "UTF8", "--locale=C.UTF-8",
            ],
            "initdb",
        )  # fmt: skip
    finally:
        password_file.unlink(missing_ok=True)


def running(layout: Layout) -> bool:
    if not initialised(layout):
        return False
    status = _subprocess(Owner.for_this_process(), [str(bin_dir() / "pg_ctl"), "status", "-D", str(layout.pgdata)])
    return status.returncode == 0


def start(layout: Layout, port: int) -> None:
    """pg_ctl start on 127.0.0.1:`port`, its socket in the cluster's own folder; waits until it accepts."""
    owner = Owner.for_this_process()
    log = layout.postgres_dir / "postgres.log"
    options = f"-p {port} -c listen_addresses=127.0.0.1 -k {layout.postgres_dir}"
    _run(
        owner,
        [
            str(bin_dir() / "pg_ctl"),
            "start",
            "-D",
            str(layout.pgdata),
            "-l",
            str(log),
            "-w",
            "-t",
            "120",
            "-o",
            options,
        ],
        f"PostgreSQL start (log: {log})",
    )


def stop(layout: Layout) -> bool:
    if not running(layout):
        return False
    _run(
        Owner.for_this_process(),
        [str(bin_dir() / "pg_ctl"), "stop", "-D", str(layout.pgdata), "-m", "fast", "-w", "-t", "120"],
        "PostgreSQL stop",
    )
    return True


def uri(port: int, database: str = DATABASE) -> str:
    """The database URI without its password: libpq reads that from PGPASSWORD in the server's env."""
    return f"postgresql+psycopg2://{DB_USER}@127.0.0.1:{port}/{database}"


def ensure_database(port: int, password: str) -> None:
    """CREATE DATABASE mlflow once; MLflow's migrations create its tables (and basic-auth's) in it."""
    import psycopg2

    connection = psycopg2.connect(host="127.0.0.1", port=port, user=DB_USER, password=password, dbname="postgres")
    try:
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,))
            if cursor.fetchone() is None:
                cursor.execute(f'CREATE DATABASE "{DATABASE}"')
    finally:
        connection.close()
