"""The component process under the shim: signals forwarded, root dropped, a stopped step's run closed.

In a SageMaker job the shim is PID 1. The kernel delivers no signal to PID 1 for which it has no
handler, so without one a StopPipelineExecution or MaxRuntimeInSeconds (SIGTERM, then SIGKILL after
the grace period) would never reach the component: it is killed mid-write and its MLflow run stays
RUNNING. The shim forwards SIGTERM/SIGINT to the child and, when the child dies from it, closes the
step's run (whose id the child wrote to $KUBESAGE_STEP_RUN_ID_FILE, see `kubesage.tracking.step_run`)
as KILLED.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from kubesage.util.privileges import Account

FORWARDED = (signal.SIGTERM, signal.SIGINT)


@dataclass(frozen=True)
class ChildResult:
    """How the component process ended; `stop_signal` is set when the job was told to stop."""

    returncode: int
    stop_signal: int | None

    @property
    def exit_code(self) -> int:
        """The shim's own exit code: a stop ends as 128 + signal, as a shell reports it."""
        if self.stop_signal is not None:
            return 128 + self.stop_signal
        return self.returncode if self.returncode >= 0 else 128 - self.returncode


def run_child(command: Sequence[str], env: Mapping[str, str], account: Account | None = None) -> ChildResult:
    """Run `command` (as `account` if given), forwarding stop signals to it until it exits."""
    received: list[int] = []
    child: subprocess.Popen[bytes] | None = None

    def forward(signum: int, _frame: FrameType | None) -> None:
        received.append(signum)
        if child is not None and child.poll() is None:
            child.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in FORWARDED}
    try:
        if received:  # stopped before the component started: do not start it
            return ChildResult(returncode=-received[0], stop_signal=received[0])
        user = {"user": account.uid, "group": account.gid, "extra_groups": []} if account else {}
        child = subprocess.Popen(list(command), env=dict(env), **user)  # type: ignore[call-overload]
        if received and child.poll() is None:  # a signal between the check above and Popen
            child.send_signal(received[0])
        returncode = child.wait()  # PEP 475: wait() resumes after the handler runs
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return ChildResult(returncode=returncode, stop_signal=received[0] if received else None)


def close_stopped_run(run_id_file: Path, tracking_uri: str, signum: int) -> str | None:
    """Mark the step's MLflow run KILLED if it is still RUNNING; the run id, or None if there was none.

    Tracking trouble is reported, never raised: the job is being stopped either way.
    """
    if not run_id_file.is_file():
        return None
    run_id = run_id_file.read_text().strip()
    if not run_id:
        return None
    try:
        from kubesage.tracking import TAG_FAILURE, mlflow_client

        client = mlflow_client(tracking_uri)
        if client.get_run(run_id).info.status == "RUNNING":
            reason = (
                f"stopped by {signal.Signals(signum).name} (SageMaker StopPipelineExecution or "
                "MaxRuntimeInSeconds); the step did not finish"
            )
            client.set_tag(run_id, TAG_FAILURE, reason)
            client.set_terminated(run_id, status="KILLED")
    except Exception as exc:  # MLflow raises many types for an unreachable server
        print(f"kubesage shim: could not mark MLflow run {run_id} KILLED: {exc}", file=sys.stderr)
    return run_id


def child_environment(
    base: Mapping[str, str], run_id_file: Path, home: Path | None, drop_if_empty: Sequence[str]
) -> dict[str, str]:
    """The component's environment: empty tracking values dropped, the run-id file named, HOME set."""
    from kubesage.tracking import ENV_STEP_RUN_ID_FILE

    env = {k: v for k, v in base.items() if not (k in drop_if_empty and not v)}
    env[ENV_STEP_RUN_ID_FILE] = str(run_id_file)
    if home is not None:
        env["HOME"] = str(home)
    return env
