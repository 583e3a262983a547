"""The SageMaker compiler: golden definitions, offline compile, and clear rejections.

Golden files live beside the toy pipelines in tests/golden/sagemaker/. Regenerate them on purpose:
    KUBESAGE_REGEN_GOLDEN=1 .venv/bin/pytest tests/unit/runners/sagemaker/test_compiler.py
"""

import importlib.util
import json
import os
import socket
from pathlib import Path
from typing import Any

import pytest
from kfp import compiler, dsl

from kubesage.errors import UnsupportedFeatureError
from kubesage.runners.sagemaker.compiler import CompiledPipeline
from kubesage.runners.sagemaker.config import SageMakerConfig
from tests.paths import TESTS_DIR
from tests.unit.runners.sagemaker.ir_file import compile_file

GOLDEN = TESTS_DIR / "golden" / "sagemaker"
REGEN = os.environ.get("KUBESAGE_REGEN_GOLDEN") == "1"
CONFIG = SageMakerConfig(
    image_uri="123456789012.dkr.ecr.us-east-1.amazonaws.com/kubesage/xgboost-daal4py:1",
    role_arn="arn:aws:iam::123456789012:role/kubesage-sagemaker-execution",
    bucket="kubesage-golden",
    prefix="golden",
    instance_types={"fit-line": "ml.m5.xlarge", "train": "ml.m5.xlarge"},
)


def _load_function(path: Path, name: str) -> Any:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, name)


def _ir(function: Any, tmp_path: Path) -> Path:
    target = tmp_path / "pipeline.yaml"
    compiler.Compiler().compile(function, str(target))
    return target


def _churn_function() -> Any:
    from kubesage.pipelines.customer_churn import customer_churn

    return customer_churn


def _monitor_function() -> Any:
    from kubesage.pipelines.monitor_churn import monitor_churn

    return monitor_churn


CASES = {
    "toy_threshold": (lambda: _load_function(GOLDEN / "toy_threshold.py", "toy_threshold"), CONFIG),
    "toy_words": (lambda: _load_function(GOLDEN / "toy_words.py", "toy_words"), CONFIG),
    "toy_nested": (lambda: _load_function(GOLDEN / "toy_nested.py", "toy_nested"), CONFIG),
    "customer_churn": (
        _churn_function,
        CONFIG.model_copy(update={"data_parameters": ("input_data",), "model_package_group": "customer-churn"}),
    ),
    # The drift check (issue 24): one processing step running the drift component through the shim.
    "monitor_churn": (_monitor_function, CONFIG),
}


