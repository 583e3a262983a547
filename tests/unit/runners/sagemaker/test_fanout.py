# Component bodies ship to the task as source text; they stay with open on purpose.
# ruff: noqa: PTH123
"""A runtime dsl.ParallelFor compiled to one fan-out step, run for real through the shim (no Docker).

The pipeline is compiled, the fan-out step's task spec is taken from the compiled assets (with
SageMaker's /opt/ml remapped to tmp), and `shim.main` runs it with the items a JsonGet would give:
the body (a chain of two tasks) runs once per item, the gathered outputs are what dsl.Collected
gives the consumer, and a failing item fails the step with its index named.
"""

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from kfp import dsl
from kfp.dsl import Dataset, Input, Output

from kubesage.runners.sagemaker.integrity import spec_bytes, spec_digest
from kubesage.runners.sagemaker.shim_fanout import as_declared, item_field, loop_items, workers
from tests.unit.runners.sagemaker.ir_file import run_task, task_specs


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def rows(n: int, data: Output[Dataset]) -> None:
    if n < 0:
        raise ValueError(f"no rows for {n}")
    with open(data.path, "w") as fh:
        fh.write("".join(f"{i}\n" for i in range(n)))


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def lines(data: Input[Dataset], scale: int) -> int:
    return len(open(data.path).read().splitlines()) * scale


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def add_up(xs: list) -> int:
    return sum(xs)


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def count_files(datasets: Input[list[Dataset]]) -> str:
    return ",".join(str(len(open(d.path).read().splitlines())) for d in datasets)


@dsl.pipeline(name="fan-out-chain")
def fan_out_chain(sizes: list = [1, 2, 3], scale: int = 10) -> None:  # noqa: B006
    with dsl.ParallelFor(sizes, parallelism=2) as n:
        made = rows(n=n)
        counted = lines(data=made.outputs["data"], scale=scale)
    add_up(xs=dsl.Collected(counted.output))
    count_files(datasets=dsl.Collected(made.outputs["data"]))


def _specs(tmp_path: Path) -> dict[str, dict[str, Any]]:
    return task_specs(fan_out_chain, tmp_path)


@pytest.fixture(autouse=True)
def venv_python_first(monkeypatch: pytest.MonkeyPatch) -> None:
    # The component command calls `python3`; make it this interpreter (kfp installed), as in the image.
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("KUBESAGE_STEP_USER", "root")  # run as whoever runs the tests


def test_the_compiled_fan_out_spec_names_the_body_chain_and_what_it_gathers(tmp_path: Path) -> None:
    spec = _specs(tmp_path)["for-loop-1"]["fan_out"]
    body = spec["body"]
    assert [(m["kind"], m["task"]) for m in body["members"]] == [("task", "rows"), ("task", "lines")]
    assert spec["parallelism"] == 2
    assert spec["collected"] == {"lines__Output": "pipelinechannel--lines-Output"}
    assert spec["collected_artifacts"] == {"rows-data": "pipelinechannel--rows-data"}
    assert spec["artifact_files"] == {"rows-data": "data"}
    # the loop's own inputs: the item, and an outer parameter the step gets as --param scale
    assert body["inputs"] == {
        "pipelinechannel--sizes-loop-item": {"item": None},
        "pipelinechannel--scale": {"param": "scale"},
    }
    assert body["members"][0]["inputs"] == {"n": {"input": "pipelinechannel--sizes-loop-item", "field": None}}
    assert body["members"][1]["inputs"] == {"scale": {"input": "pipelinechannel--scale", "field": None}}
    assert body["members"][1]["artifacts"] == {"data": {"task": "rows", "output": "data"}}


