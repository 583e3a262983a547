"""A fork server (zygote) for KFP's lightweight Python tasks: the imports are paid once per run.

KFP's subprocess runner starts each task as `sh -ec '... python3 -m kfp.dsl.executor_main ...'`, a
fresh interpreter that imports KFP's executor, MLflow, scikit-learn, XGBoost and daal4py again: about
4-6 s per task for well under a second of work. Here one helper process imports them once and forks
a child per task. The child runs exactly what that shell line runs, KFP's own `executor_main` with the
same arguments, the task's environment and working directory, and its stdout and stderr on a pipe the
runner reads like the subprocess's. Every task is a fresh fork of the same untouched parent, so a
crash, a changed global, working directory or environment variable in one task never reaches the next.

Fork safety: the zygote stays single-threaded. It imports with `OPENBLAS_NUM_THREADS=1` (OpenBLAS
starts its thread pool when numpy loads) and `JE_ARROW_MALLOC_CONF=background_thread:false` (pyarrow's
jemalloc starts a purging thread when pandas loads); a child sets OpenBLAS back to the thread count a
fresh process would get. No MLflow store, database connection or OpenMP region is opened before fork.

Protocol, over a Unix socketpair given to the zygote at start: the runner sends a length-prefixed
JSON request with two file descriptors (the write end of the task's output pipe, and one end of a
per-task socketpair); the zygote forks and, once the child ends, writes its wait status as text
("exit 0", "signal 11") on that socketpair. A request `{"preload": [MODULE, ...]}` without
descriptors adds modules to import between tasks (what the run's components import). Closing the
control socket stops the zygote, which terminates any child still running.

Run as `python -m kubesage.runners.local.forkserver FD [--no-tracking-store] ESSENTIAL_MODULE...` (the
runner does this).
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import importlib
import io
import json
import os
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubesage.errors import RunnerError

_HEADER = struct.Struct("!I")
NO_TRACKING_STORE_FLAG = "--no-tracking-store"
# What the zygote's environment gets so that importing numpy and pandas starts no thread.
ZYGOTE_ENV = {"OPENBLAS_NUM_THREADS": "1", "JE_ARROW_MALLOC_CONF": "background_thread:false"}
# What KFP's launch line sets for a task (`_KFP_RUNTIME=true python3 -m kfp.dsl.executor_main`): `import
# kfp` then skips the compile-time SDK (kfp.Client, with kubernetes and google-auth). A zygote started for
# tasks imports kfp with it too, so that its tasks see the kfp a KFP task sees, and 0.3-0.5 s sooner.
TASK_RUNTIME_ENV = {"_KFP_RUNTIME": "true"}


def send_request(sock: socket.socket, request: dict[str, Any], fds: list[int]) -> None:
    payload = json.dumps(request).encode("utf-8")
    socket.send_fds(sock, [_HEADER.pack(len(payload))], fds)
    sock.sendall(payload)


def _recv_exact(sock: socket.socket, size: int) -> bytes | None:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = sock.recv(size - len(chunks))
        if not chunk:
            return None
        chunks += chunk
    return bytes(chunks)


def _recv_request(sock: socket.socket) -> tuple[dict[str, Any], list[int]] | None:
    """The next request and its descriptors; None when the runner closed the socket."""
    header, fds, _flags, _addr = socket.recv_fds(sock, _HEADER.size, 2)
    if not header:
        return None
    if len(header) < _HEADER.size:
        rest = _recv_exact(sock, _HEADER.size - len(header))
        if rest is None:
            return None
        header += rest
    (size,) = _HEADER.unpack(header)
    payload = _recv_exact(sock, size)
    if payload is None:
        return None
    return json.loads(payload), list(fds)


def wait_status_text(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"signal {os.WTERMSIG(status)}"
    return f"exit {os.waitstatus_to_exitcode(status)}"


# --- the zygote ----------------------------------------------------------------------------------
def _import(name: str) -> None:
    try:
        importlib.import_module(name)
    except Exception as exc:  # the task that needs it fails with the real error, in its own log
        print(f"fork server: not preloaded {name}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return
    try:
        _warm_after_import(name)
    except Exception as exc:  # each task then does it itself, as a fresh process would
        print(f"fork server: not warmed after {name}: {type(exc).__name__}: {exc}", file=sys.stderr)


def import_warm(name: str) -> None:
    """Import `name` as the zygote does, with MLflow's lazy work that belongs to it (for a process
    that forks zygotes, as the KFP stand-in's warm executor does)."""
    importlib.import_module(name)
    _warm_after_import(name)