def _golden_view(compiled: CompiledPipeline) -> dict[str, Any]:
    return {
        "definition": compiled.definition,
        "assets": {uri: json.loads(body) for uri, body in compiled.assets.items()},
        "explain": compiled.report,
    }


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Any socket connect fails the test: compile must not touch the network."""
    attempts: list[Any] = []

    def refuse(self: socket.socket, address: Any) -> None:
        attempts.append(address)
        raise OSError(f"network access during compile: {address}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    return attempts


@pytest.mark.parametrize("name", sorted(CASES))
def test_compile_matches_golden(name: str, tmp_path: Path, no_network: list[Any]) -> None:
    function, config = CASES[name]
    compiled = compile_file(_ir(function(), tmp_path), config)
    view = json.dumps(_golden_view(compiled), indent=2, sort_keys=True) + "\n"
    golden = GOLDEN / f"{name}.json"
    if REGEN:
        golden.write_text(view, encoding="utf-8")
    assert golden.is_file(), f"missing {golden}; run with KUBESAGE_REGEN_GOLDEN=1"
    assert view == golden.read_text(encoding="utf-8"), f"{name} differs from {golden}"
    assert no_network == []


def test_compile_is_deterministic(tmp_path: Path) -> None:
    ir = _ir(_load_function(GOLDEN / "toy_words.py", "toy_words"), tmp_path)
    first, second = compile_file(ir, CONFIG), compile_file(ir, CONFIG)
    assert first.definition_json() == second.definition_json()
    assert first.assets == second.assets


def test_step_types_and_condition_for_toy_threshold(tmp_path: Path) -> None:
    compiled = compile_file(_ir(_load_function(GOLDEN / "toy_threshold.py", "toy_threshold"), tmp_path), CONFIG)
    steps = {s["Name"]: s for s in compiled.definition["Steps"]}
    assert {n: s["Type"] for n, s in steps.items()} == {
        "make-data": "Processing",
        "fit-line": "Training",
        "score-line": "Processing",
        "condition-1": "Condition",
    }
    train = steps["fit-line"]["Arguments"]
    assert train["ResourceConfig"]["InstanceType"] == "ml.m5.xlarge"
    assert train["AlgorithmSpecification"]["ContainerEntrypoint"][-1] == "kubesage.runners.sagemaker.shim"
    assert steps["fit-line"]["DisplayName"] == "Fit a line"
    (cond,) = steps["condition-1"]["Arguments"]["Conditions"]
    assert cond["Type"] == "GreaterThanOrEqualTo"
    assert cond["LeftValue"]["Std:JsonGet"]["Path"] == "parameters.Output"
    assert cond["RightValue"] == {"Get": "Parameters.min_r2"}
    assert [s["Name"] for s in steps["condition-1"]["Arguments"]["IfSteps"]] == ["publish"]
    params = {p["Name"]: p for p in compiled.definition["Parameters"]}
    assert params["n_rows"] == {"Name": "n_rows", "Type": "Integer", "DefaultValue": 200}
    assert params["shuffle"]["Type"] == "Boolean" and params["shuffle"]["DefaultValue"] is True
    assert params["min_r2"]["Type"] == "Float"
    assert steps["score-line"]["RetryPolicies"][0]["MaxAttempts"] == 2
    # publish disabled caching in the KFP pipeline; make-data kept the default (on)
    assert "CacheConfig" not in steps["condition-1"]["Arguments"]["IfSteps"][0]
    assert steps["make-data"]["CacheConfig"] == {"Enabled": True, "ExpireAfter": "P30D"}


def test_else_and_nested_conditions_for_toy_words(tmp_path: Path) -> None:
    compiled = compile_file(_ir(_load_function(GOLDEN / "toy_words.py", "toy_words"), tmp_path), CONFIG)
    steps = {s["Name"]: s for s in compiled.definition["Steps"]}
    outer = steps["condition-3"]["Arguments"]
    (inner,) = outer["IfSteps"]
    assert inner["Type"] == "Condition"
    assert inner["Arguments"]["Conditions"][0]["Type"] == "Not"
    assert inner["Arguments"]["Conditions"][0]["Condition"]["RightValue"] == "skip"
    else_cond = steps["condition-4"]["Arguments"]["Conditions"][0]
    assert else_cond["Type"] == "Not" and else_cond["Condition"]["Type"] == "GreaterThan"
    assert all(s["Type"] in ("Processing", "Condition") for s in steps.values())


def test_churn_registers_a_model_package(tmp_path: Path) -> None:
    config = CASES["customer_churn"][1]
    compiled = compile_file(_ir(_churn_function(), tmp_path), config)
    params = {p["Name"]: p for p in compiled.definition["Parameters"]}
    assert params["ModelApprovalStatus"]["DefaultValue"] == "PendingManualApproval"
    gate = next(
        s for s in compiled.definition["Steps"] if s["Type"] == "Condition" and s["DisplayName"] == "accuracy-gate"
    )
    reg = next(s for s in gate["Arguments"]["IfSteps"] if s["Type"] == "RegisterModel")
    assert reg["Arguments"]["ModelPackageGroupName"] == "customer-churn"
    assert reg["Arguments"]["ModelApprovalStatus"] == {"Get": "Parameters.ModelApprovalStatus"}
    container = reg["Arguments"]["InferenceSpecification"]["Containers"][0]
    assert container["ModelDataUrl"] == {"Get": "Steps.train.ModelArtifacts.S3ModelArtifacts"}
    local = compile_file(_ir(_churn_function(), tmp_path), config.model_copy(update={"local_mode": True}))
    assert "RegisterModel" not in local.definition_json()
    assert "ModelApprovalStatus" not in {p["Name"] for p in local.definition["Parameters"]}
    # Local mode keeps the step's request for the runner to send after the run: the same request,
    # its approval the parameter's default (local mode has no approval parameter).
    assert local.model_package is not None and local.model_package.task == "register"
    assert local.model_package.request == {**reg["Arguments"], "ModelApprovalStatus": "PendingManualApproval"}
    assert local.model_package_group == local.model_package.group == "customer-churn"
    assert any("the local runner sends the step's CreateModelPackage request itself" in line for line in local.report)
    assert compiled.model_package is None


def test_write_puts_assets_beside_the_definition(tmp_path: Path) -> None:
    compiled = compile_file(_ir(_load_function(GOLDEN / "toy_words.py", "toy_words"), tmp_path), CONFIG)
    written = compiled.write(tmp_path / "out" / "pipeline.json")
    assert json.loads(written[0].read_text()) == compiled.definition
    assert len(written) == 1 + len(compiled.assets)
    assert all(
        (tmp_path / "out" / "pipeline.json.assets")
        .joinpath(w.relative_to(tmp_path / "out" / "pipeline.json.assets"))
        .is_file()
        for w in written[1:]
    )


# ---- rejections ------------------------------------------------------------------------------


@dsl.component(base_image="python:3.11")
def _echo(x: int) -> int:
    return x


@dsl.component(base_image="python:3.11")
def _make_model(model: dsl.Output[dsl.Model]) -> int:
    return 1


@dsl.pipeline(name="loop")
def _loop_with_importer(items: list = [1, 2, 3]) -> None:  # noqa: B006
    with dsl.ParallelFor(items) as item:
        _echo(x=item)
        dsl.importer(artifact_uri="s3://b/k", artifact_class=dsl.Dataset)


@dsl.pipeline(name="exit")
def _exit_with_training() -> None:
    with dsl.ExitHandler(_echo(x=1)):
        _make_model()


@dsl.pipeline(name="importer")
def _importer() -> None:
    dsl.importer(artifact_uri="gs://b/k", artifact_class=dsl.Dataset)


@dsl.pipeline(name="trainparam")
def _training_output_in_condition() -> None:
    made = _make_model()
    with dsl.If(made.outputs["Output"] > 0):
        _echo(x=1)


@pytest.mark.parametrize(
    ("function", "message"),
    [
        (_loop_with_importer, r"task 'for-loop-\d+': a runtime dsl.ParallelFor whose body holds 'importer'"),
        (_exit_with_training, r"a training task inside dsl.ExitHandler"),
        (_importer, r"task 'importer': dsl.importer of 'gs://b/k'"),
        (_training_output_in_condition, r"output parameter of training task 'make-model'"),
    ],
    ids=[
        "importer-in-runtime-parallel-for",
        "training-in-exit-handler",
        "gcs-importer",
        "training-output-in-condition",
    ],
)
def test_unsupported_features_fail_naming_task_and_feature(function: Any, message: str, tmp_path: Path) -> None:
    with pytest.raises(UnsupportedFeatureError, match=message):
        compile_file(_ir(function, tmp_path), CONFIG)


def test_unknown_register_task_and_bad_bucket(tmp_path: Path) -> None:
    ir = _ir(_load_function(GOLDEN / "toy_words.py", "toy_words"), tmp_path)
    with pytest.raises(UnsupportedFeatureError, match="register task 'nope' is not a task"):
        compile_file(ir, CONFIG.model_copy(update={"register_task": "nope"}))
    with pytest.raises(ValueError, match="not a valid S3 bucket name"):
        SageMakerConfig(bucket="Bad_Bucket")


def test_compile_flags_reach_the_written_definition(tmp_path: Path) -> None:
    """`kubesage compile --image/--bucket/--region` become config fields; `write` puts them on disk."""
    ir = _ir(_load_function(GOLDEN / "toy_words.py", "toy_words"), tmp_path)
    config = SageMakerConfig(image_uri="img:9", bucket="my-bucket", region="eu-west-1")
    compiled = compile_file(ir, config)
    written = compiled.write(tmp_path / "p.json")
    text = (tmp_path / "p.json").read_text()
    assert '"ImageUri": "img:9"' in text
    assert all(uri.startswith("s3://my-bucket/kubesage/kubesage-toy-words/specs/") for uri in compiled.assets)
    assert written[1:] == [tmp_path / "p.json.assets" / uri.removeprefix("s3://") for uri in sorted(compiled.assets)]
    with pytest.raises(ValueError, match="is not an IAM role ARN"):
        SageMakerConfig(role_arn="my-role")


def _json_get_step(value: dict[str, Any]) -> str:
    """The step a JsonGet (possibly inside a Join, as in container arguments) reads."""
    get = value["Std:Join"]["Values"][0] if "Std:Join" in value else value
    return str(get["Std:JsonGet"]["PropertyFile"]["Get"].split(".")[1])


def test_inlined_sub_pipelines_unrolled_loop_json_parameters_and_importer(tmp_path: Path) -> None:
    compiled = compile_file(_ir(_load_function(GOLDEN / "toy_nested.py", "toy_nested"), tmp_path), CONFIG)
    steps = {s["Name"]: s for s in compiled.definition["Steps"]}
    # two copies of the sub-pipeline, each with its own ConditionStep; three loop iterations; no importer step
    assert set(steps) == {
        "scaled-twice-scale",
        "scaled-twice-condition-1",
        "scaled-twice-2-scale",
        "scaled-twice-2-condition-1",
        "for-loop-2-0-scale",
        "for-loop-2-1-scale",
        "for-loop-2-2-scale",
        "add-all",
        "condition-3",
    }
    inner = steps["scaled-twice-2-condition-1"]["Arguments"]
    assert [s["Name"] for s in inner["IfSteps"]] == ["scaled-twice-2-scale-2"]
    assert _json_get_step(inner["Conditions"][0]["LeftValue"]) == "scaled-twice-2-scale"
    # the second copy reads the first copy's output (the sub-pipeline's output is its inner task's)
    second = steps["scaled-twice-2-scale"]["Arguments"]["AppSpecification"]["ContainerArguments"]
    x = second[second.index("x") + 1]
    assert _json_get_step(x) == "scaled-twice-scale"
    # dsl.Collected: one --param-item per iteration, in item order, typed like the producer's output
    args = steps["add-all"]["Arguments"]["AppSpecification"]["ContainerArguments"]
    items = [i for i, a in enumerate(args) if a == "--param-item"]
    assert [args[i + 1] for i in items] == ["xs"] * 3
    assert [args[i + 2] for i in items] == ["NUMBER_INTEGER"] * 3
    producers = [_json_get_step(args[i + 3]) for i in items]
    assert producers == ["for-loop-2-0-scale", "for-loop-2-1-scale", "for-loop-2-2-scale"]
    # a dict parameter is a string parameter holding JSON
    params = {p["Name"]: p for p in compiled.definition["Parameters"]}
    # (KFP stores dict defaults as protobuf Structs: numbers come back as floats, as KFP passes them)
    assert params["weights"] == {"Name": "weights", "Type": "String", "DefaultValue": '{"0": 1.0, "1": 10.0}'}
    # the non-ASCII literal reaches the condition unmangled
    (cond,) = steps["condition-3"]["Arguments"]["Conditions"]
    assert cond["RightValue"] == "Zürich"
    # the importer's S3 URI is the input of the step that reads it; the shim opens rows.csv in it
    (describe,) = steps["condition-3"]["Arguments"]["IfSteps"]
    inputs = {i["InputName"]: i for i in describe["Arguments"]["ProcessingInputs"]}
    assert inputs["data"]["S3Input"]["S3Uri"] == "s3://kubesage-golden/toy/rows.csv"
    spec = next(json.loads(b) for u, b in compiled.assets.items() if u.endswith("/describe.json"))
    assert spec["input_artifacts"]["data"]["file"] == "rows.csv"
    report = compiled.explain()
    assert "sub-pipeline 'scaled-twice-2' (comp-scaled-twice-2) -> inlined, prefix 'scaled-twice-2-'" in report
    assert "dsl.importer 'importer' (s3://kubesage-golden/toy/rows.csv) -> no step" in report


def test_training_on_two_instances_shards_the_train_channel_only(tmp_path: Path) -> None:
    config = CASES["customer_churn"][1].model_copy(update={"instance_counts": {"train": 2}})
    compiled = compile_file(_ir(_churn_function(), tmp_path), config)
    train = next(s for s in compiled.definition["Steps"] if s["Name"] == "train")
    assert train["Arguments"]["ResourceConfig"]["InstanceCount"] == 2
    channels = {
        c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3DataDistributionType"]
        for c in train["Arguments"]["InputDataConfig"]
    }
    assert channels.pop("train_data") == "ShardedByS3Key"
    assert set(channels.values()) == {"FullyReplicated"}
    # The one option also sets preprocess's shard count: a constant in its (hash-pinned) task spec.
    assert _spec(compiled, "preprocess")["constants"] == {"train_shards": 2}
    assert (
        "task 'train' on 2 instances: input 'train_data' -> ShardedByS3Key: each instance downloads about 1/n of "
        "its objects; task 'preprocess' gets train_shards=2 (a constant: it writes 'train' as 2 files)"
    ) in compiled.report
    one = compile_file(_ir(_churn_function(), tmp_path), CASES["customer_churn"][1])
    assert "ShardedByS3Key" not in one.definition_json()
    assert _spec(one, "preprocess")["constants"] == {}


def _spec(compiled: CompiledPipeline, task: str) -> dict[str, Any]:
    return next(json.loads(b) for u, b in compiled.assets.items() if u.endswith(f"/{task}.json"))


@pytest.mark.parametrize(
    ("pipeline", "update", "message"),
    [
        (
            "customer_churn",
            {"instance_counts": {"preprocess": 2}},
            "task 'preprocess' on 2 instances: it runs as a processing job",
        ),
        (
            "customer_churn",
            {"instance_counts": {"trian": 2}},
            r"instance_counts names \['trian'\], not tasks of pipeline",
        ),
        (
            "toy_threshold",
            {"instance_counts": {"fit-line": 2}, "sharded_inputs": ("data",)},
            "task 'make-data' writes 'data' as one object and has no integer input 'data_shards'",
        ),
    ],
    ids=["processing-task", "unknown-task", "producer-cannot-shard"],
)
def test_what_cannot_run_on_several_instances_is_refused(
    pipeline: str, update: dict[str, Any], message: str, tmp_path: Path
) -> None:
    function, config = CASES[pipeline]
    with pytest.raises(UnsupportedFeatureError, match=message):
        compile_file(_ir(function(), tmp_path), config.model_copy(update=update))


def test_local_mode_puts_the_hosts_tracker_on_loopback(tmp_path: Path) -> None:
    update = {"instance_counts": {"train": 2}, "local_mode": True}
    compiled = compile_file(_ir(_churn_function(), tmp_path), CASES["customer_churn"][1].model_copy(update=update))
    train = next(s for s in compiled.definition["Steps"] if s["Name"] == "train")["Arguments"]
    assert {c["DataSource"]["S3DataSource"]["S3DataDistributionType"] for c in train["InputDataConfig"]} == {
        "FullyReplicated"
    }
    assert train["Environment"]["KUBESAGE_TRACKER_HOST"] == "127.0.0.1"
    assert int(train["Environment"]["KUBESAGE_TRACKER_PORT"]) > 0
    assert _spec(compiled, "preprocess")["constants"] == {"train_shards": 2}


def test_a_refused_instance_count_fails_before_a_run_is_recorded(tmp_path: Path) -> None:
    from kubesage.runners.registry import get_runner, load_pipeline

    source = load_pipeline("customer_churn", tmp_path)
    runner = get_runner("sagemaker-local", {"instance_counts": {"preprocess": 2}})
    # check_parameters runs before the runner's preflight and the MLflow parent run (runners/base.py)
    with pytest.raises(UnsupportedFeatureError, match="task 'preprocess' on 2 instances: it runs as a processing"):
        runner.check_parameters(source, {"input_data": "churn.csv"})
