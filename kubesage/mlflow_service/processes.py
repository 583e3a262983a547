"""The service's own processes: started detached (they outlive `kubesage mlflow up`), found again by
their pid file, stopped by process group. A pid is trusted only while its command line still names
what was started, so a recycled pid is never signalled."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path

from kubesage.errors import TrackingError


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
    except OSError:
        return ""


def running_pid(pid_file: Path) -> int | None:
    """The pid in `pid_file` if that process still runs the command recorded beside it."""
    try:
        pid_text, marker = pid_file.read_text(encoding="utf-8").split("\n", 1)
        pid = int(pid_text)
    except (OSError, ValueError):
        return None
    return pid if marker.strip() and marker.strip() in _cmdline(pid) else None


def start_detached(command: Sequence[str], env: Mapping[str, str], pid_file: Path, log_path: Path, marker: str) -> int:
    """Start `command` in its own session, output to `log_path`; record its pid and `marker` (a string
    of its command line that identifies it)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            list(command), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=dict(env), start_new_session=True,
        )  # fmt: skip
    pid_file.write_text(f"{process.pid}\n{marker}\n", encoding="utf-8")
    return process.pid


def stop(pid_file: Path, timeout: float = 30.0) -> bool:
    """SIGTERM the recorded process group, SIGKILL after `timeout`; False when nothing was running."""
    pid = running_pid(pid_file)
    pid_file.unlink(missing_ok=True)
    if pid is None:
        return False
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.2)
    if _alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
    return True


def _alive(pid: int) -> bool:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # reap it if it was our child (a test's `up` in-process)
    try:
        state = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8").rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def wait_http(url: str, pid: int, log_path: Path, what: str, timeout: float) -> None:
    """Until `url` answers 2xx; fail naming the log when the process exits or the time is up."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            raise TrackingError(f"{what} exited while starting; its log: {log_path}")
        try:
            with urllib.request.urlopen(url, timeout=3) as response:
                if 200 <= response.status < 300:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)  # a refused connection costs next to nothing; a start is found 0.2 s sooner on average
    raise TrackingError(f"{what} did not answer on {url} within {timeout:.0f} s; its log: {log_path}")
