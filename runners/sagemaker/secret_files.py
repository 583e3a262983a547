"""Files a step takes from AWS Secrets Manager when its job starts (kfp-kubernetes `use_secret_as_volume`).

The definition carries only names: `KUBESAGE_SECRET_FILES` maps a mount path to a secret id and whether
it is optional, e.g. `{"/etc/tls": {"secret": "prod/tls", "optional": false}}`. As Kubernetes mounts a
secret volume (one file per key of the secret), the shim writes one file per key of the secret's JSON
object into the mount path, before the task starts: mode 0600, owned by the account the task runs as.
Nothing here prints or returns a value; the report names the files only.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from kubesage.errors import RunnerError
from kubesage.runners.sagemaker.secret_env import read_secret
from kubesage.util.privileges import Account

ENV_SECRET_FILES = "KUBESAGE_SECRET_FILES"
# A Kubernetes secret key: what a file name in the mount may be (no '/', no '..').
_KEY_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")


class SecretMount(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    secret: str
    optional: bool = False


def encode(mounts: Mapping[str, SecretMount]) -> str:
    return json.dumps({path: m.model_dump() for path, m in sorted(mounts.items())}, separators=(",", ":"))


def decode(text: str) -> dict[str, SecretMount]:
    try:
        raw = json.loads(text)
        return {str(path): SecretMount.model_validate(mount) for path, mount in raw.items()}
    except (ValueError, AttributeError, ValidationError) as exc:
        raise RunnerError(f"{ENV_SECRET_FILES} is not a mapping of mount path -> {{secret, optional}}: {exc}") from exc


def _file_name(secret: str, key: str) -> str:
    if not key or key in {".", ".."} or not set(key) <= _KEY_CHARS:
        raise RunnerError(
            f"secret {secret!r} has a key that cannot be a file name (Kubernetes secret keys are letters, digits, "
            "'-', '_' and '.'); rename the key"
        )
    return key


def _write_private(path: Path, text: str, account: Account | None) -> None:
    """A new 0600 file (a planted link is removed, never followed), then given to the task's account."""
    if path.is_symlink() or path.exists():
        path.unlink()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        if account is not None:
            os.fchown(handle.fileno(), account.uid, account.gid)
        handle.write(text)


def write_files(mounts: Mapping[str, SecretMount], client: Any, account: Account | None) -> list[str]:
    """Write each mount's secret as files; return one line per mount naming the files, never a value."""
    lines = []
    for mount_path, mount in sorted(mounts.items()):
        values = read_secret(client, mount.secret, mount_path, mount.optional)
        if values is None:
            lines.append(f"secret {mount.secret!r} (optional) does not exist: nothing at {mount_path}")
            continue
        folder = Path(mount_path)
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        if account is not None:
            os.chown(folder, account.uid, account.gid, follow_symlinks=False)
        names = [_file_name(mount.secret, str(key)) for key in values]
        for key, name in zip(values, names, strict=True):
            value = values[key]
            _write_private(folder / name, value if isinstance(value, str) else json.dumps(value), account)
        lines.append(f"secret {mount.secret!r} -> {mount_path}: {', '.join(sorted(names))} (mode 0600)")
    return lines


def write_from_environment(environ: Mapping[str, str], client_factory: Any, account: Account | None) -> list[str]:
    """The files `KUBESAGE_SECRET_FILES` in `environ` asks for; nothing when it is unset."""
    text = environ.get(ENV_SECRET_FILES)
    if not text:
        return []
    return write_files(decode(text), client_factory(), account)
