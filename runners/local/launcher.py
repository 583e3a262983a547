"""How kfp.local launches a task: KFP's own subprocess, or a fork of the warm zygote (forkserver.py).

`task_handler(server, notes)` plugs the fork server into kfp.local for the duration of a run.
kfp.local's task dispatcher picks a task handler by runner type from a table it builds on every
call, naming `subprocess_task_handler.SubprocessTaskHandler` by module attribute; so the one patch is
that attribute, swapped for `KubesageTaskHandler` (a subclass) and restored on exit. Everything else (the IR,
executor input, placeholders, artifact layout, outputs, retries, caching) stays kfp.local's own.

A task is forked only when its command is exactly KFP's launch line for a lightweight Python
component without package installs; anything else (pip installs, a venv, container components)
goes to KFP's subprocess path unchanged, as does every task when fork is unavailable.
"""

from __future__ import annotations

import ast
import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from kubesage.errors import RunnerError
from kubesage.runners.local.forkserver import (
    NO_TRACKING_STORE_FLAG,
    TASK_RUNTIME_ENV,
    ZYGOTE_ENV,
    ForkedZygote,
    fork_zygote,
    send_request,
)
from kubesage.tracking.contract import ENV_STEP_RUN_ID_FILE

if TYPE_CHECKING:
    from kubesage.runners.local.cache import StepRunNotes

# What the fork server imports. ESSENTIAL, what every kubesage step needs, is imported before the
# first task starts (a SQLite store's SQLAlchemy stores too, forkserver._warm_tracking_store). Then
# what the run's components import (`preload_for`), a task arriving meanwhile starting at once. A
# module that fails to import is left to the task.
ESSENTIAL: tuple[str, ...] = (
    "kfp.dsl.executor_main",
    "kubesage.tracking",
    "mlflow.tracking",
)
# kubesage's own steps (kubesage.components), in the order the churn steps need them, including what
# they import inside functions (daal4py, matplotlib, MLflow's model flavours).
KUBESAGE_STEPS_PRELOAD: tuple[str, ...] = (
    "kubesage.components.steps",
    "kubesage.components.preprocess",  # pandas, scikit-learn
    "sklearn.model_selection",
    "kubesage.components.train",  # XGBoost
    "daal4py",
    "kubesage.components.evaluate",
    "sklearn.metrics",
    "matplotlib.figure",
    "matplotlib.backends.backend_agg",
    "kubesage.components.register",
    "mlflow.models",
    "mlflow.xgboost",
)
# Libraries that start no thread when imported in the zygote's environment (ZYGOTE_ENV holds
# OpenBLAS and pyarrow's allocator at one thread): a component importing one gets that module
# preloaded. Any other import stays the task's own, as in a fresh process: a library that starts a
# thread at import would make every later fork unsafe.
FORK_SAFE_LIBRARIES = frozenset(
    {"daal4py", "matplotlib", "mlflow", "numpy", "pandas", "pyarrow", "scipy", "sklearn", "xgboost"}
)


def preload_for(spec: dict[str, Any]) -> list[str]:
    """What the zygote should import for the tasks of the pipeline IR `spec`, in first-use order.

    A zygote preloading the churn steps' libraries for any pipeline spent 1.5 s of CPU beside a run
    of small tasks that used none of them; a pipeline that needs them gets them as before.
    """
    modules: list[str] = []
    for executor in spec.get("deploymentSpec", {}).get("executors", {}).values():
        call = kfp_python_call(executor.get("container", {}).get("command", []))
        for name in _imported_modules(call.source) if call else []:
            if name == "kubesage.components" or name.startswith("kubesage.components."):
                modules.extend(KUBESAGE_STEPS_PRELOAD)
            elif name.split(".", 1)[0] in FORK_SAFE_LIBRARIES:
                modules.append(name)
    return list(dict.fromkeys(modules))