def _warm_after_import(name: str) -> None:
    warm = _WARM_AFTER_IMPORT.get(name)
    if warm is not None and name not in _warmed:
        warm()
        _warmed.add(name)


def _needs_import(name: str) -> bool:
    return name not in sys.modules or (name in _WARM_AFTER_IMPORT and name not in _warmed)


def _warm_request_headers() -> None:
    """Resolve MLflow's request headers once: on a task's first call to a tracking server, MLflow's
    Databricks header provider imports IPython (when installed) to look for a notebook, every task again."""
    from mlflow.tracking.request_header.registry import resolve_request_headers

    resolve_request_headers()


def _warm_requirements_map() -> None:
    """Build MLflow's map of installed packages to their modules once: logging a model builds it
    (0.8 s of CPU) to check the model's requirements against this environment, every task again.
    It reads the installed distributions, which the zygote shares with its tasks."""
    from mlflow.utils.requirements_utils import _init_packages_to_modules_map

    _init_packages_to_modules_map()


# Work MLflow does lazily, once per process, on a task's path: done in the zygote right after it
# imports the module the work belongs to, so that every task inherits it. None starts a thread.
_WARM_AFTER_IMPORT = {
    "mlflow.tracking": _warm_request_headers,
    "mlflow.models": _warm_requirements_map,
}
_warmed: set[str] = set()


def _warm_tracking_store() -> None:
    """Build the MLflow client and stores of the run's SQLite store once, for every task to inherit.

    Building them (engine, table and schema checks) took 0.4 s per step on a busy machine. The
    connections they opened are closed again (`Engine.dispose`, SQLAlchemy's advice before fork):
    children inherit the engines with empty pools and open their own connections.
    """
    try:
        from mlflow.store.model_registry.sqlalchemy_store import SqlAlchemyStore as RegistryStore
        from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

        from kubesage.tracking import tracking_uri
        from kubesage.tracking.sqlite_store import mlflow_client, sqlite_path

        uri = os.environ.get("MLFLOW_TRACKING_URI") or tracking_uri()
        if sqlite_path(uri) is None:
            return
        mlflow_client(uri)
        for store in (SqlAlchemyStore, RegistryStore):
            for engine in getattr(store, "_engine_map", {}).values():
                engine.dispose()
    except Exception as exc:  # each task then builds its own, as a fresh process would
        print(f"fork server: MLflow store not prepared: {type(exc).__name__}: {exc}", file=sys.stderr)


def serve(control: socket.socket, essential: list[str], *, warm_tracking_store: bool = True) -> None:
    """Import `essential`, then fork a child per request until the runner closes `control`,
    importing what preload requests name in between. `warm_tracking_store`: open the SQLite store
    the environment names (or the embedded one) for the tasks; not for tasks told their store otherwise.

    `essential` is what every task needs (KFP's executor, MLflow's client): tasks wait for it, so
    that four tasks started at once do not each import MLflow. A task request that arrives while
    preloads are still being imported is served at once (between two imports): its child imports
    what it needs itself, as a fresh process would; later tasks find it imported.
    """
    # The zygote only imports and forks: no collection while it imports (a full one each time the
    # objects grew by a quarter, each over everything imported so far), and what it holds is frozen
    # before each fork; a task collects again (CPython's advice for forking servers).
    gc.disable()
    for name in essential:
        _import(name)
    if warm_tracking_store:
        _warm_tracking_store()
    wake_read, wake_write = wake_on_child_exit()
    children: dict[int, socket.socket] = {}
    pending: list[str] = []
    try:
        while True:
            readable, _, _ = select.select([control.fileno(), wake_read], [], [], 0 if pending else None)
            if wake_read in readable:
                with contextlib.suppress(BlockingIOError):
                    os.read(wake_read, 512)
            _reap(children)
            if control.fileno() not in readable:
                if pending:
                    _import(pending.pop(0))
                continue
            received = _recv_request(control)
            if received is None:
                return
            request, fds = received
            if "preload" in request:
                pending.extend(name for name in request["preload"] if _needs_import(name))
                continue
            out_fd, status_fd = fds
            status_sock = socket.socket(fileno=status_fd)
            # What the zygote holds now (its imports) is out of the collector's reach in the task: its
            # collections scan only the task's own objects and leave the inherited pages shared. A
            # churn run's four tasks: 2.3 s of CPU, not 2.5 s.
            gc.freeze()
            pid = os.fork()
            if pid == 0:
                status_sock.close()
                control.close()
                os.close(wake_read)
                os.close(wake_write)
                _child(request, out_fd)  # never returns
            os.close(out_fd)
            children[pid] = status_sock
    finally:
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        for pid, sock in children.items():
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
            sock.close()


