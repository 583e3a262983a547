"""`kubesage run --runner kfp` against the KFP v2beta1 API stand-in, tracked in a real MLflow server.

What this proves: kfp.Client's protocol as the runner drives it (healthz, experiments, pipeline
upload and versions, runs, terminate), the parameters it submits, the MLflow hand-off carried in the
IR to tasks that inherit nothing of this process, and how every failure a cluster can hand back ends.
What it does not: Argo, KFP's driver/launcher, scheduling, MLMD, caching, or real pods and images;
the stand-in executes each run with kfp.local in a clean process instead (tests/standins/kfp_api.py);
tests/container/test_kfp_docker.py runs every task in the kubesage image through the same runner.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient

from tests.integration.cli_helpers import KUBESAGE, CliResult, run_cli
from tests.mlflow_server import MlflowServer
from tests.sdk_runs import run_in_workdir
from tests.standins.kfp_api import Faults, KfpStandin

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.usefixtures("kfp_faults_reset")]

STEPS = {"preprocess", "train", "evaluate", "register"}
HANDOFF = {"MLFLOW_TRACKING_URI", "KUBESAGE_MLFLOW_PARENT_RUN_ID", "KUBESAGE_MLFLOW_EXPERIMENT_ID", "KUBESAGE_RUNNER"}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("kfp-run")


def kfp_run(
    standin: KfpStandin, workdir: Path, uri: str, data: Path | str, *extra: str, faults: Faults | None = None
) -> CliResult:
    standin.faults = faults or Faults()
    args = ["run", "customer_churn", "--runner", "kfp", "--option", f"host={standin.url}"]
    # A retried API call waits 0.1 s, then 0.2 s... (1 s, then 2 s... by default): the retries are what is tested.
    args += ["--option", "poll_seconds=0.5", "--option", "retry_backoff_seconds=0.1"]
    args += ["--param", f"input_data={data}", *extra, "--output", "json"]
    return run_cli(args, workdir, uri)


def versions(uri: str) -> int:
    return len(MlflowClient(tracking_uri=uri).search_model_versions("name = 'customer-churn'"))


@pytest.fixture(scope="module")
def runs(
    kfp_standin: KfpStandin,
    mlflow_server: MlflowServer,
    workdir: Path,
    churn_csv: Path,
) -> dict[str, Any]:
    """The same data and seed through the local runner, then through the kfp runner.

    The kfp run is preceded by a 401 (refused by the preflight, recording nothing, and the server stays
    usable) and meets two 503s on its way (retried with backoff); it runs as a version of a named pipeline.
    """
    uri = mlflow_server.url
    # The session's server holds other suites' versions too: what each run registered is counted from here.
    versions_before = versions(uri)
    # The reference run through the Python API (tests/sdk_runs.py): what is compared is the runner's result.
    local = run_in_workdir("customer_churn", workdir, uri, {"input_data": str(churn_csv)})
    runs_before_401 = _parent_runs(uri)
    unauthorized = kfp_run(kfp_standin, workdir, uri, churn_csv, faults=Faults(unauthorized=1))
    versions_after_401 = versions(uri)
    runs_after_401 = _parent_runs(uri)
    relative = os.path.relpath(churn_csv, workdir)  # as a user types it: ../shared/data/churn.txt
    kfp = kfp_run(
        kfp_standin,
        workdir,
        uri,
        relative,
        "--option",
        "pipeline_name=customer-churn-kfp",
        faults=Faults(server_errors=2),
    )
    assert kfp.code == 0, kfp.stderr[-3000:]
    return {
        "local": local,
        "kfp": kfp.json,
        "kfp_stderr": kfp.stderr,
        "unauthorized": unauthorized,
        "versions_before": versions_before,
        "versions_after_401": versions_after_401,
        "runs_before_401": runs_before_401,
        "runs_after_401": runs_after_401,
    }


def _parent_runs(uri: str) -> int:
    client = MlflowClient(tracking_uri=uri)
    experiments = [e.experiment_id for e in client.search_experiments()]
    return len(client.search_runs(experiments, "tags.`kubesage.kind` = 'pipeline'", max_results=1000))


def test_kfp_run_matches_the_local_run(runs: dict[str, Any]) -> None:
    local, kfp = runs["local"], runs["kfp"]
    assert kfp["status"] == "succeeded" and kfp["runner"] == "kfp"
    assert kfp["metrics"].keys() == local["metrics"].keys() and {"accuracy", "roc_auc"} <= kfp["metrics"].keys()
    for name, value in local["metrics"].items():
        assert kfp["metrics"][name] == pytest.approx(value, rel=1e-9), name
    assert kfp["metrics"]["roc_auc"] >= 0.95
    first = runs["versions_before"] + 1  # the local run's version, then the kfp run's
    assert (local["registered_model_version"], kfp["registered_model_version"]) == (str(first), str(first + 1))
    assert kfp["registered_model_name"] == "customer-churn" and kfp["not_registered_reason"] is None
    assert [s["name"] for s in kfp["steps"]] == [s["name"] for s in local["steps"]]
    assert all(s["status"] == "succeeded" for s in kfp["steps"])


def test_progress_lines_follow_each_task(runs: dict[str, Any]) -> None:
    err = runs["kfp_stderr"]
    for step in STEPS:  # the CLI's step lines: "  .. preprocess  started", "  ok preprocess  succeeded  1.2 s"
        assert re.search(rf"{step}\s+started", err) and re.search(rf"{step}\s+succeeded", err), err
    assert "retrying in" in err and "503" in err  # the two injected 5xx were retried, not fatal
    assert f"following KFP run {runs['kfp']['backend_id']}" in err


def test_same_mlflow_run_tree(runs: dict[str, Any], mlflow_server: MlflowServer) -> None:
    client = MlflowClient(tracking_uri=mlflow_server.url)
    trees = {}
    for name in ("local", "kfp"):
        parent = client.get_run(runs[name]["mlflow_run_id"])
        children = client.search_runs(
            [parent.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
        )
        trees[name] = (parent, {c.data.tags["kubesage.step"]: c for c in children})
    (local_parent, local_steps), (kfp_parent, kfp_steps) = trees["local"], trees["kfp"]
    assert kfp_parent.info.experiment_id == local_parent.info.experiment_id
    assert kfp_parent.info.status == "FINISHED" and kfp_parent.data.tags["kubesage.runner"] == "kfp"
    assert kfp_parent.data.tags["kubesage.backend_run_id"] == runs["kfp"]["backend_id"]
    assert kfp_parent.data.params == local_parent.data.params | {"input_data": kfp_parent.data.params["input_data"]}
    assert kfp_parent.data.tags["kubesage.data_sha256"] == local_parent.data.tags["kubesage.data_sha256"]
    assert set(kfp_steps) == set(local_steps) == STEPS
    for step in STEPS:
        assert kfp_steps[step].info.status == "FINISHED"
        assert kfp_steps[step].data.tags["kubesage.runner"] == "kfp"  # from the IR's env, not inherited
        assert kfp_steps[step].data.params.keys() == local_steps[step].data.params.keys()
        assert _results(kfp_steps[step].data.metrics) == pytest.approx(
            _results(local_steps[step].data.metrics), rel=1e-9
        )


def _results(metrics: dict[str, float]) -> dict[str, float]:
    """A step's metrics less its timings (wall time differs from run to run; results must not)."""
    return {k: v for k, v in metrics.items() if not k.endswith("_seconds")}