def _imported_modules(source: str) -> list[str]:
    """The absolute modules a component's source imports, anywhere in it (KFP's components import
    inside the function)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def fork_available() -> bool:
    return hasattr(os, "fork") and hasattr(socket, "send_fds") and sys.platform != "win32"


@dataclass(frozen=True)
class PythonCall:
    """A lightweight component's launch, as KFP's `sh -ec` line would run it."""

    source: str
    args: list[str]


def kfp_python_call(full_command: Sequence[str]) -> PythonCall | None:
    """The call inside KFP's launch line, or None if `full_command` is anything else."""
    from kfp.dsl import component_factory

    if len(full_command) < 4 or list(full_command[:2]) != ["sh", "-ec"]:
        return None
    script = full_command[2]
    # Exactly KFP's template for `install_kfp_package=False` with no packages_to_install: nothing
    # to install, one executor_main call.
    expected = ("program_path=$(mktemp -d)", "ephemeral_component.py", component_factory.EXECUTOR_MODULE)
    if not all(part in script for part in expected) or "pip" in script or script.count("python3") != 1:
        return None
    return PythonCall(source=full_command[3], args=list(full_command[4:]))


class ForkServer:
    """The zygote process and the runner's end of its control socket (thread-safe).

    `zygote="spawn"` (the runner's) starts it as a new interpreter that imports what it needs, kfp as a
    KFP task does (TASK_RUNTIME_ENV).
    `zygote="fork"` forks it from this process, which then must be made to be forked: single-threaded,
    its imports done under ZYGOTE_ENV (the KFP stand-in's warm executor, tests/standins/kfp_execute.py).
    `warm_tracking_store=False`: the tasks are told their MLflow store otherwise than by this process's
    environment (a KFP run's tasks, by their IR), so the zygote does not open the store it names.
    """

    def __init__(
        self,
        essential: Sequence[str] = ESSENTIAL,
        *,
        zygote: Literal["spawn", "fork"] = "spawn",
        warm_tracking_store: bool = True,
    ) -> None:
        self._essential = list(essential)
        self._zygote = zygote
        self._warm_tracking_store = warm_tracking_store
        self._process: subprocess.Popen[bytes] | ForkedZygote | None = None
        self._control: socket.socket | None = None
        self._lock = threading.Lock()
        self._running = 0  # tasks sent whose exit status has not come back yet

    def start(self) -> None:
        ours, theirs = socket.socketpair()
        if self._zygote == "fork":
            self._process = fork_zygote(
                theirs, self._essential, close_in_child=ours, warm_tracking_store=self._warm_tracking_store
            )
            theirs.close()
            self._control = ours
            return
        env = {**os.environ, **ZYGOTE_ENV, **TASK_RUNTIME_ENV}
        self._process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "kubesage.runners.local.forkserver",
                str(theirs.fileno()),
                *([] if self._warm_tracking_store else [NO_TRACKING_STORE_FLAG]),
                *self._essential,
            ],
            pass_fds=[theirs.fileno()],
            env=env,
            stdin=subprocess.DEVNULL,
        )
        theirs.close()
        self._control = ours

    def preload(self, modules: Sequence[str]) -> None:
        """Have the zygote import `modules` between tasks (those it has are skipped)."""
        if self._control is None or not modules:
            return
        try:
            with self._lock:
                send_request(self._control, {"preload": list(modules)}, [])
        except OSError:
            pass  # a zygote that stopped fails the next task with the reason; preloading is an optimisation

    def tasks_running(self) -> int:
        with self._lock:
            return self._running

    def alive(self) -> bool:
        return self._control is not None and self._process is not None and self._process.poll() is None

    def stop(self) -> None:
        """Close the zygote. The run has ended, so no task of it is running; a zygote still
        preloading is stopped rather than waited for."""
        if self._control is not None:
            self._control.close()
            self._control = None
        if self._process is not None:
            try:
                self._process.wait(timeout=0.5)
            except subprocess.TimeoutExpired:
                self._process.terminate()
                self._process.wait()
            self._process = None

    def __enter__(self) -> ForkServer:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def run(self, call: PythonCall, env: dict[str, str], cwd: str, emit: Callable[[str], None]) -> int:
        """Run `call` in a fresh fork; each output line goes to `emit`; the exit code (-N: signal N)."""
        if self._control is None:
            raise RunnerError("the fork server is not running")
        with self._lock:
            self._running += 1
        try:
            return self._run(call, env, cwd, emit)
        finally:
            with self._lock:
                self._running -= 1

    def _run(self, call: PythonCall, env: dict[str, str], cwd: str, emit: Callable[[str], None]) -> int:
        assert self._control is not None
        out_read, out_write = os.pipe()
        status_ours, status_theirs = socket.socketpair()
        try:
            with self._lock:
                send_request(
                    self._control,
                    {"source": call.source, "args": call.args, "env": env, "cwd": cwd},
                    [out_write, status_theirs.fileno()],
                )
        except OSError as exc:
            raise RunnerError(f"the fork server stopped ({exc}); run with --option launcher=subprocess") from exc
        finally:
            os.close(out_write)
            status_theirs.close()
        with os.fdopen(out_read, "r", encoding="utf-8", errors="replace") as output:
            for line in output:
                emit(line)
        with status_ours:
            status = b""
            while chunk := status_ours.recv(64):
                status += chunk
        return _exit_code(status.decode("ascii"))


