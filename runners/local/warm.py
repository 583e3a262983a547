"""One warm fork server per Python process, shared by the local runs it makes.

A run that starts its own zygote pays the zygote's imports (KFP's executor, MLflow, pandas,
scikit-learn, XGBoost, daal4py: 1-3 s on a 2-core machine) on its first task's path. A process that
runs pipelines again (a notebook, the Python API, a test session, a benchmark) reuses the zygote its
earlier run started. Nothing of one run reaches the next: every task is still a fresh fork of the
zygote, which itself never runs a task, exactly as between two tasks of one run.

A zygote is not reused, and a new one starts, when:
- it has died;
- kubesage's installed source changed since it imported it (a digest of the files: an edited step
  never runs stale in a notebook);
- a run that used it was interrupted, or failed while tasks were still running in it: the zygote is
  stopped once no run uses it, which terminates such tasks (as before, per run). A run that raised
  with none of its tasks running (refused parameters, say) keeps it.

The command line runs once and exits: there, the zygote ends with the process (atexit, or the closed
control socket when the process is killed).
"""

from __future__ import annotations

import atexit
import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass

from kubesage.runners.local.launcher import ForkServer


@dataclass
class WarmLease:
    """The process's shared fork server and who uses it; each run holds it as its lease."""

    server: ForkServer
    code_digest: str
    users: int = 0
    retired: bool = False

    def retire(self) -> None:
        """Not to be reused (the run failed: a task may still be running); stopped once unused."""
        with _lock:
            self.retired = True


_lock = threading.Lock()
_current: WarmLease | None = None


def _code_digest() -> str:
    from kubesage.runners.local.cache import code_digest_now

    return code_digest_now()  # the files now, not what this process saw first


def _acquire() -> WarmLease:
    global _current
    digest = _code_digest()
    with _lock:
        shared = _current
        if shared is None or shared.retired or shared.code_digest != digest or not shared.server.alive():
            if shared is not None and shared.users == 0:
                shared.server.stop()
            elif shared is not None:
                shared.retired = True  # its last user stops it
            server = ForkServer()
            server.start()
            shared = _current = WarmLease(server, digest)
        shared.users += 1
        return shared


def _release(shared: WarmLease, clean: bool) -> None:
    global _current
    with _lock:
        shared.users -= 1
        if not clean:
            shared.retired = True
        if shared.retired and shared.users == 0:
            shared.server.stop()
            if _current is shared:
                _current = None


@contextlib.contextmanager
def warm_fork_server() -> Iterator[WarmLease]:
    """The process's warm fork server for the length of one run. Leaving after `retire()`, on an
    interruption, or with an error while tasks of the run still run in it, stops it once no other
    run uses it: the next run starts a new one."""
    shared = _acquire()
    clean = False
    try:
        yield shared
        clean = True
    except Exception:
        # A run that raised with none of its tasks running (refused parameters, say) leaves the
        # zygote as it was: it never runs a task itself. An interruption (not an Exception) may
        # have cut a request to it in half, so it is not kept.
        clean = shared.server.tasks_running() == 0
        raise
    finally:
        _release(shared, clean)


@atexit.register
def stop_warm_fork_server() -> None:
    """Stop this process's warm zygote now (the next run starts a new one); also run at exit."""
    global _current
    with _lock:
        if _current is not None:
            _current.server.stop()
            _current = None