def test_the_submitted_ir_carries_the_handoff_and_nothing_else(
    runs: dict[str, Any],
    kfp_standin: KfpStandin,
    mlflow_server: MlflowServer,
    churn_csv: Path,
) -> None:
    stored = kfp_standin.runs[runs["kfp"]["backend_id"]]
    assert stored.model.pipeline_version_reference is not None  # ran as a version of the named pipeline
    pipeline = kfp_standin.pipelines[stored.model.pipeline_version_reference.pipeline_id]
    assert pipeline.display_name == "customer-churn-kfp"
    executors = stored.spec["deploymentSpec"]["executors"]
    for executor in executors.values():
        env = {e["name"]: e["value"] for e in executor["container"]["env"]}
        assert set(env) == HANDOFF
        assert env["MLFLOW_TRACKING_URI"] == mlflow_server.url
        assert env["KUBESAGE_MLFLOW_PARENT_RUN_ID"] == runs["kfp"]["mlflow_run_id"]
    # The relative data path was submitted as the absolute path the tasks (not this cwd) can open.
    assert stored.model.runtime_config.parameters["input_data"] == str(churn_csv.resolve())
    # Caching off on every task (protojson leaves out a false flag; the compiled IR had it true).
    assert all(not t.get("cachingOptions", {}).get("enableCache") for t in stored.spec["root"]["dag"]["tasks"].values())


