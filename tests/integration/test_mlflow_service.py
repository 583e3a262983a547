"""`kubesage mlflow up` as a team service, used by pipelines on several runners at once.

One service per module (real PostgreSQL from Debian's package, moto in server mode standing in for the
S3 artifact bucket, a real `mlflow server --app-name basic-auth`), started by the same function the CLI
calls. On it: the churn pipeline on the local runner and on the KFP stand-in (tests/standins: KFP's
REST API, runs executed by kfp.local; its secret store stands in for the namespace's Kubernetes
secrets) at the same time, with the MLflow server restarted while they run; then who may read what
(403s, also on the artifact proxy routes), the leak search for every credential, and `down`/`up`.
"""

from __future__ import annotations

import configparser
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from kubesage.mlflow_service import processes
from kubesage.mlflow_service.layout import Layout, load_secrets, read_credentials
from kubesage.mlflow_service.service import MLFLOW, ServiceStatus, add_user, down, status, up
from tests.cli_zygote import shared_zygote
from tests.integration.cli_helpers import KUBESAGE
from tests.needs import CHROMIUM, IMAGE, missing_postgres, require
from tests.paths import REPO_ROOT
from tests.servers import running_moto
from tests.standins.kfp_api import KfpStandin

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(3600)]


@pytest.fixture(scope="module")
def layout() -> Iterator[Layout]:
    require(missing_postgres())
    # Under /tmp, not pytest's 0700 tmp folder: as root, PostgreSQL runs as `postgres`, which must enter it.
    root = Path(tempfile.mkdtemp(prefix="kubesage-mlflow-service-"))
    root.chmod(0o711)
    service = Layout(root / "state")
    try:
        yield service
    finally:
        # The MLflow server is killed first (no wait, timeout=0): its store is thrown away, and the graceful
        # stop waits ~2 s more for the `mlflow server` command's interpreter to exit. `down` stops the rest;
        # test_down_and_up_keep_runs_models_artifacts_and_users tests the graceful `down`.
        processes.stop(service.pid_file(MLFLOW), timeout=0)
        down(service)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def service(layout: Layout) -> ServiceStatus:
    return up(layout)


@pytest.fixture(scope="module")
def uri(service: ServiceStatus) -> str:
    assert service.tracking_uri
    return service.tracking_uri


@pytest.fixture(scope="module")
def admin(layout: Layout, service: ServiceStatus) -> tuple[str, str]:
    return read_credentials(layout.admin_env)


@pytest.fixture(scope="module")
def alice(layout: Layout, service: ServiceStatus) -> tuple[str, str]:
    created = add_user(layout, "alice")
    assert created.created and created.permission == "EDIT"
    return read_credentials(created.credentials_file)


def _env(uri: str, user: tuple[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "KUBESAGE_MLFLOW", "AWS_"))}
    return {**env, "MLFLOW_TRACKING_URI": uri, "MLFLOW_TRACKING_USERNAME": user[0], "MLFLOW_TRACKING_PASSWORD": user[1]}


def _client(uri: str, user: tuple[str, str]) -> Any:
    """An MlflowClient as `user` (MLflow reads the credentials from the environment on each request)."""
    from mlflow import MlflowClient

    os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"] = user
    return MlflowClient(uri, registry_uri=uri)


