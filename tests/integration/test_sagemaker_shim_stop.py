"""A SageMaker stop reaches the step, and the step's MLflow run ends KILLED (issue 10, items 13, 17).

Real parts: the shim runs as its own process, a real SIGTERM is sent to it (what SageMaker sends to
PID 1 on StopPipelineExecution or MaxRuntimeInSeconds), the component is a real child process that
opens its step run through `kubesage.tracking.step_run` in a real MLflow store (the embedded SQLite
store, shared by the test, the shim and the component: a server would add nothing the shim uses
but a start-up that a busy CI machine may not give in time).
Stand-in: the test process plays SageMaker's agent; in a job the shim is PID 1, which only matters
for the kernel (no default action for PID 1), not for the handler tested here.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from mlflow import MlflowClient

from kubesage.runners.sagemaker.integrity import spec_bytes, spec_digest
from kubesage.tracking import TAG_FAILURE, TAG_STEP, start_pipeline_run
from tests.servers import fresh_sqlite_store

pytestmark = pytest.mark.integration

# The component: opens its step run, says where it is, then works for longer than the test waits.
COMPONENT = """
import os, pathlib, time
from kubesage.tracking import step_run
with step_run("long-step"):
    pathlib.Path(os.environ["TEST_PID_FILE"]).write_text(str(os.getpid()))
    time.sleep(300)
"""


def _spec(
    tmp_path: Path,
    command: list[str],
    outputs: dict[str, Any] | None = None,
    inputs: dict[str, Any] | None = None,
) -> tuple[Path, str]:
    spec = {
        "pipeline": "stop-test",
        "task": "long-step",
        "display_name": "long step",
        "component": {},
        "command": command,
        "args": [],
        "constants": {},
        "input_artifacts": inputs or {},
        "output_artifacts": outputs or {},
        "outputs_file": str(tmp_path / "out" / "kubesage-outputs" / "outputs.json"),
    }
    spec_dir = tmp_path / "spec"
    spec_dir.mkdir()
    body = spec_bytes(spec)
    (spec_dir / "long-step.json").write_bytes(body)
    return spec_dir, spec_digest(body)


def _wait_for(path: Path, process: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not path.is_file() or not path.read_text():
        if process.poll() is not None:
            raise AssertionError(
                f"shim exited early with {process.returncode}: {process.stderr and process.stderr.read()!r}"
            )
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} not written within {timeout}s")
        time.sleep(0.2)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_sigterm_is_forwarded_and_the_step_run_ends_killed(tmp_path: Path, mlflow_sqlite_template: Path) -> None:
    uri = fresh_sqlite_store(mlflow_sqlite_template, tmp_path / "mlflow.db")
    parent = start_pipeline_run("stop-test", "sagemaker", {}, uri=uri)
    spec_dir, digest = _spec(tmp_path, [sys.executable, "-c", COMPONENT])
    pid_file = tmp_path / "component.pid"
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": uri,
        "KUBESAGE_MLFLOW_PARENT_RUN_ID": parent.run_id,
        "KUBESAGE_MLFLOW_EXPERIMENT_ID": parent.experiment_id,
        "KUBESAGE_STEP_USER": "root",
        "TEST_PID_FILE": str(pid_file),
    }
    argv = ["--task", "long-step", "--spec-dir", str(spec_dir), "--spec-sha256", digest]
    shim = subprocess.Popen(
        [sys.executable, "-m", "kubesage.runners.sagemaker.shim", *argv, "--workdir", str(tmp_path / "w")],
        env=env,
        stderr=subprocess.PIPE,
    )
    component_pid = 0
    try:
        _wait_for(pid_file, shim, timeout=300)  # mlflow import + a run, on a busy machine
        component_pid = int(pid_file.read_text())
        shim.send_signal(signal.SIGTERM)
        # The shim then imports mlflow to close the run: seconds, or a minute on a busy machine.
        _, stderr = shim.communicate(timeout=240)
    finally:
        if shim.poll() is None:
            shim.kill()
        if component_pid and _alive(component_pid):
            os.kill(component_pid, signal.SIGKILL)
            pytest.fail("the component outlived the shim: SIGTERM was not forwarded")

    assert shim.returncode == 128 + signal.SIGTERM
    assert not _alive(component_pid)
    client = MlflowClient(tracking_uri=uri)
    (run,) = client.search_runs(
        [parent.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{parent.run_id}' and tags.`{TAG_STEP}` = 'long-step'",
    )
    assert run.info.status == "KILLED"
    assert "SIGTERM" in run.data.tags[TAG_FAILURE]
    assert f"MLflow run {run.info.run_id} marked KILLED" in stderr.decode()
    # Nothing was delivered downstream for a stopped step.
    assert not (tmp_path / "out" / "kubesage-outputs" / "outputs.json").exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="dropping root needs root")
def test_the_component_runs_as_the_unprivileged_user(tmp_path_factory: pytest.TempPathFactory) -> None:
    # pytest's tmp root is 0700; the unprivileged user needs to reach its folders, as in /opt/ml.
    root = Path(os.environ.get("TMPDIR", "/tmp")) / f"kubesage-drop-{os.getpid()}"
    root.mkdir(mode=0o755)
    try:
        out = root / "out" / "whoami" / "whoami"
        # An input as SageMaker's local mode leaves it: a root-only folder holding a root-only file.
        data_dir = root / "in" / "data"
        data_dir.mkdir(parents=True)
        (data_dir / "data").write_text("rows\n")
        (data_dir / "data").chmod(0o600)
        data_dir.chmod(0o700)
        data_dir.parent.chmod(0o700)  # local mode mounts /opt/ml/input itself root-only
        spec_dir, digest = _spec(
            root,
            ["sh", "-c", f"id -u > {out} && cat {data_dir / 'data'} >> {out}"],
            outputs={"whoami": {"path": str(out), "type": "system.Artifact"}},
            inputs={"data": {"dir": str(data_dir), "file": "data", "packed": False, "type": "system.Dataset"}},
        )
        env = {**os.environ, "KUBESAGE_STEP_USER": "nobody"}
        argv = ["--task", "long-step", "--spec-dir", str(spec_dir), "--spec-sha256", digest]
        done = subprocess.run(
            [sys.executable, "-m", "kubesage.runners.sagemaker.shim", *argv, "--workdir", str(root / "w")],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        uid, data = out.read_text().splitlines()
        assert int(uid) == 65534  # nobody
        assert data == "rows"  # the root-only input was made readable
        assert "as user 'nobody'" in done.stdout
        # The shim itself (root) still delivers the outputs file.
        assert (root / "out" / "kubesage-outputs" / "outputs.json").stat().st_uid == 0
    finally:
        subprocess.run(["rm", "-rf", str(root)], check=False)
