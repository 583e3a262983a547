"""`kubesage run customer_churn --runner kfp` with every task in the kubesage image, without a cluster.

The KFP API stand-in with `DockerPods` (tests/standins/kfp_api.py) runs each task of the submitted IR
as a pod runs its container spec: kfp.local's DockerRunner starts the spec's image with the spec's
command and env (the MLflow hand-off the runner wrote into the IR) and nothing of this process's env.
One run proves our IR, our image and the tracking hand-off together, through the runner's protocol.

Networking: the CLI hands the tasks its own tracking URI, the session's `mlflow server` on
127.0.0.1. The containers share the host's network namespace (`network_mode="host"`), so that
loopback address is the same server inside them: the stand-in's version of what a cluster needs, a
tracking URI both the CLI and the pods reach. Artifacts go through the server's artifact proxy, so
the containers need no store of their own. The churn data's folder is mounted read-only at the same
path (a cluster's volume, `minikube mount`); the pipeline root, which DockerRunner mounts at the same
path, carries artifacts from one task's container to the next, as a cluster's object store does.

Evidence that each task ran in the image comes from the task: the image sets KUBESAGE_IMAGE_REVISION
(its build's git commit, Dockerfile) and every step records it on its MLflow run
(`kubesage.image_revision`); a step outside the image has no such variable, so none of the local
run's steps has the tag.

The local run compared with is the compliance suite's (`shared_churn_run`): this module joins that
suite's xdist group, so the run is made once per worker process, whichever suite asks first.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from mlflow import MlflowClient

from kubesage.churn.modelio import MODEL_FILENAME
from kubesage.components.evaluate import evaluate_model
from kubesage.runners.base import RunResult
from kubesage.runners.registry import load_pipeline
from kubesage.tracking import TAG_IMAGE_REVISION, TAG_REGISTERED_VERSION, TAG_RUNNER, TAG_STEP
from tests.compliance.conftest import CASE_BUILDERS, SEED, shared_churn_run
from tests.integration.cli_helpers import run_cli
from tests.mlflow_server import MlflowServer
from tests.standins.kfp_api import KfpStandin

pytestmark = [pytest.mark.container, pytest.mark.xdist_group("compliance-local")]

STEPS = ["preprocess", "train", "evaluate", "register"]


@pytest.fixture(scope="module")
def local_run(
    request: pytest.FixtureRequest,
    churn_csv: Path,
    shared_mlflow: MlflowServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> RunResult:
    """The local runner's run of the churn pipeline on the same data and seed (the compliance suite's)."""
    case = CASE_BUILDERS["local"](request, tmp_path_factory.mktemp("case-local"))
    pipeline = load_pipeline("customer_churn", tmp_path_factory.mktemp("ir"))
    run = shared_churn_run(case, pipeline, churn_csv, shared_mlflow.url)
    assert run.result.succeeded, run.result.failure
    return run.result


@pytest.fixture(scope="module")
def kfp_run(
    image: str,
    kfp_docker_standin: KfpStandin,
    shared_mlflow: MlflowServer,
    churn_csv: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, Any]:
    """The CLI's `--output json` of one kfp run whose tasks ran in the image."""
    args = ["run", "customer_churn", "--runner", "kfp", "--image", image]
    args += ["--option", f"host={kfp_docker_standin.url}", "--option", "poll_seconds=0.5"]
    args += ["--param", f"input_data={churn_csv}", "--param", f"seed={SEED}", "--output", "json"]
    result = run_cli(args, tmp_path_factory.mktemp("kfp-docker-run"), shared_mlflow.url)
    assert result.code == 0, result.stderr[-3000:]
    data: dict[str, Any] = result.json
    return data


def step_runs(client: MlflowClient, parent_run_id: str) -> dict[str, Any]:
    parent = client.get_run(parent_run_id)
    children = client.search_runs(
        [parent.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent_run_id}'"
    )
    return {c.data.tags[TAG_STEP]: c for c in children}


def test_the_run_in_the_image_has_the_local_runs_metrics(kfp_run: dict[str, Any], local_run: RunResult) -> None:
    assert kfp_run["status"] == "succeeded" and kfp_run["runner"] == "kfp", kfp_run.get("failure")
    assert kfp_run["metrics"].keys() == local_run.metrics.keys() and {"accuracy", "roc_auc"} <= local_run.metrics.keys()
    for name, value in local_run.metrics.items():
        assert kfp_run["metrics"][name] == pytest.approx(value, rel=1e-9), name
    assert kfp_run["metrics"]["roc_auc"] >= 0.95
    assert [s["name"] for s in kfp_run["steps"]] == STEPS and {s["status"] for s in kfp_run["steps"]} == {"succeeded"}
    assert kfp_run["registered_model_name"] == "customer-churn" and kfp_run["registered_model_version"]


def test_every_task_ran_in_the_image(
    kfp_run: dict[str, Any],
    local_run: RunResult,
    image: str,
    image_config: dict[str, Any],
    kfp_docker_standin: KfpStandin,
    shared_mlflow: MlflowServer,
) -> None:
    revision = image_config["Config"]["Labels"]["org.opencontainers.image.revision"]
    client = MlflowClient(tracking_uri=shared_mlflow.url)
    steps = step_runs(client, kfp_run["mlflow_run_id"])
    assert sorted(steps) == sorted(STEPS)
    for step, run in steps.items():
        assert run.info.status == "FINISHED", step
        assert run.data.tags[TAG_RUNNER] == "kfp", step  # from the IR's env: the hand-off reached the container
        assert run.data.tags.get(TAG_IMAGE_REVISION) == revision, step  # from the image's env, seen by the step
    local_steps = step_runs(client, str(local_run.mlflow_run_id))
    assert sorted(local_steps) == sorted(STEPS)
    assert not [s for s, r in local_steps.items() if TAG_IMAGE_REVISION in r.data.tags]  # the host has no image env
    parent = client.get_run(kfp_run["mlflow_run_id"])
    assert parent.data.tags[TAG_REGISTERED_VERSION] == kfp_run["registered_model_version"]
    # What the containers were started from: the IR as submitted, the image on every executor, and no
    # package install at start (tasks need nothing but the image).
    submitted = kfp_docker_standin.runs[kfp_run["backend_id"]].spec
    for executor in submitted["deploymentSpec"]["executors"].values():
        container = executor["container"]
        assert container["image"] == image
        assert "pip install" not in " ".join(container.get("command", []) + container.get("args", []))


def test_the_artifacts_one_container_wrote_are_what_the_next_one_read(
    kfp_run: dict[str, Any],
    kfp_docker_standin: KfpStandin,
) -> None:
    """The train task's model and preprocess's test split, as the containers left them on the pipeline
    root, give exactly the metrics the evaluate task's container reported."""
    outputs = kfp_docker_standin.runs[kfp_run["backend_id"]].run_dir / "outputs"
    (model_file,) = sorted(outputs.glob(f"*/train/model/{MODEL_FILENAME}"))
    (test_csv,) = sorted(outputs.glob("*/preprocess/test"))
    metrics = evaluate_model(test_csv, model_file.parent).metrics
    for name in ("accuracy", "roc_auc"):
        assert metrics[name] == pytest.approx(kfp_run["metrics"][name], rel=1e-9), name