@pytest.fixture(autouse=True)
def _no_credentials_left(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN"):
        monkeypatch.delenv(name, raising=False)


# ------------------------------------------------------------------------------- the service itself


def test_up_starts_postgres_the_s3_standin_and_an_authenticated_server(
    layout: Layout, service: ServiceStatus, uri: str, admin: tuple[str, str]
) -> None:
    import psycopg2

    assert service.all_running and uri.startswith("http://127.0.0.1:")
    for private in (layout.admin_env, layout.secrets_file, layout.auth_config):
        assert private.stat().st_mode & 0o777 == 0o600, private
    config = configparser.ConfigParser()
    config.read(layout.auth_config)
    assert config["mlflow"]["default_permission"] == "NO_PERMISSIONS"
    assert config["mlflow"]["database_uri"].startswith("postgresql+psycopg2://kubesage@127.0.0.1:")
    search = f"{uri}/api/2.0/mlflow/experiments/search?max_results=5"
    assert httpx.get(search).status_code == 401
    assert httpx.get(search, auth=("admin", "wrong-password-123")).status_code == 401
    assert httpx.get(search, auth=admin).status_code == 200
    # --allowed-hosts: a request naming another host (DNS rebinding) is refused before any handler.
    assert httpx.get(search, auth=admin, headers={"Host": "attacker.example"}).status_code in (400, 403)
    secrets = load_secrets(layout)
    pid = processes.running_pid(layout.pid_file(MLFLOW))
    assert pid is not None
    command_line = Path(f"/proc/{pid}/cmdline").read_bytes().decode()
    assert "--app-name\0basic-auth" in command_line and "s3://kubesage-mlflow/artifacts" in command_line
    for value in (secrets.admin_password, secrets.postgres_password, secrets.flask_secret_key):
        assert value not in command_line  # `ps` shows command lines to every user
    settings = json.loads(layout.settings_file.read_text(encoding="utf-8"))
    with psycopg2.connect(
        host="127.0.0.1", port=settings["postgres_port"], user="kubesage", password=secrets.postgres_password,
        dbname="mlflow",
    ) as db, db.cursor() as cursor:  # fmt: skip
        cursor.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")
        tables = {row[0] for row in cursor.fetchall()}
    assert {"experiments", "runs", "registered_models", "users", "alembic_version_auth"} <= tables


def test_up_again_changes_nothing_and_status_says_what_runs(layout: Layout, service: ServiceStatus) -> None:
    before = {name: processes.running_pid(layout.pid_file(name)) for name in ("mlflow", "s3")}
    again = up(layout)
    assert again.tracking_uri == service.tracking_uri and again.all_running
    assert {name: processes.running_pid(layout.pid_file(name)) for name in ("mlflow", "s3")} == before
    done = subprocess.run(
        [KUBESAGE, "mlflow", "status", "--state-dir", str(layout.root)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert f"MLflow server  running  {service.tracking_uri}" in done.stdout
    assert "PostgreSQL     running" in done.stdout and str(layout.admin_env) in done.stdout


def test_the_server_accepts_model_versions_of_its_own_artifacts_only(uri: str, admin: tuple[str, str]) -> None:
    from mlflow.exceptions import MlflowException

    client = _client(uri, admin)
    client.create_registered_model("elsewhere-check")
    with pytest.raises(MlflowException, match="Invalid model version source"):
        client.create_model_version("elsewhere-check", source="s3://someone-elses-bucket/model")


# ---------------------------------------------------------------- pipelines at once, and a restart


@dataclass
class PipelineRuns:
    results: dict[str, dict[str, Any]]  # runner -> `kubesage run --output json`
    consoles: dict[str, str]  # runner -> stdout + stderr
    workdir: Path
    standin: KfpStandin
    restarted: bool


def _step_started(uri: str, admin: tuple[str, str], step: str) -> bool:
    client = _client(uri, admin)
    experiment = client.get_experiment_by_name("customer-churn")
    if experiment is None:
        return False
    return bool(client.search_runs([experiment.experiment_id], f"tags.`kubesage.step` = '{step}'", max_results=1))


@pytest.fixture(scope="module")
def pipeline_runs(
    layout: Layout,
    uri: str,
    admin: tuple[str, str],
    alice: tuple[str, str],
    kfp_standin: KfpStandin,
    churn_csv: Path,
) -> Iterator[PipelineRuns]:
    """The churn pipeline as alice on the local runner and on the KFP stand-in at the same time; the MLflow
    server is stopped and started again once a train step has begun (both runs are then mid-flight)."""
    workdir = Path(tempfile.mkdtemp(prefix="kubesage-team-runs-"))
    # What `kubectl create secret generic kubesage-mlflow --from-literal=...` puts in the namespace.
    kfp_standin.secrets["kubesage-mlflow"] = {"username": alice[0], "password": alice[1]}
    common = ["run", "customer_churn", "--param", f"input_data={churn_csv}", "--output", "json"]
    commands = {
        "local": [KUBESAGE, *common],
        "kfp": [KUBESAGE, *common, "--runner", "kfp", "--option", f"host={kfp_standin.url}", "--option",
                "poll_seconds=0.5"],
    }  # fmt: skip
    logs = {name: (workdir / f"{name}.out", workdir / f"{name}.err") for name in commands}
    running = {}
    for name, command in commands.items():
        out, err = (path.open("w", encoding="utf-8") for path in logs[name])
        running[name] = subprocess.Popen(command, cwd=workdir, env=_env(uri, alice), stdout=out, stderr=err)
    deadline = time.monotonic() + 1800
    while not _step_started(uri, admin, "train") and time.monotonic() < deadline:
        assert all(p.poll() is None for p in running.values()), {n: logs[n][1].read_text() for n in logs}
        time.sleep(1)
    restarted = processes.stop(layout.pid_file(MLFLOW))
    up(layout)  # the same URI, the same store
    codes = {name: process.wait(timeout=1800) for name, process in running.items()}
    consoles = {name: logs[name][0].read_text() + logs[name][1].read_text() for name in commands}
    assert codes == {"local": 0, "kfp": 0}, consoles
    results = {name: json.loads(logs[name][0].read_text()) for name in commands}
    yield PipelineRuns(results, consoles, workdir, kfp_standin, restarted)
    shutil.rmtree(workdir, ignore_errors=True)


def test_two_pipelines_at_once_through_a_server_restart_both_register_one_version_each(
    pipeline_runs: PipelineRuns, uri: str, admin: tuple[str, str]
) -> None:
    assert pipeline_runs.restarted
    client = _client(uri, admin)
    versions = {}
    for runner, result in pipeline_runs.results.items():
        assert result["status"] == "succeeded", result
        parent = client.get_run(result["mlflow_run_id"])
        assert parent.data.tags["kubesage.runner"] == runner
        assert parent.info.status == "FINISHED"
        assert parent.data.metrics["roc_auc"] == pytest.approx(result["metrics"]["roc_auc"])
        pipeline_run_id = parent.data.tags["kubesage.pipeline_run_id"]
        found = client.search_model_versions(
            f"name = 'customer-churn' and tag.`kubesage.pipeline_run_id` = '{pipeline_run_id}'"
        )
        assert [v.version for v in found] == [str(result["registered_model_version"])]  # never half or twice
        versions[runner] = found[0]
        # The registered model's files are in the (stand-in) S3 bucket behind the proxy, complete.
        assert {a.path for a in client.list_artifacts(result["mlflow_run_id"])} >= {"roc_curve.png"}
    assert versions["local"].version != versions["kfp"].version
    # Same data, same seed, same code: the runners agree, whatever the server went through.
    local, kfp = (pipeline_runs.results[r]["metrics"] for r in ("local", "kfp"))
    assert local["roc_auc"] == pytest.approx(kfp["roc_auc"], abs=1e-9)


def test_the_kfp_ir_references_the_secret_and_the_pods_got_it_from_the_store(pipeline_runs: PipelineRuns) -> None:
    stored = pipeline_runs.standin.runs[pipeline_runs.results["kfp"]["backend_id"]]
    executors = stored.platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert set(executors) == set(stored.spec["deploymentSpec"]["executors"])
    reference = executors["exec-train"]["secretAsEnv"][0]
    assert reference["secretNameParameter"]["runtimeValue"]["constant"] == "kubesage-mlflow"
    assert {(p["secretKey"], p["envVar"]) for p in reference["keyToEnv"]} == {
        ("username", "MLFLOW_TRACKING_USERNAME"),
        ("password", "MLFLOW_TRACKING_PASSWORD"),
    }


# ------------------------------------------------------------------------------------- who sees what


def test_a_user_without_a_grant_gets_403_also_on_the_artifact_proxy(
    layout: Layout, uri: str, pipeline_runs: PipelineRuns, alice: tuple[str, str]
) -> None:
    created = add_user(layout, "bob", experiment="bob-only", model="bob-model")
    bob = read_credentials(created.credentials_file)
    run_id = pipeline_runs.results["local"]["mlflow_run_id"]
    parent = _client(uri, alice).get_run(run_id)
    experiment_id = parent.info.experiment_id
    artifact = f"{experiment_id}/{run_id}/artifacts/roc_curve.png"
    routes = [
        f"/api/2.0/mlflow/runs/get?run_id={run_id}",
        f"/api/2.0/mlflow/experiments/get?experiment_id={experiment_id}",
        f"/api/2.0/mlflow-artifacts/artifacts/{artifact}",  # the proxy's download route
        f"/api/2.0/mlflow-artifacts/artifacts?path={experiment_id}/{run_id}/artifacts",  # its listing
        f"/get-artifact?run_id={run_id}&path=roc_curve.png",
        f"/ajax-api/2.0/mlflow-artifacts/artifacts/{artifact}",  # the UI's copy of the proxy route
        "/api/2.0/mlflow/registered-models/get?name=customer-churn",
    ]
    answers = {route: httpx.get(uri + route, auth=bob).status_code for route in routes}
    assert answers == dict.fromkeys(routes, 403)
    granted = {route: httpx.get(uri + route, auth=alice).status_code for route in routes}
    assert granted == dict.fromkeys(routes, 200)
    # kubesage says so in one line, with what to do.
    compare = ["runs", "--compare", run_id, pipeline_runs.results["kfp"]["mlflow_run_id"]]
    done = shared_zygote().run(KUBESAGE, compare, pipeline_runs.workdir, _env(uri, bob), timeout=600)
    assert done.code != 0
    message = done.stderr.strip()
    assert len(message.splitlines()) == 1, message
    assert "refused user bob permission" in message and "(403)" in message
    assert "kubesage mlflow user add bob" in message
    assert bob[1] not in message


# -------------------------------------------- sagemaker-local too, and all three in a browser

BUCKET = "kubesage-team-service"
SCREENSHOTS = REPO_ROOT / "build" / "ui"
SAGEMAKER_CONSOLES: dict[str, str] = {}  # filled when the sagemaker-local run happened (Docker here)


@pytest.fixture(scope="module")
def sagemaker_local_run(uri: str, alice: tuple[str, str], churn_csv: Path) -> dict[str, Any]:
    """The same pipeline on sagemaker-local (Docker, the kubesage image), as alice; moto in server mode
    stands in for S3 and for Secrets Manager, where the secret holds alice's credentials."""
    moto = running_moto()
    endpoint = next(moto)
    keys = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
    aws = {"endpoint_url": endpoint, "region_name": "us-east-1", "aws_access_key_id": "testing",
           "aws_secret_access_key": "testing"}  # fmt: skip
    import boto3

    boto3.client("s3", **aws).create_bucket(Bucket=BUCKET)
    boto3.client("secretsmanager", **aws).create_secret(
        Name="kubesage/mlflow", SecretString=json.dumps({"username": alice[0], "password": alice[1]})
    )
    workdir = Path(tempfile.mkdtemp(prefix="kubesage-team-sm-"))
    command = [
        KUBESAGE, "run", "customer_churn", "--runner", "sagemaker-local", "--param", f"input_data={churn_csv}",
        "--option", f"image_uri={IMAGE}", "--option", f"bucket={BUCKET}", "--option", f"s3_endpoint_url={endpoint}",
        "--option", "mlflow_secret=kubesage/mlflow", "--option", f"secrets_endpoint_url={endpoint}",
        "--option", f"endpoint_url={endpoint}", "--output", "json",
    ]  # fmt: skip
    done = subprocess.run(command, cwd=workdir, env={**_env(uri, alice), **keys}, capture_output=True, text=True)
    SAGEMAKER_CONSOLES["sagemaker-local"] = done.stdout + done.stderr
    for path in workdir.rglob("*.log"):
        SAGEMAKER_CONSOLES[str(path)] = path.read_text(encoding="utf-8", errors="replace")
    moto.close()
    shutil.rmtree(workdir, ignore_errors=True)
    assert done.returncode == 0, done.stderr[-4000:]
    result: dict[str, Any] = json.loads(done.stdout)
    return result


@pytest.mark.container
@pytest.mark.browser
def test_runs_of_three_runners_compared_in_a_browser_as_a_logged_in_user(
    uri: str, alice: tuple[str, str], pipeline_runs: PipelineRuns, sagemaker_local_run: dict[str, Any]
) -> None:
    from playwright.sync_api import sync_playwright

    from kubesage.tracking.ui_view import runs_url

    results = {**pipeline_runs.results, "sagemaker-local": sagemaker_local_run}
    client = _client(uri, alice)
    stored = {runner: client.get_run(r["mlflow_run_id"]).data.metrics for runner, r in results.items()}
    experiment = client.get_experiment_by_name("customer-churn")
    assert experiment is not None
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        # basic-auth: the browser logs in with alice's credentials, as a person would in the dialog.
        context = browser.new_context(
            viewport={"width": 1920, "height": 1200}, http_credentials={"username": alice[0], "password": alice[1]}
        )
        page = context.new_page()
        page.set_default_timeout(120_000)
        page.goto(runs_url(uri, experiment.experiment_id))
        grid = page.locator(".ag-root")
        grid.get_by_text("kubesage.runner").first.wait_for()
        for runner in results:
            grid.get_by_text(runner, exact=True).first.wait_for()
        page.wait_for_timeout(1500)  # let the grid finish laying out before the screenshot
        page.screenshot(path=str(SCREENSHOTS / "team-runs-table.png"), full_page=True)
        table = grid.inner_text()
        for runner, metrics in stored.items():
            assert runner in table, table
            assert str(metrics["roc_auc"])[:6] in table, (runner, table)  # the store's value, shown
        ids = [r["mlflow_run_id"] for r in results.values()]
        query = f"runs={json.dumps(ids)}&experiments={json.dumps([experiment.experiment_id])}"
        page.goto(f"{uri}/#/compare-runs?{query}")
        page.get_by_text("roc_auc").first.wait_for()
        roc_curve = page.get_by_text("roc_curve.png").first
        roc_curve.wait_for()
        text = page.locator("body").inner_text()
        for metrics in stored.values():  # the compare view rounds to 3 decimals
            assert str(round(metrics["roc_auc"], 3)) in text, text
        # With three runs a sticky header can cover the name: dispatch the click to it directly.
        roc_curve.dispatch_event("click")
        page.wait_for_function(
            "new Set([...document.querySelectorAll(\"img[src^='blob:']\")].map(img => img.src)).size >= 3"
        )
        page.wait_for_timeout(1500)
        page.screenshot(path=str(SCREENSHOTS / "team-compare-runs.png"), full_page=True)
        browser.close()


# ------------------------------------------------------------------------------- nothing leaks


def test_no_credential_appears_in_ir_definitions_parameters_mlflow_consoles_or_task_logs(
    layout: Layout, uri: str, admin: tuple[str, str], alice: tuple[str, str], pipeline_runs: PipelineRuns,
    tmp_path: Path, churn_csv: Path,
) -> None:  # fmt: skip
    secrets = load_secrets(layout)
    needles = {
        "alice's password": alice[1], "the admin password": admin[1],
        "the database password": secrets.postgres_password, "the Flask secret key": secrets.flask_secret_key,
    }  # fmt: skip
    # A compiled SageMaker definition, as `kubesage compile` writes it with the secret's name set.
    definition = tmp_path / "pipeline.json"
    compile_args = ["compile", "customer_churn", "--target", "sagemaker", "--output", str(definition), "--option",
                    "mlflow_secret=kubesage/mlflow"]  # fmt: skip
    compiled = shared_zygote().run(KUBESAGE, compile_args, tmp_path, _env(uri, alice), timeout=600)
    assert compiled.code == 0, compiled.stderr
    assert "KUBESAGE_SECRET_ENV" in definition.read_text(encoding="utf-8")
    haystacks: dict[str, bytes] = {"the SageMaker definition": definition.read_bytes()}
    haystacks |= {f"console of {r}": text.encode() for r, text in pipeline_runs.consoles.items()}
    haystacks |= {f"sagemaker-local: {r}": text.encode() for r, text in SAGEMAKER_CONSOLES.items()}
    for folder in (pipeline_runs.workdir, pipeline_runs.standin.workdir):
        # IR files, run.json (the KFP run's parameters), task logs, local outputs
        for path in folder.rglob("*"):
            if path.is_file() and path.stat().st_size < 50_000_000:
                haystacks[str(path)] = path.read_bytes()
    client = _client(uri, admin)
    experiment = client.get_experiment_by_name("customer-churn")
    assert experiment is not None
    artifacts = tmp_path / "artifacts"
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    assert len(runs) >= 2 * 5  # two parent runs and their steps
    for run in runs:
        haystacks[f"run {run.info.run_id} tags and params"] = json.dumps(
            [run.data.tags, run.data.params, run.info.run_name]
        ).encode()
        target = artifacts / run.info.run_id
        target.mkdir(parents=True)
        client.download_artifacts(run.info.run_id, "", str(target))
        for path in target.rglob("*"):
            if path.is_file():
                haystacks[f"artifact {path.relative_to(artifacts)}"] = path.read_bytes()
    for version in client.search_model_versions("name = 'customer-churn'"):
        haystacks[f"model version {version.version}"] = json.dumps([version.tags, version.description]).encode()
    assert any(name.endswith("tasks.log") for name in haystacks) and any("/logs/" in n for n in haystacks)
    assert any(name.endswith("pipeline.yaml") for name in haystacks)
    leaks = [
        (what, where) for where, data in haystacks.items() for what, value in needles.items() if value.encode() in data
    ]
    assert leaks == []


# ----------------------------------------------------------------------------------- down and up


def test_down_and_up_keep_runs_models_artifacts_and_users(
    layout: Layout, uri: str, alice: tuple[str, str], pipeline_runs: PipelineRuns, tmp_path: Path
) -> None:
    run_id = pipeline_runs.results["kfp"]["mlflow_run_id"]
    client = _client(uri, alice)
    before = (tmp_path / "before").resolve()
    client.download_artifacts(run_id, "roc_curve.png", str(before.parent / "b"))
    stopped = down(layout)
    assert stopped.nothing_running
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{uri}/health")
    started = up(layout)
    assert started.all_running and started.tracking_uri == uri
    client = _client(uri, alice)  # alice's password still works: users live in PostgreSQL
    run = client.get_run(run_id)
    assert run.data.metrics["roc_auc"] == pytest.approx(pipeline_runs.results["kfp"]["metrics"]["roc_auc"])
    client.download_artifacts(run_id, "roc_curve.png", str(tmp_path / "a"))
    assert (tmp_path / "a" / "roc_curve.png").read_bytes() == (tmp_path / "b" / "roc_curve.png").read_bytes()
    version = client.get_model_version("customer-churn", str(pipeline_runs.results["kfp"]["registered_model_version"]))
    assert version.status == "READY"
    assert status(layout).all_running