def exited_children() -> Iterator[tuple[int, int]]:
    """(pid, wait status) of each child that has ended, without waiting for those still running."""
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        yield pid, status


def wake_on_child_exit() -> tuple[int, int]:
    """A pipe SIGCHLD writes to (read end, write end): select() watches the read end beside its sockets."""
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_read, False)
    os.set_blocking(wake_write, False)
    signal.set_wakeup_fd(wake_write)
    signal.signal(signal.SIGCHLD, lambda *_: None)  # a handler, so SIGCHLD wakes select()
    return wake_read, wake_write


def _reap(children: dict[int, socket.socket]) -> None:
    if not children:
        return
    for pid, status in exited_children():
        sock = children.pop(pid, None)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.sendall(wait_status_text(status).encode("ascii"))
            sock.close()


def _child(request: dict[str, Any], out_fd: int) -> None:
    """Become the task: what KFP's `sh -ec` line does, minus the new interpreter. Ends the process."""
    code = 1
    try:
        gc.enable()  # the zygote's imports are frozen; the task's own objects are collected as in any process
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.dup2(out_fd, 1)
        os.dup2(out_fd, 2)
        os.close(out_fd)
        sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), line_buffering=True)
        sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), line_buffering=True)
        code = _execute(request)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        with contextlib.suppress(BaseException):
            atexit._run_exitfuncs()
        with contextlib.suppress(BaseException):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def _execute(request: dict[str, Any]) -> int:
    environment: dict[str, str] = request["env"]
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(environment)
    os.environ.update(TASK_RUNTIME_ENV)
    _restore_blas_threads(environment)
    tempfile.tempdir = None  # chosen again from the task's TMPDIR, not the one the zygote cached
    # `python3 -m` puts the working directory first on sys.path.
    sys.path[0] = str(Path.cwd())
    program_path = Path(tempfile.mkdtemp())
    module_path = program_path / "ephemeral_component.py"
    try:
        module_path.write_text(request["source"], encoding="utf-8")
        sys.argv = ["-m", "--component_module_path", str(module_path), *request["args"]]
        from kfp.dsl import executor_main

        executor_main.executor_main()
    finally:
        shutil.rmtree(program_path, ignore_errors=True)
    return 0


def _restore_blas_threads(environment: dict[str, str]) -> None:
    """Give OpenBLAS the threads a fresh process would start with (the zygote held it at one)."""
    wanted = environment.get("OPENBLAS_NUM_THREADS") or environment.get("OMP_NUM_THREADS")
    threads = int(wanted) if wanted and wanted.isdigit() else (os.cpu_count() or 1)
    if threads <= 1:
        return
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=threads, user_api="blas")


@dataclass
class ForkedZygote:
    """A zygote forked from the runner's process: what ForkServer needs of a `subprocess.Popen`."""

    pid: int
    returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(f"zygote {self.pid}", timeout or 0.0)
            time.sleep(0.01)
        assert self.returncode is not None
        return self.returncode

    def terminate(self) -> None:
        if self.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGTERM)


def ensure_single_threaded(what: str, instead: str) -> None:
    """Refuse to fork `what` from a process with threads (`instead`: what to do about it)."""
    threads = threading.active_count()
    if threads > 1:
        raise RunnerError(
            f"{what} can only be forked from a single-threaded process ({threads} threads here): {instead}"
        )


def fork_zygote(
    control: socket.socket, essential: list[str], *, close_in_child: socket.socket, warm_tracking_store: bool = True
) -> ForkedZygote:
    """Serve `control` from a fork of this process, which must be single-threaded: a thread's lock
    held at fork would stay held in the zygote and in every task forked from it."""
    ensure_single_threaded("a zygote", "start the fork server with zygote='spawn'")
    sys.stdout.flush()  # what is buffered now is this process's to write, not the zygote's too
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        try:
            close_in_child.close()
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            serve(control, essential, warm_tracking_store=warm_tracking_store)
            sys.stderr.flush()
        finally:
            os._exit(0)
    return ForkedZygote(pid)


def main(argv: list[str]) -> None:
    control = socket.socket(fileno=int(argv[0]))
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the runner's (and the tasks') to handle
    cold_store = argv[1:2] == [NO_TRACKING_STORE_FLAG]
    serve(control, argv[2:] if cold_store else argv[1:], warm_tracking_store=not cold_store)
    sys.stderr.flush()
    # No interpreter teardown: with MLflow, pandas and XGBoost loaded it takes seconds, and there
    # is nothing to save.
    os._exit(0)


if __name__ == "__main__":
    main(sys.argv[1:])