def test_401_is_refused_before_anything_is_recorded_then_the_next_run_succeeds(runs: dict[str, Any]) -> None:
    """Issue 28: the preflight asks the API with the run's credentials before the MLflow run opens."""
    result: CliResult = runs["unauthorized"]
    assert result.code == 3  # AccessDeniedError
    data = result.json
    assert data["status"] == "error" and data["kind"] == "AccessDeniedError"
    assert "401" in data["error"] and "token_file" in data["error"]
    assert result.stderr.strip().splitlines() == [f"error: {data['error']}"]  # one line, no run header
    assert runs["versions_after_401"] == runs["versions_before"] + 1  # only the local run's version
    assert runs["runs_after_401"] == runs["runs_before_401"]  # no MLflow run was opened
    assert runs["kfp"]["status"] == "succeeded"  # the same stand-in served the next run


@pytest.mark.parametrize(
    ("faults", "extra", "code", "message"),
    [
        (Faults(fail_task={"train": "OOMKilled: the pod exceeded its memory limit"}), [], 1, "OOMKilled"),
        (Faults(cancel_after_task="evaluate"), [], 130, "was canceled on the cluster"),
        (Faults(never_finish=True), ["--option", "timeout_seconds=1"], 1, "did not finish within 1 s"),
    ],
    ids=["failed-task", "canceled", "timeout"],
)
def test_faults_end_clearly_and_register_nothing(
    faults: Faults,
    extra: list[str],
    code: int,
    message: str,
    runs: dict[str, Any],
    kfp_standin: KfpStandin,
    mlflow_server: MlflowServer,
    workdir: Path,
    churn_csv: Path,
) -> None:
    before = versions(mlflow_server.url)
    result = kfp_run(kfp_standin, workdir, mlflow_server.url, churn_csv, *extra, faults=faults)
    kfp_standin.wait_idle()
    assert result.code == code, result.stderr[-2000:]
    data = result.json
    assert message in data["failure"] and "Traceback" not in result.stderr
    assert data["status"] == ("interrupted" if code == 130 else "failed")
    assert data["registered_model_version"] is None
    assert versions(mlflow_server.url) == before
    parent = MlflowClient(tracking_uri=mlflow_server.url).get_run(data["mlflow_run_id"])
    assert parent.info.status == ("KILLED" if code == 130 else "FAILED")
    assert parent.data.tags["kubesage.failure"] == data["failure"]
    if faults.never_finish:  # the timed-out run was terminated on the "cluster", not left running
        assert "terminated" in data["failure"]
        assert kfp_standin.runs[data["backend_id"]].model.state == "CANCELED"
    if faults.fail_task:
        assert "step train" in data["failure"] or "task train" in data["failure"]


def test_a_step_failure_reports_the_steps_own_reason(
    runs: dict[str, Any],
    kfp_standin: KfpStandin,
    mlflow_server: MlflowServer,
    workdir: Path,
    churn_csv: Path,
) -> None:
    # A file that exists (a missing one is refused before submitting) but lacks a column the step needs.
    bad = workdir / "churn-no-day-mins.csv"
    pd.read_csv(churn_csv).drop(columns=["Day Mins"]).to_csv(bad, index=False)
    before = versions(mlflow_server.url)
    result = kfp_run(kfp_standin, workdir, mlflow_server.url, bad)
    assert result.code == 1
    failure = result.json["failure"]
    assert "step preprocess" in failure and "Day Mins" in failure
    assert versions(mlflow_server.url) == before


def test_sqlite_tracking_is_refused_before_anything_runs(
    kfp_standin: KfpStandin,
    workdir: Path,
    churn_csv: Path,
) -> None:
    seen = len(kfp_standin.requests)
    result = kfp_run(kfp_standin, workdir, f"sqlite:///{workdir / 'laptop.db'}", churn_csv)
    assert result.code == 1
    error = result.json["error"]
    assert "KFP pods cannot reach a file on this machine" in error and "mlflow server --backend-store-uri" in error
    assert len(kfp_standin.requests) == seen  # nothing was submitted
    assert not (workdir / "laptop.db").exists()  # nor recorded


def test_an_api_that_keeps_failing_is_refused_before_anything_is_recorded(
    kfp_standin: KfpStandin,
    mlflow_server: MlflowServer,
    workdir: Path,
    churn_csv: Path,
) -> None:
    before = _parent_runs(mlflow_server.url)
    faults = Faults(server_errors=100)
    result = kfp_run(kfp_standin, workdir, mlflow_server.url, churn_csv, "--option", "api_retries=1", faults=faults)
    assert result.code == 1
    assert "kept failing (HTTP 503" in result.json["error"] and "ml-pipeline logs" in result.json["error"]
    assert _parent_runs(mlflow_server.url) == before


