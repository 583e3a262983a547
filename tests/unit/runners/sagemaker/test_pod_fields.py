"""kfp-kubernetes use_field_path_as_env on SageMaker: the values the definition holds (labels and annotations
the task sets, empty for one it does not), and the job's name the shim sets for metadata.name at start."""

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from kfp import compiler, dsl, kubernetes

from kubesage.errors import RunnerError
from kubesage.runners.sagemaker import pod_fields, shim
from kubesage.runners.sagemaker.compiler import CompiledPipeline
from kubesage.runners.sagemaker.config import SageMakerConfig
from kubesage.runners.sagemaker.integrity import spec_bytes, spec_digest
from tests.corpus.sagemaker import kubernetes as corpus
from tests.unit.runners.sagemaker.ir_file import compile_file


def _compiled(pipeline: Any, tmp_path: Path) -> CompiledPipeline:
    ir = tmp_path / "p.yaml"
    compiler.Compiler().compile(pipeline, str(ir))
    return compile_file(ir, SageMakerConfig(bucket="kubesage-corpus"))


def test_the_definition_holds_the_tasks_labels_and_names_the_job_name_variables(tmp_path: Path) -> None:
    compiled = _compiled(corpus.k8s_pod_metadata_env, tmp_path)
    (step,) = compiled.definition["Steps"]
    env = step["Arguments"]["Environment"]
    assert (env["TEAM"], env["OWNER"], env["NOT_SET"]) == ("ml", "kubesage", "")
    assert json.loads(env["KUBESAGE_JOB_NAME_ENV"]) == ["POD_NAME"]
    assert "POD_NAME" not in env  # known only when the job runs


def test_the_job_name_comes_from_the_training_environment_or_the_processing_config(tmp_path: Path) -> None:
    wanted = {pod_fields.ENV_JOB_NAME_ENV: '["POD_NAME","ME"]'}
    training = {**wanted, "TRAINING_JOB_NAME": "pipelines-abc-train-1"}
    assert pod_fields.resolve_environment(training, tmp_path / "none.json") == {
        "POD_NAME": "pipelines-abc-train-1",
        "ME": "pipelines-abc-train-1",
    }
    config = tmp_path / "processingjobconfig.json"
    config.write_text(json.dumps({"ProcessingJobName": "pipelines-abc-say-2", "Environment": {}}))
    assert pod_fields.resolve_environment(wanted, config) == {
        "POD_NAME": "pipelines-abc-say-2",
        "ME": "pipelines-abc-say-2",
    }
    assert pod_fields.resolve_environment({}, config) == {}
    with pytest.raises(RunnerError, match="cannot find this job's name .* no TRAINING_JOB_NAME"):
        pod_fields.resolve_environment(wanted, tmp_path / "none.json")


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def whoami() -> str:
    import os

    return f"{os.environ['POD_NAME']}|{os.environ['TEAM']}"


@dsl.pipeline(name="whoami")
def who() -> None:
    task = whoami()
    kubernetes.add_pod_label(task, "team", "ml")
    kubernetes.use_field_path_as_env(task, "TEAM", "metadata.labels['team']")
    kubernetes.use_field_path_as_env(task, "POD_NAME", "metadata.name")


def test_the_shim_gives_the_task_the_job_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    compiled = _compiled(who, tmp_path)
    (step,) = compiled.definition["Steps"]
    for name, value in step["Arguments"]["Environment"].items():
        if isinstance(value, str):
            monkeypatch.setenv(name, value)
    monkeypatch.setenv("TRAINING_JOB_NAME", "pipelines-e1-whoami-x")
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("KUBESAGE_STEP_USER", "root")
    root = str(tmp_path / "opt-ml")
    (task,) = [json.loads(b.decode().replace("/opt/ml", root)) for b in compiled.assets.values()]
    spec_dir = tmp_path / "spec"
    spec_dir.mkdir()
    body = spec_bytes(task)
    (spec_dir / "whoami.json").write_bytes(body)
    argv = ["--task", "whoami", "--spec-dir", str(spec_dir), "--spec-sha256", spec_digest(body)]
    assert shim.main([*argv, "--workdir", str(tmp_path / "w")]) == 0
    outputs = tmp_path / "opt-ml" / "processing" / "output" / "kubesage-outputs" / "outputs.json"
    assert json.loads(outputs.read_text())["parameters"] == {"Output": "pipelines-e1-whoami-x|ml"}
