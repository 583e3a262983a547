"""What a newcomer sees: `make demo`'s commands in text mode on KFP's local runner (a real run), and
the README's "SageMaker on a laptop" paste on the sagemaker-local runner (Docker).

The Makefile runs exactly these two commands (plus one "installing" line), so the line budget here
is the demo's: at most 40 lines in all; the README's paste has the same budget.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import boto3
import pandas as pd
import pytest

from tests.integration.cli_helpers import run_cli
from tests.mlflow_server import MlflowServer

pytestmark = [pytest.mark.integration, pytest.mark.slow]
DEMO_LINE_BUDGET = 40 - 1  # the Makefile's own "installing kubesage" line


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("demo")


@pytest.fixture(scope="module")
def tracking_uri(workdir: Path) -> str:
    # A store that does not exist yet, not a copy of the migrated template (tests/servers.py): the demo's
    # line budget covers what a newcomer's first run prints while it creates the store (2-3 s of migrations).
    return f"sqlite:///{workdir / 'mlflow.db'}"


def test_demo_prints_at_most_40_lines_and_ends_with_next_steps(workdir: Path, tracking_uri: str) -> None:
    generate = run_cli(
        ["data", "generate", "--rows", "5000", "--seed", "7", "--output", "build/demo/churn.csv"],
        workdir, tracking_uri, fresh_process=True,
    )  # fmt: skip
    run = ["run", "customer_churn", "--param", "input_data=build/demo/churn.csv"]
    result = run_cli(run, workdir, tracking_uri, fresh_process=True)
    assert result.code == 0, result.stderr[-3000:]
    # The Makefile's last demo line: the registered model behind the local API, one raw record sent.
    api = subprocess.run(
        [sys.executable, "-m", "kubesage.local_api.demo", "--data", "build/demo/churn.csv"],
        cwd=workdir,
        env={**os.environ, "MLFLOW_TRACKING_URI": tracking_uri},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert api.returncode == 0, api.stderr[-3000:]
    # The answer's JSON, then the drift line, then the next steps.
    answer, after = api.stdout.split("\n", 1)[1].split("\ndrift (", 1)
    next_steps = after.split("run the same path yourself", 1)[1]
    assert json.loads(answer)["predictions"][0]["churn"] in (True, False)
    # The demo ends with next steps that work when pasted.
    assert api.stdout.rstrip().splitlines()[-1].startswith("  kubesage api --endpoint-url http://127.0.0.1:8080")
    assert "kubesage serve --model models:/customer-churn/1 --port 8080" in next_steps
    # The server captured the one request (SageMaker's format, no Phone) and drift ran on it.
    captured = [p.read_text() for p in (workdir / "build/demo/captures/kubesage-demo/AllTraffic").rglob("*.jsonl")]
    assert len(captured) == 1 and len(captured[0].splitlines()) == 1 and "Phone" not in captured[0]
    drift_line = re.search(
        r"^drift \(1 captured request vs the training baseline\): 0 violation\(s\); report: (\S+)$",
        api.stdout,
        re.MULTILINE,
    )
    assert drift_line is not None, api.stdout
    report = (workdir / drift_line[1]).read_text()
    assert report.count("data-feature=") == 19 and "Phone" not in report
    import mlflow

    version = mlflow.MlflowClient(tracking_uri).get_model_version("customer-churn", "1")
    drift_run = mlflow.MlflowClient(tracking_uri).get_run(version.tags["kubesage.drift.last_run_id"])
    assert drift_run.data.tags["kubesage.model_version"] == "1" and drift_run.data.metrics["drift_requests"] == 1
    text = generate.stdout + generate.stderr + result.stderr + result.stdout + api.stderr + api.stdout
    lines = text.splitlines()
    assert len(lines) <= DEMO_LINE_BUDGET, text
    assert max(len(line) for line in lines) < 200, "no long line of ROC points or executor input"
    assert "executor_input" not in text and "parameterValues" not in text
    for step in ("preprocess", "train", "evaluate", "register"):
        assert re.search(rf"{step}\s+started", text), text
        assert re.search(rf"{step}\s+succeeded\s+\d+\.\d s", text), text
    log_path = Path(re.search(r"task logs in (\S+\.log)", text)[1])  # type: ignore[index]
    assert (workdir / log_path).is_file()
    assert "parameterValues" in (workdir / log_path).read_text()  # the task logs are kept, in the file
    assert "kubesage serve --model models:/customer-churn/1" in result.stdout
    assert "kubesage features records build/demo/churn.csv" in result.stdout
    assert result.stdout.rstrip().splitlines()[-1].startswith("  send it:")


def test_verbose_shows_the_task_logs(workdir: Path, tracking_uri: str, churn_csv: Path, tmp_path: Path) -> None:
    """A failing step's last lines and its reason appear once; with --verbose the task logs too."""
    frame = pd.read_csv(churn_csv).rename(columns={"Day Mins": "Day Minutes"})
    bad = tmp_path / "misspelled.csv"
    frame.to_csv(bad, index=False)
    failing_run = ["run", "customer_churn", "--param", f"input_data={bad}"]
    result = run_cli(failing_run, workdir, tracking_uri)
    assert result.code == 1
    text = result.stdout + result.stderr
    assert re.search(r"preprocess\s+failed", text), text
    assert "last lines of task preprocess" in text
    assert text.count("DataError") == 1, text
    assert "Traceback" not in result.stdout
    verbose = run_cli([*failing_run, "--verbose"], workdir, tracking_uri)
    assert "parameterValues" in verbose.stderr


