"""The compiled churn pipeline with its train task on 2 instances, in SageMaker local mode (issue 20).

One option, `instance_counts={"train": 2}`, makes the train step a 2-instance training job and sets
preprocess's `train_shards` to 2 in the compiled definition; the train component on each host joins
XGBoost's collective and trains on its own part file. Local mode mounts the whole train channel on
both hosts (it refuses ShardedByS3Key), so each takes the file at its rank. S3 is moto in server mode,
MLflow the session's server; the single-instance run it compares with is the compliance suite's own
sagemaker-local run (same data, seed and code), reused, not run again.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow import MlflowClient

from kubesage.ir.source import PipelineSource
from tests.compliance.conftest import SEED, CompletedRun, RunnerCase
from tests.mlflow_server import MlflowServer

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.container]


@pytest.mark.parametrize("case", ["sagemaker-local"], indirect=True)
def test_churn_pipeline_trains_one_model_on_two_instances(
    case: RunnerCase,
    churn_run: CompletedRun,
    churn_pipeline: PipelineSource,
    churn_csv: Path,
    compliance_mlflow: MlflowServer,
) -> None:
    two = RunnerCase(case.name, {**case.options, "instance_counts": {"train": 2}}, case.env)
    # Its own model name: the registry's customer-churn versions stay the compliance runs'.
    params = {"input_data": str(churn_csv), "seed": SEED, "model_name": "customer-churn-2-instances"}
    result = two.run(churn_pipeline, params, compliance_mlflow.url)
    assert result.succeeded, result.failure

    client = MlflowClient(tracking_uri=compliance_mlflow.url)
    parent = client.get_run(result.mlflow_run_id)
    children = client.search_runs(
        [parent.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
    )
    # One step run per step: the second host trained but did not open a run of its own.
    by_step = {c.data.tags["kubesage.step"]: c for c in children}
    assert sorted(c.data.tags["kubesage.step"] for c in children) == ["evaluate", "preprocess", "register", "train"]
    assert {c.info.status for c in children} == {"FINISHED"}
    assert by_step["preprocess"].data.params["train_shards"] == "2"
    train = by_step["train"].data
    assert train.params["instance_count"] == "2" and train.metrics["instance_count"] == 2
    shard_rows = {
        name.removeprefix("shard_rows_"): n for name, n in train.metrics.items() if name.startswith("shard_rows_")
    }
    hosts = sorted(shard_rows)
    assert len(hosts) == 2 and hosts[0].startswith("algo-1-") and hosts[1].startswith("algo-2-")
    # Different shards: preprocess's two part files, one per host, together the whole train split.
    assert min(shard_rows.values()) > 0
    assert sum(shard_rows.values()) == by_step["preprocess"].data.metrics["rows_train"] == 3500

    # The evaluate step scores the test split through daal4py: the model loads and predicts there.
    alone = churn_run.result.metrics["roc_auc"]
    assert abs(result.metrics["roc_auc"] - alone) <= 0.005, (result.metrics["roc_auc"], alone)
    assert result.registered_model_name == "customer-churn-2-instances" and result.registered_model_version
