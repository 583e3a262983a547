"""The public Python API (kubesage.sdk, forwarded by `import kubesage`): the CLI's behaviour and errors,
from Python. Refusals are checked against a store that must stay empty; one run of a tiny pipeline
(a function object, the case only Python has) shows a run end to end on the local runner."""

# No `from __future__ import annotations`: KFP reads the component annotations as types.

import json
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from kfp import dsl

import kubesage
from kubesage import sdk
from kubesage.errors import DataError, ParameterError, PipelineNotFoundError, RunnerError
from kubesage.runners.registry import runner_specs
from kubesage.tracking import finish_pipeline_run, start_pipeline_run
from tests.paths import REPO_ROOT


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def double(x: int) -> int:
    return 2 * x


@dsl.pipeline(name="tiny-doubling")
def tiny(x: int = 3) -> None:
    double(x=x)


def test_import_kubesage_stays_cheap_and_forwards_the_public_names() -> None:
    """The Lambda zip carries kubesage/__init__.py: importing it must import nothing heavy."""
    code = "import sys, kubesage; print(sorted(m for m in sys.modules if m.startswith('kubesage')))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(done.stdout.replace("'", '"')) == ["kubesage"]
    assert kubesage.__all__ == sdk.__all__
    for name in kubesage.__all__:
        assert getattr(kubesage, name) is getattr(sdk, name)
    assert set(kubesage.__all__) <= set(dir(kubesage))
    with pytest.raises(AttributeError, match="no attribute 'api'"):
        kubesage.api  # noqa: B018 - the old name of the Lambda package is not the API


def test_runners_come_from_the_registry() -> None:
    described = kubesage.list_runners()
    assert [r["name"] for r in described] == list(runner_specs())
    sagemaker = next(r for r in described if r["name"] == "sagemaker")
    assert {"role_arn", "bucket", "image_uri", "region"} <= {o["name"] for o in sagemaker["options"]}


def test_refusals_are_the_clis_errors_and_record_nothing(mlflow_sqlite_unopened: str, tmp_path: Path) -> None:
    store = Path(mlflow_sqlite_unopened.removeprefix("sqlite:///"))
    with pytest.raises(ParameterError, match="unknown pipeline parameter 'max_dept' \\(did you mean 'max_depth'\\?\\)"):
        kubesage.run("customer_churn", params={"max_dept": 3}, workdir=tmp_path / "ir")
    with pytest.raises(DataError, match="input_data"):
        kubesage.run("customer-churn", params={"input_data": tmp_path / "missing.csv"})
    with pytest.raises(RunnerError, match="unknown runner 'locl' \\(did you mean 'local'\\?\\)"):
        kubesage.run("customer_churn", runner="locl")
    with pytest.raises(ParameterError, match="the local runner has no option|invalid local runner option"):
        kubesage.run("customer_churn", options={"max_paralel": 2})
    with pytest.raises(PipelineNotFoundError, match="42 is not a pipeline: pass a @dsl.pipeline function"):
        kubesage.run(42)
    assert not store.exists()


def test_compile_takes_a_function_and_names_the_placeholders(tmp_path: Path) -> None:
    ir = kubesage.compile(tiny, output=tmp_path / "tiny.yaml", workdir=tmp_path / "work")
    assert ir.path == tmp_path / "tiny.yaml" and ir.explanation is None and ir.placeholders == []
    spec = yaml.safe_load(ir.path.read_text())
    assert spec["pipelineInfo"]["name"] == "tiny-doubling"
    assert spec["root"]["inputDefinitions"]["parameters"]["x"]["defaultValue"] == 3

    definition = kubesage.compile(
        ir.path, target="sagemaker", output=tmp_path / "tiny.json", options={"bucket": "mine"}, explain=True
    )
    assert json.loads(definition.path.read_text())["Steps"]
    assert definition.explanation and "double" in definition.explanation
    assert {name for name, _, _ in definition.placeholders} == {"image_uri", "role_arn"}
    assert dict((name, flag) for name, _, flag in definition.placeholders)["role_arn"] == "--role"
    with pytest.raises(RunnerError, match="unknown target 'argo'; available: kfp, sagemaker"):
        kubesage.compile(tiny, target="argo", output=tmp_path / "x")


def test_runs_is_a_dataframe_shaped_like_mlflow_search_runs(mlflow_sqlite: str) -> None:
    ids = []
    for depth, auc in (("4", 0.91), ("6", 0.93)):
        run = start_pipeline_run("customer-churn", "local", {"max_depth": depth, "seed": "42"})
        from kubesage.tracking import mlflow_client

        mlflow_client(run.tracking_uri).log_metric(run.run_id, "roc_auc", auc)
        finish_pipeline_run(run, "FINISHED", None)
        ids.append(run.run_id)
    other = start_pipeline_run("sensor-alerts", "local", {"threshold": "2.5"})
    finish_pipeline_run(other, "FINISHED", None)

    frame = kubesage.runs(pipeline="customer_churn")
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.columns[:6]) == ["run_id", "start_time", "pipeline", "runner", "status", "registered_model"]
    assert list(frame["run_id"]) == ids[::-1]  # newest first, the other pipeline left out
    assert list(frame["metrics.roc_auc"]) == [0.93, 0.91]
    assert list(frame["params.max_depth"]) == ["6", "4"]
    assert set(frame["status"]) == {"FINISHED"}

    compared = kubesage.runs(run_ids=[ids[0][:8], ids[1]])
    assert list(compared["run_id"]) == ids
    with pytest.raises(ParameterError, match="no kubesage pipeline run with id 'ffffffff'"):
        kubesage.runs(run_ids=["ffffffff"])
    assert kubesage.runs(pipeline="no-such-pipeline").empty


@pytest.mark.integration
def test_a_pipeline_function_runs_on_the_local_runner(mlflow_sqlite: str, tmp_path: Path) -> None:
    lines: list[str] = []
    result = kubesage.run(tiny, params={"x": "5"}, progress=lines.append, workdir=tmp_path / "ir")
    assert isinstance(result, kubesage.RunResult)
    assert result.succeeded and result.pipeline == "tiny-doubling" and result.runner == "local"
    assert result.tasks_run == 1
    assert any(line.startswith("step double succeeded") for line in lines)
    frame = kubesage.runs(pipeline="tiny-doubling")
    assert list(frame["run_id"]) == [result.mlflow_run_id]
    assert frame["params.x"].tolist() == ["5"]


def test_the_docs_api_reference_covers_every_public_name_and_every_picture_exists() -> None:
    site = REPO_ROOT / "docs" / "site"
    page = (site / "python-api.md").read_text()
    documented = set(re.findall(r"^\s+- (\w+)$", page, re.M)) | set(re.findall(r"^::: [\w.]+\.(\w+)$", page, re.M))
    assert set(kubesage.__all__) - documented == set()
    pictures = [m for path in site.glob("*.md") for m in re.findall(r"\]\((img/[^)]+)\)", path.read_text())]
    assert {"img/runs-table.png", "img/compare-runs.png", "img/roc_curve.png"} <= set(pictures)
    assert [p for p in pictures if not (site / p).is_file()] == []
