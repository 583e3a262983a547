"""Run step code as the image's unprivileged user, where SageMaker's container contract allows it.

SageMaker starts training and processing containers as root and mounts root-owned folders under
/opt/ml that the job must write (the model, outputs). The entry process (the step shim, or `train`)
stays root only to hand those folders to the unprivileged user and to deliver the results; the code
that parses data and runs the component runs as that user. `KUBESAGE_STEP_USER` names the user
(default `kubesage`, which the image creates; `root` keeps root). Outside the image, where the user
does not exist, or when not root, nothing changes.
"""

from __future__ import annotations

import logging
import os
import pwd
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

ENV_STEP_USER = "KUBESAGE_STEP_USER"
DEFAULT_STEP_USER = "kubesage"


@dataclass(frozen=True)
class Account:
    """An unprivileged user to run as (step code, the model server)."""

    name: str
    uid: int
    gid: int
    home: str = "/"


def account_to_drop_to(name: str) -> Account | None:
    """The account `name`, or None when there is nothing to drop (not root, no such user, `root`)."""
    if os.geteuid() != 0 or not name or name == "root":
        return None
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        logger.info("user %r does not exist here; keeps running as root", name)
        return None
    return Account(name=name, uid=entry.pw_uid, gid=entry.pw_gid, home=entry.pw_dir)


def step_account(user: str | None = None) -> Account | None:
    """The account step code runs as: `user`, else $KUBESAGE_STEP_USER, else `kubesage`."""
    return account_to_drop_to(user if user is not None else os.environ.get(ENV_STEP_USER, DEFAULT_STEP_USER))


def hand_over(folders: Iterable[Path], account: Account) -> None:
    """Create `folders` if needed and give them, and everything in them, to `account`."""
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
        for path in [folder, *folder.rglob("*")]:
            os.chown(path, account.uid, account.gid, follow_symlinks=False)


def grant_read(folders: Iterable[Path]) -> None:
    """Let every user read `folders` and traverse them (inputs a root-run platform wrote 0700/0600).

    SageMaker's local mode downloads inputs into root-only temporary folders on the host and mounts
    them; the unprivileged step must still read them. Existing permissions are only widened for reading.
    """
    traverse = stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH
    for folder in folders:
        if not folder.exists():
            continue
        # The folders above must be passable too (local mode mounts /opt/ml/input itself 0700).
        for parent in folder.resolve().parents:
            if parent.stat().st_mode & traverse != traverse:
                parent.chmod(parent.stat().st_mode | traverse)
        for path in [folder, *folder.rglob("*")]:
            if path.is_symlink():
                continue
            mode = path.stat().st_mode
            extra = stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH
            if path.is_dir():
                extra |= stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH
            path.chmod(mode | extra)


def become(account: Account) -> None:
    """Drop this process to `account` for good (no supplementary groups, no way back)."""
    os.setgroups([])
    os.setgid(account.gid)
    os.setuid(account.uid)
    os.environ["USER"] = account.name
    os.environ["HOME"] = account.home
