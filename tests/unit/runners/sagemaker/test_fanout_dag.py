"""A runtime dsl.ParallelFor whose body is a DAG, run for real through the shim (no Docker).

The fan-out step of `fanout_dag_pipelines` is compiled and run by `shim.main` as its job would run
it: per item, the dsl.If/Elif/Else is decided on that item's values, only the branch taken runs,
dsl.OneOf reads it, the nested literal loop runs inside the item, the sub-pipeline runs when its
dsl.If holds; what dsl.Collected gets is checked value by value (a nested loop's as a list per item).
"""

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from kubesage.runners.sagemaker.shim_fanout import ItemError, NodeResult, dag_outputs
from tests.unit.runners.sagemaker import fanout_dag_pipelines as pipelines
from tests.unit.runners.sagemaker.ir_file import run_task, task_specs


def _ran(workdir: Path, index: int) -> list[str]:
    """The body tasks that ran for item `index`, by path: each wrote its executor output."""
    item = workdir / "items" / str(index)
    return sorted(str(p.parent.relative_to(item)) for p in item.rglob("executor_output.json"))


@pytest.fixture(autouse=True)
def venv_python_first(monkeypatch: pytest.MonkeyPatch) -> None:
    # The component command calls `python3`; make it this interpreter (kfp installed), as in the image.
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("KUBESAGE_STEP_USER", "root")  # run as whoever runs the tests


def run_fan_out_dag(tmp_path: Path, items: list[int]) -> tuple[dict[str, Any], Path, dict[str, dict[str, Any]]]:
    """The fan-out step of `fan_out_dag` on `items`: its outputs.json, its workdir, every task spec."""
    specs = task_specs(pipelines.fan_out_dag, tmp_path)
    ml = tmp_path / "opt-ml" / "processing"
    workdir = tmp_path / "w"
    code = run_task(specs["for-loop-1"], ml / "input" / "kubesage-spec", workdir, "--param", "kubesage-items",
                json.dumps(items))  # fmt: skip
    assert code == 0
    return json.loads((ml / "output" / "kubesage-outputs" / "outputs.json").read_text()), workdir, specs


def test_each_item_runs_only_its_branch_its_nested_loop_and_its_sub_pipeline(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    outputs, workdir, _ = run_fan_out_dag(tmp_path, [1, 2, 3])
    out = capsys.readouterr().out
    assert "item 0: dsl.If false, skipped condition-7, condition-branches-2/condition-3" in out
    assert "item 2: dsl.If false, skipped condition-branches-2/condition-4" in out
    nested = ["for-loop-6/0/add", "for-loop-6/1/add"]
    # item 1: doubled 2 is not > 2, so the Else branch (condition-4) runs; n == 3 is false: no plus-ten
    assert _ran(workdir, 0) == ["condition-branches-2/condition-4/tag-2", "double", *nested, "tag-3"]
    assert _ran(workdir, 1) == ["condition-branches-2/condition-3/tag", "double", *nested, "tag-3"]
    assert _ran(workdir, 2) == [
        "condition-7/plus-ten/add",
        "condition-branches-2/condition-3/tag",
        "double",
        *nested,
        "tag-3",
    ]
    gathered = {k: json.loads(v) for k, v in outputs["parameters"].items()}
    assert gathered == {
        "double__Output": [2, 4, 6],
        # dsl.Collected of the nested loop: one list per item, in iteration order (kfp.local's shape)
        "for_loop_6__pipelinechannel__add_Output": [[11, 21], [12, 22], [13, 23]],
        # tag-3 read dsl.OneOf(big, small): whichever branch ran for that item ("small1", then + "0")
        "tag_3__Output": ["small10", "big20", "big30"],
    }
    sub = json.loads(
        (workdir / "items" / "2" / "condition-7" / "plus-ten" / "add" / "executor_output.json").read_text()
    )
    assert sub["parameterValues"] == {"Output": 13}


def test_the_consumer_gets_what_kfp_collects(tmp_path: Path) -> None:
    outputs, _, specs = run_fan_out_dag(tmp_path, [3, 1])
    ml = tmp_path / "opt-ml" / "processing"
    p = outputs["parameters"]
    extra = ["--param", "doubled", p["double__Output"], "--param", "sums", p["for_loop_6__pipelinechannel__add_Output"],
             "--param", "tags", p["tag_3__Output"]]  # fmt: skip
    assert run_task(specs["summary"], ml / "input" / "kubesage-spec", tmp_path / "w2", *extra) == 0
    result = json.loads((ml / "output" / "kubesage-outputs" / "outputs.json").read_text())
    assert json.loads(result["parameters"]["Output"]) == {
        "doubled": [6, 2],
        "sums": [[13, 23], [11, 21]],
        "tags": ["big30", "small10"],
    }


def test_collecting_a_task_skipped_in_some_items_fails_those_items(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """kfp.local fails the run when dsl.Collected reads a task whose dsl.If was false in an iteration."""
    specs = task_specs(pipelines.collects_skipped, tmp_path)
    ml = tmp_path / "opt-ml" / "processing"
    code = run_task(specs["for-loop-1"], ml / "input" / "kubesage-spec", tmp_path / "w", "--param", "kubesage-items",
                "[1, 2, 3]")  # fmt: skip
    assert code == 1
    err = capsys.readouterr().err
    assert "fan-out 'for-loop-1': 1 of 3 items failed: item 0 (1): 'for-loop-1' has no value for its output" in err
    assert "condition-2 did not run for this item, because its dsl.If was false" in err
    assert not (ml / "output" / "kubesage-outputs" / "outputs.json").exists()
    # the items whose dsl.If held ran their task all the same
    assert _ran(tmp_path / "w", 1) == ["condition-2/double"]
    assert _ran(tmp_path / "w", 0) == []


def test_a_condition_that_cannot_be_evaluated_fails_its_item_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """int("x") in the CEL KFP wrote cannot be evaluated, as in KFP's driver: that item fails, the other runs."""
    specs = task_specs(pipelines.fan_out_dag, tmp_path)
    ml = tmp_path / "opt-ml" / "processing"
    code = run_task(specs["for-loop-1"], ml / "input" / "kubesage-spec", tmp_path / "w", "--param", "kubesage-items",
                '[1, "x"]')  # fmt: skip
    assert code == 1
    err = capsys.readouterr().err
    assert '1 of 2 items failed: item 1 ("x"): dsl.If \'condition-7\': condition "int(inputs.parameter_values' in err
    assert "could not be evaluated with {'pipelinechannel--items-loop-item': 'x'}" in err
    assert "double" in _ran(tmp_path / "w", 0)


def test_dag_outputs_pick_the_branch_that_ran_and_refuse_a_missing_one() -> None:
    group = {"outputs": {"v": [["a", "Output"], ["b", "Output"]]}, "output_artifacts": {}}
    ran_b = {"a": None, "b": NodeResult({"Output": 7})}
    assert dag_outputs(group, ran_b, "loop").parameters == {"v": 7}
    with pytest.raises(ItemError, match=r"'loop' has no value for its output 'v'.*a, b did not run"):
        dag_outputs(group, {"a": None, "b": None}, "loop")
