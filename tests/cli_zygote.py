"""`kubesage` commands forked from an interpreter that has already imported their libraries.

A `kubesage` process started from scratch spends ~2 s of CPU importing MLflow, KFP, pandas and
SQLAlchemy before it does anything, and the suite runs ~30 such commands. Here each command is still
a new process with the test's arguments, environment, working directory and output files, running
the console script's `main` (kubesage's code is imported in the child, under the command's
environment), but it is forked from a zygote, one per test process, that imported those libraries
once (`LIBRARIES`: none of kubesage, so nothing of kubesage is read from the zygote's environment).

What differs from exec, and so is left to the tests that start the real console script
(`run_cli(..., fresh_process=True)`: the demo's line budget counts every line a newcomer sees): the
libraries' import-time warnings (printed once by the zygote, not by each command) and anything a
library reads from the environment when it is imported (the commands' environments change no such
variable). What a command prints as it runs is its own either way.

Run as a script, this file is the zygote: `python tests/cli_zygote.py FD`.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import importlib
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# What `kubesage run`, `runs`, `drift` and `compile` import, third-party only, none starting a thread
# under the zygote's environment (OpenBLAS and pyarrow's allocator held at one thread, as the local
# runner's zygote holds them: runners/local/forkserver.py ZYGOTE_ENV).
LIBRARIES = (
    "click",
    "rich.console",
    "pydantic",
    "yaml",
    "httpx",
    "pandas",
    "sqlalchemy",
    "alembic",
    "mlflow",
    "mlflow.tracking",
    "mlflow.store.tracking.sqlalchemy_store",
    "mlflow.store.model_registry.sqlalchemy_store",
    "kfp",
    "kfp.dsl",
    "kfp.compiler",
    "kfp.local",
    "celpy",
)
_HEADER = struct.Struct("!I")


@dataclass
class CliResult:
    """A command's exit status and output (forked here or started from scratch, tests/integration/cli_helpers.py)."""

    code: int
    stdout: str
    stderr: str

    @property
    def json(self) -> Any:
        return json.loads(self.stdout)


# --- the test process's side ----------------------------------------------------------------------
class CliZygote:
    """The zygote process and this process's end of its socket; one command at a time."""

    def __init__(self) -> None:
        from kubesage.runners.local.forkserver import ZYGOTE_ENV

        ours, theirs = socket.socketpair()
        self._process = subprocess.Popen(
            [sys.executable, __file__, str(theirs.fileno())],
            pass_fds=[theirs.fileno()],
            env={**os.environ, **ZYGOTE_ENV},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        theirs.close()
        self._socket = ours
        self._lock = threading.Lock()

    def run(self, argv0: str, args: list[str], cwd: Path, env: dict[str, str], timeout: float) -> CliResult:
        request = {"argv0": argv0, "args": args, "cwd": str(cwd), "env": env}
        with self._lock, tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            payload = json.dumps(request).encode("utf-8")
            socket.send_fds(self._socket, [_HEADER.pack(len(payload))], [out.fileno(), err.fileno()])
            self._socket.sendall(payload)
            pid = int(_read_line(self._socket, None))
            try:
                code = int(_read_line(self._socket, timeout))
            except TimeoutError:
                self._kill(pid)
                raise subprocess.TimeoutExpired([argv0, *args], timeout) from None
            except BaseException:  # Ctrl-C of the test run: the command goes too, as with subprocess.run
                self._kill(pid)
                raise
            out.seek(0)
            err.seek(0)
            return CliResult(code, out.read().decode(), err.read().decode())

    def _kill(self, pid: int) -> None:
        """Kill the command and read its exit status, which the zygote sends once it has reaped it."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        _read_line(self._socket, None)

    def stop(self) -> None:
        self._socket.close()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()


def _read_line(sock: socket.socket, timeout: float | None) -> str:
    sock.settimeout(timeout)
    line = b""
    while not line.endswith(b"\n"):
        chunk = sock.recv(1)
        if not chunk:
            raise RuntimeError("the kubesage zygote ended; run the command with fresh_process=True to see why")
        line += chunk
    return line.decode()


_zygote: CliZygote | None = None


def shared_zygote() -> CliZygote:
    """This process's zygote, started on first use and stopped at exit."""
    global _zygote
    if _zygote is None:
        _zygote = CliZygote()
        atexit.register(_zygote.stop)
    return _zygote


# --- the zygote's side -----------------------------------------------------------------------------
def _serve(sock: socket.socket) -> None:
    while True:
        header, fds, _, _ = socket.recv_fds(sock, _HEADER.size, 2)
        if not header:
            return
        (size,) = _HEADER.unpack(header + _receive(sock, _HEADER.size - len(header)))
        request = json.loads(_receive(sock, size))
        sys.stdout.flush()
        sys.stderr.flush()
        gc.freeze()  # as the local runner's zygote does (runners/local/forkserver.py)
        pid = os.fork()
        if pid == 0:
            sock.close()
            _command(request, fds[0], fds[1])  # never returns
        for fd in fds:
            os.close(fd)
        sock.sendall(f"{pid}\n".encode())
        _, status = os.waitpid(pid, 0)
        sock.sendall(f"{os.waitstatus_to_exitcode(status)}\n".encode())


def _receive(sock: socket.socket, size: int) -> bytes:
    received = b""
    while len(received) < size:
        chunk = sock.recv(size - len(received))
        if not chunk:
            raise SystemExit("the test process closed the socket mid-request")
        received += chunk
    return received


def _command(request: dict[str, Any], out_fd: int, err_fd: int) -> None:
    """Become the command, as the `kubesage` console script starts it. Ends the process."""
    code = 1
    try:
        gc.enable()
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        stdin = os.open(os.devnull, os.O_RDONLY)
        os.dup2(stdin, 0)
        os.close(stdin)
        os.dup2(out_fd, 1)
        os.dup2(err_fd, 2)
        os.close(out_fd)
        os.close(err_fd)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        sys.argv = [request["argv0"], *request["args"]]
        sys.path[0] = str(Path(request["argv0"]).parent)  # where a console script's directory goes
        from kubesage.cli import main

        main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if isinstance(exc.code, str):
            print(exc.code, file=sys.stderr)
    except BaseException:
        traceback.print_exc()
    finally:
        with contextlib.suppress(BaseException):
            threading._shutdown()  # type: ignore[attr-defined]  # as the interpreter's exit: threads, then atexit
        with contextlib.suppress(BaseException):
            atexit._run_exitfuncs()
        with contextlib.suppress(BaseException):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def main(argv: list[str]) -> None:
    sys.path[0] = str(Path(sys.executable).parent)  # not tests/, this file's folder: as a console script
    sock = socket.socket(fileno=int(argv[0]))
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the test process's to handle
    gc.disable()  # it only imports and forks, as the local runner's zygote (runners/local/forkserver.py)
    for name in LIBRARIES:
        importlib.import_module(name)
    if threading.active_count() > 1:
        raise SystemExit(f"an import started a thread ({threading.enumerate()}): the zygote cannot fork safely")
    _serve(sock)
    os._exit(0)


if __name__ == "__main__":
    main(sys.argv[1:])
