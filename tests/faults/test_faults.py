"""Faults injected from outside into real parts (issue 10, fault-injection suite).

What stands in for what: moto in server mode stands in for S3 (AccessDenied is moto's own IAM
enforcement; the 5xx answers come from a small HTTP proxy in front of moto that plays S3's
`SlowDown`/`InternalError`, since moto 5.2 has no switch for server errors); a real `mlflow server`
process is SIGKILLed; a real step process is SIGKILLed; a real 16 KiB tmpfs (mounted here as root;
the test is skipped where mounting is not allowed) is the full disk.
"""

from __future__ import annotations

import http.client
import http.server
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from kubesage import tracking as t
from kubesage.errors import DataError, ModelError
from kubesage.util.ports import free_port
from tests.conftest import REPO_ROOT
from tests.integration.cli_helpers import start_server, stop_server
from tests.mlflow_server import start_mlflow_server
from tests.servers import fresh_sqlite_store

pytestmark = pytest.mark.integration


# ------------------------------------------------------------------ the model server


def test_corrupt_model_at_serve_start_never_becomes_ready_and_says_why(model_dir: Path, tmp_path: Path) -> None:
    corrupt = tmp_path / "model"
    shutil.copytree(model_dir, corrupt)
    model = corrupt / "xgboost-model.ubj"
    model.write_bytes(model.read_bytes()[: model.stat().st_size // 2])  # truncated mid-file
    process = start_server(corrupt, free_port(), workers=1)
    try:
        output, _ = process.communicate(timeout=300)
    finally:
        stop_server(process)
    text = output.decode()
    assert process.returncode != 0
    assert "failed to load" in text and str(corrupt) in text, text[-2000:]
    assert "Traceback" not in text


# ------------------------------------------------------------------ S3


def _s3(endpoint: str, key: str = "testing", secret: str = "testing") -> object:
    return boto3.client(
        "s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id=key, aws_secret_access_key=secret
    )


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "3")
    monkeypatch.setenv("AWS_RETRY_MODE", "standard")


class _FaultyS3Proxy(http.server.ThreadingHTTPServer):
    """Forwards to moto, but answers the next `failures` requests with `status` and an error body.

    By default every request may fail, with S3's XML error; with `target` only JSON-protocol calls
    whose X-Amz-Target ends with it fail (e.g. SageMaker's DescribePipelineExecution), with the JSON
    error those services send. moto has no switch for either, so this proxy stands in for AWS's.
    """

    def __init__(self, upstream: str, status: int, code: str, failures: int, target: str | None = None) -> None:
        self.upstream = upstream.removeprefix("http://")
        self.status, self.code, self.failures, self.seen = status, code, failures, 0
        self.target, self.refused = target, 0
        super().__init__(("127.0.0.1", 0), _ProxyHandler)


class _ProxyHandler(http.server.BaseHTTPRequestHandler):
    server: _FaultyS3Proxy
    # HTTP/1.1, so the handler answers botocore's `Expect: 100-continue` (every S3 PutObject): under
    # HTTP/1.0 botocore waited a second for the 100 before sending each body. Each answer still says
    # `connection: close`, one request per connection, as before.
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def _handle(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        self.server.seen += 1
        targeted = self.server.target is None or self.headers.get("x-amz-target", "").endswith(self.server.target)
        if self.server.failures > 0 and targeted:
            self.server.failures -= 1
            self.server.refused += 1
            if self.server.target is None:
                error = f"<Error><Code>{self.server.code}</Code><Message>injected</Message></Error>".encode()
                kind = "application/xml"
            else:
                error = json.dumps({"__type": self.server.code, "message": "Rate exceeded (injected)"}).encode()
                kind = "application/x-amz-json-1.1"
            self.send_response(self.server.status)
            self.send_header("content-type", kind)
            self.send_header("content-length", str(len(error) if self.command != "HEAD" else 0))
            self.send_header("connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(error)
            return
        connection = http.client.HTTPConnection(self.server.upstream, timeout=30)
        connection.request(self.command, self.path, body=body, headers=dict(self.headers))
        answer = connection.getresponse()
        payload = answer.read()
        self.send_response(answer.status)
        for name, value in answer.getheaders():
            if name.lower() not in ("transfer-encoding", "connection"):
                self.send_header(name, value)
        self.send_header("connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_HEAD = do_PUT = do_POST = _handle  # noqa: N815  (http.server dispatches on these names)


@pytest.fixture
def churn_in_moto(moto_endpoint: str, churn_csv: Path, aws_env: None) -> str:
    client = _s3(moto_endpoint)
    client.create_bucket(Bucket="faults")  # type: ignore[attr-defined]
    client.upload_file(str(churn_csv), "faults", "churn.csv")  # type: ignore[attr-defined]
    return "s3://faults/churn.csv"


def _proxy(
    moto_endpoint: str, status: int, code: str, failures: int, target: str | None = None
) -> Iterator[_FaultyS3Proxy]:
    proxy = _FaultyS3Proxy(moto_endpoint, status, code, failures, target)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    try:
        yield proxy
    finally:
        proxy.shutdown()


def test_s3_503_slowdown_is_retried_and_the_download_succeeds(
    moto_endpoint: str, churn_in_moto: str, churn_csv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kubesage.churn.data import resolve_input

    for proxy in _proxy(moto_endpoint, 503, "SlowDown", failures=2):
        monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{proxy.server_address[1]}")
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        local = resolve_input(churn_in_moto, tmp_path)
        assert local.read_bytes() == churn_csv.read_bytes()
        assert proxy.seen >= 3  # two refusals, then the real answer


def test_s3_persistent_500_is_a_clear_data_error(
    moto_endpoint: str, churn_in_moto: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kubesage.churn.data import resolve_input

    for proxy in _proxy(moto_endpoint, 500, "InternalError", failures=1000):
        monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{proxy.server_address[1]}")
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        with pytest.raises(DataError) as caught:
            resolve_input(churn_in_moto, tmp_path)
        assert churn_in_moto in str(caught.value)
        assert proxy.seen == 3  # AWS_MAX_ATTEMPTS: retried, then given up
    assert not any(tmp_path.iterdir()), "a failed download must leave no partial file"


def test_s3_access_denied_names_the_permission(
    moto_endpoint: str, churn_in_moto: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """moto's IAM enforcement: a user with no policy is refused GetObject, as AWS would."""
    from kubesage.churn.data import resolve_input

    iam = boto3.client(
        "iam",
        endpoint_url=moto_endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    iam.create_user(UserName="no-s3")
    keys = iam.create_access_key(UserName="no-s3")["AccessKey"]
    previous = _reset_auth(moto_endpoint, "0")  # from now on every request must be authorised
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", keys["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", keys["SecretAccessKey"])
    try:
        with pytest.raises(DataError, match="access denied; the role or credentials need s3:GetObject"):
            resolve_input(churn_in_moto, tmp_path)
    finally:
        _reset_auth(moto_endpoint, previous)


def _reset_auth(moto_endpoint: str, allowed_unauthenticated: str) -> str:
    """moto's switch for IAM enforcement: how many requests may still pass without authorisation."""
    import urllib.request

    request = urllib.request.Request(
        f"{moto_endpoint}/moto-api/reset-auth",
        data=allowed_unauthenticated.encode(),
        headers={"Content-Type": "text/plain"},  # a form body would be parsed away by Flask
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        return str(json.loads(answer.read())["PREVIOUS_INITIAL_NO_AUTH_ACTION_COUNT"])


# ------------------------------------------------------------------ full disk


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "tiny"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_full_disk_while_writing_the_model_leaves_nothing_half_written(trained_model: Path, tiny_disk: Path) -> None:
    from kubesage.churn.modelio import load_booster, save_booster

    booster = load_booster(trained_model)
    assert (trained_model / "xgboost-model.ubj").stat().st_size > 16 * 1024  # it cannot fit
    with pytest.raises(ModelError, match="could not write the model to .*free disk space"):
        save_booster(booster, tiny_disk / "model")
    assert list((tiny_disk / "model").iterdir()) == []


# ------------------------------------------------------------------ MLflow server and steps killed


def _register_args(prepared: dict[str, Path], model_dir: Path, evaluation: Path, name: str) -> list[str]:
    return [str(model_dir), str(prepared["schema"]), str(evaluation), str(prepared["test"]), name]


@pytest.fixture
def evaluation(prepared: dict[str, Path], model_dir: Path, tmp_path: Path) -> Path:
    from kubesage.components.evaluate import evaluate_model, write_evaluation

    return write_evaluation(evaluate_model(prepared["test"], model_dir), tmp_path / "evaluation.json")


def test_mlflow_server_killed_mid_run_fails_clearly_and_registers_nothing(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    prepared: dict[str, Path],
    model_dir: Path,
    evaluation: Path,
    mlflow_sqlite_template: Path,
) -> None:
    from kubesage.components.steps import register_step
    from kubesage.tracking.contract import ENV_FAILURE_DIR

    root = tmp_path / "mlflow"
    # The server's store starts as a copy of the session's migrated one: it opens without
    # running MLflow's migrations first (seconds of the server's start).
    server = start_mlflow_server(root, timeout=300, store_template=mlflow_sqlite_template)
    run = t.start_pipeline_run("killed-server", "local", {}, uri=server.url)
    for name, value in run.step_env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv(ENV_FAILURE_DIR, str(tmp_path / "failures"))
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    for pid in _process_tree(server.process.pid):  # the server (and its workers) die between the run's steps
        os.kill(pid, signal.SIGKILL)
    server.process.wait(timeout=30)
    with pytest.raises(SystemExit) as exited:
        register_step(*_register_args(prepared, model_dir, evaluation, "churn-killed"))
    assert exited.value.code != 0
    reason = (tmp_path / "failures" / "register.txt").read_text()
    assert reason.startswith("TrackingError: MLflow at http://127.0.0.1:") and "register" in reason
    # What did the failed step leave? The dead server's own store, read directly (a restarted server
    # would only read the same file, after seconds of starting).
    store = t.mlflow_client(f"sqlite:///{root / 'mlflow.db'}")
    assert store.search_model_versions("name = 'churn-killed'") == []
    assert store.search_registered_models() == []


def _process_tree(pid: int) -> list[int]:
    """`pid` and its descendants (mlflow server runs its web workers as child processes)."""
    found = [pid]
    for task in Path(f"/proc/{pid}/task").glob("*"):
        children = (task / "children").read_text().split() if (task / "children").exists() else []
        for child in children:
            found += _process_tree(int(child))
    return found


def test_register_step_killed_mid_run_then_retried_leaves_one_complete_version(
    mlflow_sqlite: str,
    prepared: dict[str, Path],
    model_dir: Path,
    evaluation: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from mlflow import MlflowClient

    from kubesage.components.steps import register_step

    run = t.start_pipeline_run("killed-step", "local", {}, uri=mlflow_sqlite)
    env = {**os.environ, **run.step_env}
    args = _register_args(prepared, model_dir, evaluation, "churn-step-killed")
    code = "import sys; from kubesage.components.steps import register_step; register_step(*sys.argv[1:])"
    client = MlflowClient(tracking_uri=mlflow_sqlite)
    artifacts = Path(urllib.parse.urlparse(client.get_experiment(run.experiment_id).artifact_location).path)
    step = subprocess.Popen([sys.executable, "-c", code, *args], env=env, cwd=REPO_ROOT)
    # Killed once the model's files are logged: the logged model exists, its version not yet (the
    # step has not got there, or is creating it). A fixed sleep here killed it at any point, or after
    # it had finished on a quiet machine.
    deadline = time.monotonic() + 300
    while step.poll() is None and not any(artifacts.glob("models/*/artifacts/MLmodel")):
        assert time.monotonic() < deadline, "the register step logged no model within 300 s"
        time.sleep(0.02)
    step.send_signal(signal.SIGKILL)
    step.wait(timeout=30)
    before = client.search_model_versions("name = 'churn-step-killed'")
    assert len(before) <= 1
    for version in before:  # if the kill came after the create, the version is whole
        assert version.tags[t.TAG_PIPELINE_RUN_ID] == run.run_id and "accuracy" in version.tags
    for name, value in run.step_env.items():
        monkeypatch.setenv(name, value)
    retried = register_step(*args)
    after = client.search_model_versions("name = 'churn-step-killed'")
    assert [str(v.version) for v in after] == [retried.version]
    if before:
        assert retried.version == str(before[0].version)


# ------------------------------------------------------------------ concurrent runs on the embedded store


def test_concurrent_runs_share_a_new_sqlite_store(tmp_path: Path) -> None:
    """Six processes, each a pipeline run's tracking calls, start together on a store that does not exist yet.

    The processes are forked from one that imported MLflow (tests/faults/concurrent_steps.py), and
    released at once: they reach the new store together, not an interpreter start apart."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    names = [f"concurrent-{i % 2}" for i in range(6)]
    done = subprocess.run(
        [sys.executable, "-m", "tests.faults.concurrent_steps", uri, *names],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        timeout=600,
        check=False,
    )
    output = done.stdout.decode()
    assert done.returncode == 0, output[-3000:]
    assert "exit codes: [0, 0, 0, 0, 0, 0]" in output
    assert "database is locked" not in output
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    experiments = [e.experiment_id for e in client.search_experiments()]
    parents = client.search_runs(experiments, "tags.`kubesage.kind` = 'pipeline'")
    assert len(parents) == 6 and {r.info.status for r in parents} == {"FINISHED"}
    steps = client.search_runs(experiments, "tags.`kubesage.kind` = 'step'")
    assert len(steps) == 18


def test_sagemaker_throttling_on_describe_does_not_end_the_follow(
    moto_endpoint: str,
    churn_csv: Path,
    tmp_path: Path,
    aws_env: None,
    monkeypatch: pytest.MonkeyPatch,
    mlflow_sqlite_template: Path,
) -> None:
    """DescribePipelineExecution throttled (HTTP 400 ThrottlingException) more often than botocore's
    own retries absorb: the runner keeps following and reports the execution's real end state.
    (moto marks executions Succeeded at once; the throttling comes from the proxy in front of it.)

    Two attempts per botocore call and three throttles: the first call's two attempts are refused
    (the runner's own retry takes over), the second call's first attempt too (botocore's retry
    absorbs it). Every retry backs off for real (botocore's jittered backoff, then the runner's
    1 s), so no more throttles than that: each round of them costs seconds of waiting.
    """
    from kubesage.runners.base import CallbackProgress
    from kubesage.runners.registry import load_pipeline
    from kubesage.runners.sagemaker.runner import SageMakerRunner

    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    _s3(moto_endpoint).create_bucket(Bucket="faults-sagemaker")  # type: ignore[attr-defined]
    uri = fresh_sqlite_store(mlflow_sqlite_template, tmp_path / "mlflow.db")
    tracking = t.start_pipeline_run("customer-churn", "sagemaker", {}, uri=uri)
    pipeline = load_pipeline("customer_churn", tmp_path / "ir")
    for proxy in _proxy(moto_endpoint, 400, "ThrottlingException", failures=3, target="DescribePipelineExecution"):
        options = {
            "endpoint_url": f"http://127.0.0.1:{proxy.server_address[1]}",
            "bucket": "faults-sagemaker",
            "role_arn": "arn:aws:iam::123456789012:role/kubesage-sagemaker-execution",
            "image_uri": f"123456789012.dkr.ecr.us-east-1.amazonaws.com/kubesage/xgboost-daal4py@sha256:{'0' * 64}",
            "poll_seconds": 0.1,
        }
        runner = SageMakerRunner(options)
        arn = runner.start(pipeline, {"input_data": str(churn_csv)}, tracking)
        lines: list[str] = []
        runner.follow(arn, CallbackProgress(lines.append))  # raises unless it saw the execution succeed
        assert proxy.refused == 3 and proxy.failures == 0
        assert lines[0] == f"following SageMaker pipeline execution {arn}"