def _ctrl_c_as_on_a_terminal() -> None:
    """SIGINT as a shell leaves it: an ignored SIGINT is inherited through exec, and a process that
    starts with it ignored never sees Ctrl-C. In the full suite something before these tests leaves
    the test process ignoring it (seen on a clean clone: both tests waited out pytest's timeout)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture
def ctrl_c_raises() -> Iterator[None]:
    """Ctrl-C raises KeyboardInterrupt in this process for the test's duration (see above)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def test_ctrl_c_without_a_terminal_leaves_the_run_and_says_how_to_stop_it(
    kfp_standin: KfpStandin,
    mlflow_server: MlflowServer,
    workdir: Path,
    churn_csv: Path,
) -> None:
    kfp_standin.faults = Faults(never_finish=True)
    runs_before = set(kfp_standin.runs)
    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_server.url}
    args = [KUBESAGE, "run", "customer_churn", "--runner", "kfp", "--option", f"host={kfp_standin.url}"]
    process = subprocess.Popen(
        [*args, "--param", f"input_data={churn_csv}", "--output", "json"],
        cwd=workdir, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=_ctrl_c_as_on_a_terminal,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while set(kfp_standin.runs) == runs_before and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(1.0)  # the runner is now following the run
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    (run_id,) = set(kfp_standin.runs) - runs_before
    assert process.returncode == 130, err[-2000:]
    failure = json.loads(out)["failure"]
    assert f"{run_id}:terminate" in failure and "keeps running" in failure
    assert "Traceback" not in err
    assert kfp_standin.runs[run_id].model.state == "RUNNING"  # not terminated without asking
    kfp_standin.terminate_run(run_id)


def test_compile_target_kfp_writes_valid_ir_with_the_image(workdir: Path) -> None:
    from google.protobuf import json_format
    from kfp.pipeline_spec import pipeline_spec_pb2

    target = workdir / "churn-kfp.yaml"
    result = run_cli(
        [
            "compile",
            "customer_churn",
            "--target",
            "kfp",
            "--image",
            "registry.local/kubesage:1",
            "--output",
            str(target),
        ],
        workdir,
        "sqlite:///unused.db",
    )
    assert result.code == 0, result.stderr
    spec = yaml.safe_load(target.read_text())
    json_format.ParseDict(spec, pipeline_spec_pb2.PipelineSpec())
    images = {e["container"]["image"] for e in spec["deploymentSpec"]["executors"].values()}
    assert images == {"registry.local/kubesage:1"}
    assert not any("env" in e["container"] for e in spec["deploymentSpec"]["executors"].values())


def test_ctrl_c_answered_yes_terminates_the_run(
    kfp_standin: KfpStandin,
    mlflow_server: MlflowServer,
    workdir: Path,
    churn_csv: Path,
    ctrl_c_raises: None,
) -> None:
    """The terminal path: a real KeyboardInterrupt in the main thread, the question answered yes."""
    import _thread
    import threading

    from kubesage.runners.kfp.runner import KfpRunner
    from kubesage.runners.registry import load_pipeline
    from kubesage.util.environment import environment

    kfp_standin.faults = Faults(never_finish=True)
    before = set(kfp_standin.runs)
    questions: list[str] = []

    def answer_yes(question: str) -> bool:
        questions.append(question)
        return True

    def press_ctrl_c() -> None:
        deadline = time.monotonic() + 120
        while set(kfp_standin.runs) == before and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)  # the runner is now following the run
        # interrupt_main only flags the main thread; a flag taken while the interpreter runs a
        # finalizer is reported as "Exception ignored" and lost, so press again until asked.
        for _ in range(30):
            _thread.interrupt_main()
            time.sleep(2.0)
            if questions:
                return

    runner = KfpRunner({"host": kfp_standin.url, "poll_seconds": 0.2}, ask=answer_yes)
    pipeline = load_pipeline("customer_churn", workdir / "ir")
    threading.Thread(target=press_ctrl_c, daemon=True).start()
    with environment({"MLFLOW_TRACKING_URI": mlflow_server.url}):
        result = runner.run(pipeline, {"input_data": str(churn_csv)})
    (run_id,) = set(kfp_standin.runs) - before
    assert questions == [f"terminate KFP run {run_id} on the cluster? [y/N] "]
    assert result.status == "interrupted" and f"KFP run {run_id} was terminated" in (result.failure or "")
    assert kfp_standin.runs[run_id].model.state == "CANCELED"
    assert result.registered_model_version is None