def test_runtime_loop_runs_each_item_and_gathers_as_collected_expects(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    specs = _specs(tmp_path)
    ml = tmp_path / "opt-ml" / "processing"
    spec_dir = ml / "input" / "kubesage-spec"
    code = run_task(specs["for-loop-1"], spec_dir, tmp_path / "w", "--param", "kubesage-items", "[3, 1, 2]",
                "--param", "scale", "10")  # fmt: skip
    assert code == 0, capsys.readouterr().err
    assert "3 items, up to 2 at once" in capsys.readouterr().out
    outputs = json.loads((ml / "output" / "kubesage-outputs" / "outputs.json").read_text())
    assert outputs["items"] == 3
    assert json.loads(outputs["parameters"]["lines__Output"]) == [30, 10, 20]  # item order, not finish order
    folder = ml / "output" / "rows-data"
    assert [(folder / str(i) / "data").read_text().count("\n") for i in range(3)] == [3, 1, 2]

    # the consumer of dsl.Collected(counted.output) gets the list through JsonGet, as text
    assert (
        run_task(specs["add-up"], spec_dir, tmp_path / "w2", "--param", "xs", outputs["parameters"]["lines__Output"])
        == 0
    )
    summed = json.loads((ml / "output" / "kubesage-outputs" / "outputs.json").read_text())
    assert summed["parameters"]["Output"] == 60

    # the consumer of dsl.Collected(made.outputs["data"]) gets the folder as a list of paths, in item order
    channel = ml / "input" / "datasets"
    for i in (0, 1, 2):
        (channel / str(i)).mkdir(parents=True)
        (channel / str(i) / "data").write_text((folder / str(i) / "data").read_text())
    assert specs["count-files"]["input_artifacts"]["datasets"]["list"] is True
    assert run_task(specs["count-files"], spec_dir, tmp_path / "w3") == 0
    counted = json.loads((ml / "output" / "kubesage-outputs" / "outputs.json").read_text())
    assert counted["parameters"]["Output"] == "3,1,2"


def test_failed_items_fail_the_step_naming_each_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    specs = _specs(tmp_path)
    ml = tmp_path / "opt-ml" / "processing"
    code = run_task(specs["for-loop-1"], ml / "input" / "kubesage-spec", tmp_path / "w", "--param", "kubesage-items",
                "[2, -1, 1, -5]", "--param", "scale", "1")  # fmt: skip
    assert code == 1
    err = capsys.readouterr().err
    assert (
        "fan-out 'for-loop-1': 2 of 4 items failed: item 1 (-1): task 'rows' exited with 1; "
        "item 3 (-5): task 'rows' exited with 1"
    ) in err
    assert not (ml / "output" / "kubesage-outputs" / "outputs.json").exists()
    # the items that succeeded still ran their whole chain
    executor_output = json.loads((tmp_path / "w" / "items" / "2" / "lines" / "executor_output.json").read_text())
    assert executor_output["parameterValues"] == {"Output": 1}


def test_an_empty_list_runs_nothing_and_gathers_empty_lists(tmp_path: Path) -> None:
    specs = _specs(tmp_path)
    ml = tmp_path / "opt-ml" / "processing"
    code = run_task(specs["for-loop-1"], ml / "input" / "kubesage-spec", tmp_path / "w", "--param", "kubesage-items",
                "[]", "--param", "scale", "1")  # fmt: skip
    assert code == 0
    outputs = json.loads((ml / "output" / "kubesage-outputs" / "outputs.json").read_text())
    assert outputs == {"artifacts": {}, "items": 0, "parameters": {"lines__Output": "[]"}, "task": "for-loop-1"}


@pytest.mark.parametrize(("parallelism", "cores", "expected"), [(None, 4, 4), (2, 4, 2), (8, 4, 4), (None, 1, 1)])
def test_workers_are_the_cores_bounded_by_parallelism(parallelism: int | None, cores: int, expected: int) -> None:
    assert workers(parallelism, cores) == expected


def test_items_and_fields_arrive_as_the_body_declares_them() -> None:
    assert loop_items('[1, {"a": 2}]') == [1, {"a": 2}]
    assert item_field('{"a": 2}', "a") == 2
    assert item_field({"a": "x"}, None) == {"a": "x"}
    assert as_declared(3, "STRING") == "3"
    assert as_declared("3", "NUMBER_INTEGER") == 3
    assert as_declared(2.0, "NUMBER_INTEGER") == 2
    assert as_declared([1], "LIST") == [1]
    with pytest.raises(ValueError, match="has no field 'b'"):
        item_field({"a": 1}, "b")
    with pytest.raises(ValueError, match="not a list"):
        loop_items('{"a": 1}')


def test_a_stop_reaches_every_running_item_and_starts_nothing_more(tmp_path: Path) -> None:
    """SIGTERM (StopPipelineExecution) while items run: forwarded to them, the step ends as 128 + 15."""
    import signal
    import subprocess
    import time

    specs = _specs(tmp_path)
    fan = specs["for-loop-1"]
    # the body's first task sleeps, so the stop arrives while the first two items run
    fan["fan_out"]["body"]["members"][0]["command"] = ["python3", "-c", "import time; time.sleep(30)"]
    fan["fan_out"]["body"]["members"][0]["args"] = []
    spec_dir = tmp_path / "spec"
    spec_dir.mkdir()
    body = spec_bytes(fan)
    (spec_dir / "for-loop-1.json").write_bytes(body)
    argv = [sys.executable, "-m", "kubesage.runners.sagemaker.shim", "--task", "for-loop-1", "--spec-dir",
            str(spec_dir), "--spec-sha256", spec_digest(body), "--workdir", str(tmp_path / "w"),
            "--param", "kubesage-items", "[1, 2, 3]", "--param", "scale", "1"]  # fmt: skip
    started = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert "3 items, up to 2 at once" in proc.stdout.readline()
    time.sleep(1)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 128 + signal.SIGTERM
    assert "fan-out 'for-loop-1' stopped by SIGTERM" in err
    assert time.monotonic() - started < 20  # the sleeping items were stopped, not waited for
    assert not (tmp_path / "w" / "items" / "2" / "rows" / "executor_output.json").exists()
