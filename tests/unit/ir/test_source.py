"""PIPELINE arguments: a built-in name, module:function, or compiled IR; the IR loads back through KFP."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import yaml
from kfp import components

from kubesage.errors import PipelineNotFoundError
from kubesage.ir.parameters import parameter_specs
from kubesage.ir.source import compile_pipeline_function
from kubesage.ir.source import load_pipeline as load_without_builtins
from kubesage.runners.registry import builtin_pipelines, load_pipeline


def test_builtin_pipeline_compiles_to_ir(tmp_path: Path) -> None:
    source = load_pipeline("customer_churn", tmp_path)
    assert source.name == "customer-churn"
    assert source.ir_path.is_file()
    tasks = source.spec["root"]["dag"]["tasks"]
    assert {"preprocess", "train", "evaluate", "condition-branches-1"} <= set(tasks)
    specs = parameter_specs(source.spec)
    assert specs["input_data"].required
    assert specs["min_accuracy"].default == 0.8
    assert specs["max_depth"].type == "NUMBER_INTEGER"


def test_ir_loads_back_through_kfp(tmp_path: Path) -> None:
    source = load_pipeline("customer_churn", tmp_path)
    loaded = components.load_component_from_file(str(source.ir_path))
    assert loaded.name == "customer-churn"
    assert set(loaded.component_spec.inputs or {}) >= {"input_data", "min_accuracy", "max_depth"}
    # The gate is a CEL condition on evaluate's single output, as SageMaker's translator expects.
    branches = source.spec["components"]["comp-condition-branches-1"]["dag"]["tasks"]
    conditions = [t["triggerPolicy"]["condition"] for t in branches.values()]
    assert any(">=" in c and "evaluate-Output" in c for c in conditions)


def test_module_function_and_ir_file_are_the_same_pipeline(tmp_path: Path) -> None:
    by_name = load_pipeline("customer_churn", tmp_path / "a")
    by_ref = load_pipeline("kubesage.pipelines.customer_churn:customer_churn", tmp_path / "b")
    by_file = load_pipeline(str(by_name.ir_path), tmp_path / "c")
    assert by_name.spec["root"] == by_ref.spec["root"] == by_file.spec["root"]


def test_unknown_name_lists_the_builtins(tmp_path: Path) -> None:
    assert builtin_pipelines()["customer_churn"] == "kubesage.pipelines.customer_churn"
    with pytest.raises(PipelineNotFoundError, match="built-in pipelines: .*customer_churn"):
        load_pipeline("customer_chrun", tmp_path)


def test_the_core_knows_the_builtins_it_is_told(tmp_path: Path) -> None:
    """kubesage.ir.source never imports pipelines/: without the registry's list a name is unknown."""
    with pytest.raises(PipelineNotFoundError, match="built-in pipelines: none"):
        load_without_builtins("customer_churn", tmp_path)
    told = load_without_builtins("customer-churn", tmp_path, {"customer_churn": "kubesage.pipelines.customer_churn"})
    assert told.name == "customer-churn"


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("no.such.module:fn", "cannot import no.such.module"),
        ("kubesage.pipelines.customer_churn:nothing", "has no attribute 'nothing'"),
        ("kubesage.pipelines.customer_churn:PIPELINE_NAME", "is not a @dsl.pipeline"),
        ("missing.yaml", "does not exist"),
    ],
)
def test_bad_references(ref: str, message: str, tmp_path: Path) -> None:
    with pytest.raises(PipelineNotFoundError, match=message):
        load_pipeline(ref, tmp_path)


def test_yaml_that_is_not_a_pipeline(tmp_path: Path) -> None:
    path = tmp_path / "other.yaml"
    path.write_text(yaml.safe_dump({"kind": "Deployment"}))
    with pytest.raises(PipelineNotFoundError, match="not a compiled KFP pipeline"):
        load_pipeline(str(path), tmp_path)


def test_a_users_module_in_the_current_directory_is_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 26: `kubesage run my_module:sensor_alerts` beside my_module.py; the console script's
    sys.path does not start with the directory it runs in."""
    import sys

    (tmp_path / "issue26_user_module.py").write_text(
        "from kfp import dsl\n\n"
        "@dsl.component\ndef hello(name: str) -> str:\n    return name\n\n"
        "@dsl.pipeline(name='user-pipeline')\ndef user_pipeline(name: str = 'x'):\n    hello(name=name)\n",
        encoding="utf-8",
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    source = load_pipeline("issue26_user_module:user_pipeline", tmp_path / "ir")
    assert source.name == "user-pipeline"
    assert str(tmp_path) not in sys.path  # imported from there, not left on the path


def test_a_reader_never_sees_a_half_compiled_file(tmp_path: Path) -> None:
    # Two `kubesage run`s in one workdir compile to the same file; a reader of it (the other run)
    # must see the whole IR every time, never a truncated or empty file.
    from kubesage.pipelines.customer_churn import customer_churn

    target = tmp_path / "customer_churn.yaml"
    compile_pipeline_function(customer_churn, target)
    stop = threading.Event()
    bad_reads: list[str] = []

    def read_while_compiling() -> None:
        while not stop.is_set():
            text = target.read_text()
            if "pipelineInfo" not in text:
                bad_reads.append(text[:80])

    reader = threading.Thread(target=read_while_compiling)
    reader.start()
    try:
        for _ in range(15):
            compile_pipeline_function(customer_churn, target)
    finally:
        stop.set()
        reader.join()
    assert bad_reads == []
    assert [p.name for p in tmp_path.iterdir()] == ["customer_churn.yaml"]  # no temporary file left
    plain = tmp_path / "plain.yaml"
    plain.write_text("")
    assert target.stat().st_mode == plain.stat().st_mode  # the usual mode, not a temporary file's 0600


def test_a_failed_compile_keeps_the_previous_ir(tmp_path: Path) -> None:
    from kubesage.pipelines.customer_churn import customer_churn

    target = tmp_path / "customer_churn.yaml"
    compile_pipeline_function(customer_churn, target)
    before = target.read_bytes()
    with pytest.raises(ValueError):
        compile_pipeline_function(len, target)  # not a pipeline: KFP refuses it
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["customer_churn.yaml"]