def _exit_code(status: str) -> int:
    kind, _, number = status.partition(" ")
    if kind == "exit":
        return int(number)
    if kind == "signal":
        return -int(number)
    raise RunnerError("the fork server ended before the task did; run with --option launcher=subprocess")


@contextlib.contextmanager
def task_handler(server: ForkServer | None, notes: StepRunNotes) -> Iterator[None]:
    """While inside, kfp.local launches tasks through `server` (None: KFP's subprocess) and each
    task's MLflow step run id goes to `notes` (so a cache entry can name the run it came from)."""
    from kfp.local import subprocess_task_handler

    original = subprocess_task_handler.SubprocessTaskHandler
    handler = _handler_class(original, server, notes)
    subprocess_task_handler.SubprocessTaskHandler = handler
    try:
        yield
    finally:
        subprocess_task_handler.SubprocessTaskHandler = original


def _handler_class(base: type[Any], server: ForkServer | None, notes: StepRunNotes) -> type[Any]:
    class KubesageTaskHandler(base):
        """KFP's SubprocessTaskHandler, launching through the fork server when there is one."""

        env_vars: dict[str, str]

        def run(self) -> Any:
            with tempfile.TemporaryDirectory(prefix="kubesage-task-", ignore_cleanup_errors=True) as scratch:
                run_id_file = Path(scratch) / "step_run_id"
                # The task's temporary files last as long as the task, as in a KFP pod's own /tmp:
                # KFP's launch line (`mktemp -d` for the component's source) and components
                # (tempfile.mkdtemp) leave theirs behind. A TMPDIR the task itself sets wins.
                task_tmp = Path(scratch) / "tmp"
                task_tmp.mkdir()
                self.env_vars = {"TMPDIR": str(task_tmp), **self.env_vars, ENV_STEP_RUN_ID_FILE: str(run_id_file)}
                result = self._launch()
                notes.note(run_id_file.read_text().strip() if run_id_file.exists() else None)
            return result

        def _launch(self) -> Any:
            from kfp.local import status

            call = kfp_python_call(self.full_command)
            if server is None or call is None or self.runner.use_venv:
                return super().run()
            # What KFP's subprocess gets: this process's environment plus the container's env.
            env = {**os.environ, **self.env_vars}
            code = server.run(call, env, str(Path.cwd()), _print_line)
            if code < 0:
                _print_line(f"task process ended by signal {-code}\n")
            _print_line("\n")  # as KFP's handler ends a task's output
            return status.Status.SUCCESS if code == 0 else status.Status.FAILURE

    return KubesageTaskHandler


def _print_line(line: str) -> None:
    # `print`, not sys.stdout: KFP indents a task's output by swapping builtins.print, and the run's
    # task log reads sys.stdout.
    print(line, end="")
