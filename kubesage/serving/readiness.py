"""Readiness as one truth for the whole server, not a per-worker opinion.

SageMaker reads /ping's answers as the instance's health: a 503 after a 200 marks the instance
unhealthy. With several worker processes each loading its own model copy, a per-worker answer
flaps: the first worker to finish says 200, the next /ping reaches a worker still loading and
says 503. So the server says 200 only once every worker has loaded, and 200 for ever after (a
worker that uvicorn respawns later answers 200 too; an invocation reaching it waits for its load).

Workers are spawned processes, so they share the truth through a folder the supervising process
creates before it starts them: each loaded worker leaves a marker `worker-<pid>-<token>`, and the
first worker to count one live marker per expected worker leaves `all-ready`, which every worker
then reads once and remembers. A folder, not shared memory, because uvicorn spawns its workers
with no hook to hand them a shared object, and the environment (which they inherit) is enough to
name a folder. Before readiness each /ping lists a folder of at most a few entries; after it, /ping
reads one boolean.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

ENV_READY_DIR = "KUBESAGE_READY_DIR"
ENV_EXPECTED_WORKERS = "KUBESAGE_EXPECTED_WORKERS"
ALL_READY_MARKER = "all-ready"
_WORKER_PREFIX = "worker-"


@dataclass
class ServerReadiness:
    """Whether the whole server may answer /ping with 200.

    `directory` None means one process serves alone (an app built in-process): then the worker's
    own load is the server's readiness.
    """

    directory: Path | None = None
    expected_workers: int = 1
    _ready: bool = field(default=False, init=False)

    @classmethod
    def from_env(cls) -> ServerReadiness:
        """The readiness folder and worker count that `serve()` hands its workers."""
        folder = os.environ.get(ENV_READY_DIR, "").strip()
        if not folder:
            return cls()
        return cls(directory=Path(folder), expected_workers=max(1, int(os.environ.get(ENV_EXPECTED_WORKERS, "1"))))

    def worker_loaded(self) -> None:
        """Record that this worker has loaded and warmed its model."""
        if self.directory is not None:
            marker = self.directory / f"{_WORKER_PREFIX}{os.getpid()}-{secrets.token_hex(4)}"
            marker.touch()

    def is_ready(self, worker_loaded: bool) -> bool:
        """True once every worker has loaded; never False again after that."""
        if self._ready:
            return True
        if self.directory is None:
            self._ready = worker_loaded
        elif (self.directory / ALL_READY_MARKER).exists():
            self._ready = True
        elif worker_loaded and self._live_loaded_workers() >= self.expected_workers:
            (self.directory / ALL_READY_MARKER).touch()
            self._ready = True
        return self._ready

    def _live_loaded_workers(self) -> int:
        """Markers of workers still running: one that loaded then died does not count."""
        assert self.directory is not None
        return sum(
            1
            for entry in self.directory.iterdir()
            if entry.name.startswith(_WORKER_PREFIX) and _alive(int(entry.name.split("-")[1]))
        )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        return True
    return True