@pytest.mark.container
def test_sagemaker_on_a_laptop_prints_at_most_40_lines_with_live_steps(
    tmp_path_factory: pytest.TempPathFactory,
    moto_endpoint: str,
    shared_mlflow: MlflowServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The README's paste: the SDK's logging, compose files and container output go to the run's log
    file; the console gets each step as it starts and ends, the summary and the next steps."""
    workdir = tmp_path_factory.mktemp("sagemaker-demo")
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    boto3.client("s3", endpoint_url=moto_endpoint).create_bucket(Bucket="kubesage-artifacts")
    generate = run_cli(
        ["data", "generate", "--rows", "5000", "--seed", "7", "--output", "build/demo/churn.csv"],
        workdir,
        shared_mlflow.url,
        fresh_process=True,
    )
    image = os.environ.get("KUBESAGE_SAGEMAKER_TEST_IMAGE")
    run = ["run", "customer_churn", "--runner", "sagemaker-local", "--param", "input_data=build/demo/churn.csv"]
    run += ["--option", f"s3_endpoint_url={moto_endpoint}", "--option", f"endpoint_url={moto_endpoint}"]
    run += ["--image", image] if image else []
    result = run_cli(run, workdir, shared_mlflow.url, fresh_process=True)
    assert result.code == 0, result.stderr[-3000:]
    text = generate.stdout + generate.stderr + result.stderr + result.stdout
    assert len(text.splitlines()) <= 40, text
    # Live and in execution order: each step's start, then its end with its time, before the summary.
    lines = re.findall(r"^ +\S+ (\S+) +(started|succeeded) *(\d+\.\d s)?$", result.stderr, re.MULTILINE)
    steps = [(name, status) for name, status, _ in lines]
    order = [
        (step, status)
        for step in ("preprocess", "train", "evaluate", "register")
        for status in ("started", "succeeded")
    ]
    assert steps == order, text
    assert all(seconds for _, status, seconds in lines if status == "succeeded"), text
    assert "condition-2" not in text, "the gate that passed is no step line"
    assert re.search(r"skipped condition-\d+: condition is false", result.stdout), "the Else branch not taken"
    log = workdir / re.search(r"task logs in (\S+\.log)", text)[1]  # type: ignore[index]
    logged = log.read_text()
    # ... reported as its gate ended. The SDK orders sibling steps through a set of names (PipelineGraph),
    # so the false gate may end before or after register: the console must follow the SDK's own order.
    assert _console_events(result.stderr) == _sdk_events(logged), text
    # "View run register": MLflow's line inside a job's container (the CLI's own parent run prints one too).
    for chatter in ("docker compose file", "INFO", "WARNING", "telemetry", "View run register", "Popping out"):
        assert chatter not in text, chatter
    assert result.stdout.rstrip().splitlines()[-1].startswith("  send it:")
    assert "docker compose file" in logged and "Pipeline step 'register' SUCCEEDED" in logged
    # Every job container carried this run's label, and none of them is left behind.
    labels = set(re.findall(r"io\.kubesage\.local-run: '?(\w+)", logged))
    assert len(labels) == 1, labels
    left = subprocess.run(
        ["docker", "ps", "-a", "--filter", f"label=io.kubesage.local-run={labels.pop()}", "--format", "{{.ID}}"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert left.stdout.split() == []
    # The SDK's own answer, in the process that ran the pipeline: no usage telemetry sent.
    assert "TelemetryOptOut resolved by the SDK: True" in logged


def _console_events(stderr: str) -> list[tuple[str, str]]:
    """The console's step lines in order: (step, started|succeeded|skipped)."""
    return re.findall(r"^ +\S+ (\S+) +(started|succeeded|skipped)\b", stderr, re.MULTILINE)


def _sdk_events(log: str) -> list[tuple[str, str]]:
    """The SDK's step starts and ends as logged, as the console should show them: a gate has no start
    line, the gate that passed no line at all, and the false one (the Else branch, condition-3 in the
    churn pipeline's definition) ends as skipped."""
    events: list[tuple[str, str]] = []
    for started, ended in re.findall(r"Starting pipeline step: '([^']+)'|Pipeline step '([^']+)' SUCCEEDED", log):
        name = started or ended
        if not name.startswith("condition-"):
            events.append((name, "started" if started else "succeeded"))
        elif ended and name != "condition-2":
            events.append((name, "skipped"))
    return events
