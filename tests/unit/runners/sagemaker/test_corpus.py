"""The SageMaker adapter on a corpus of ordinary KFP pipelines (tests/corpus/sagemaker/).

Every corpus pipeline is compiled by KFP's own compiler (kfp 2.17, kfp-kubernetes for platform
config) and then by the SageMaker adapter, through the same path as `kubesage compile`: it either
translates to the expected steps or is refused with the expected one-line message. Any other
exception (a traceback) fails the test. The malformed IR files also go through the real CLI.
"""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from kfp import compiler

from kubesage.cli import main
from kubesage.errors import KubesageError
from kubesage.runners.sagemaker.compiler import CompiledPipeline
from kubesage.runners.sagemaker.config import SageMakerConfig
from tests.corpus.sagemaker._expect import Expectation, Refused, Translates
from tests.paths import TESTS_DIR
from tests.unit.runners.sagemaker.ir_file import compile_file

CORPUS_DIR = TESTS_DIR / "corpus" / "sagemaker"
MODULES = ("basics", "conditions", "nested", "loops", "importers", "kubernetes", "failures")
MALFORMED = sorted((CORPUS_DIR / "malformed").glob("*.yaml"))
CONFIG = SageMakerConfig(bucket="kubesage-corpus")


def _cases() -> dict[str, tuple[Any, Expectation]]:
    cases: dict[str, tuple[Any, Expectation]] = {}
    for module_name in MODULES:
        module = importlib.import_module(f"tests.corpus.sagemaker.{module_name}")
        for function, expectation in module.CORPUS:
            cases[f"{module_name}-{function.name}"] = (function, expectation)
    return cases


CASES = _cases()


def _expected_message(path: Path) -> str:
    first = path.read_text(encoding="utf-8").splitlines()[0]
    assert first.startswith("# expect: "), f"{path} must start with '# expect: REGEX'"
    return first.removeprefix("# expect: ")


def _step_names(steps: list[dict[str, Any]]) -> set[str]:
    names: set[str] = set()
    for step in steps:
        names.add(step["Name"])
        if step["Type"] == "Condition":
            names |= _step_names(step["Arguments"].get("IfSteps", []) + step["Arguments"].get("ElseSteps", []))
    return names


def _check(outcome: CompiledPipeline | KubesageError, expectation: Expectation) -> None:
    if isinstance(expectation, Refused):
        assert isinstance(outcome, KubesageError), f"translated, expected a refusal matching {expectation.pattern!r}"
        message = str(outcome)
        assert "\n" not in message, f"refusal is not one line: {message!r}"
        assert re.search(expectation.pattern, message), message
        return
    assert not isinstance(outcome, KubesageError), f"refused: {outcome}"
    assert _step_names(outcome.definition["Steps"]) == set(expectation.steps)
    report = outcome.explain()
    for fragment in expectation.report:
        assert fragment in report, f"{fragment!r} not in the explain report:\n{report}"


def test_the_corpus_is_broad_enough() -> None:
    assert len(CASES) + len(MALFORMED) >= 30
    assert sum(isinstance(e, Refused) for _, e in CASES.values()) >= 8
    assert sum(isinstance(e, Translates) for _, e in CASES.values()) >= 20


@pytest.mark.parametrize("name", sorted(CASES))
def test_corpus_pipeline_translates_or_is_refused(name: str, tmp_path: Path) -> None:
    function, expectation = CASES[name]
    ir = tmp_path / f"{name}.yaml"
    compiler.Compiler().compile(function, str(ir))
    try:
        config = SageMakerConfig.model_validate({**CONFIG.model_dump(), **expectation.options})
        outcome: CompiledPipeline | KubesageError = compile_file(ir, config)
    except KubesageError as exc:  # anything else is a crash and fails the test with its traceback
        outcome = exc
    _check(outcome, expectation)


@pytest.mark.parametrize("path", MALFORMED, ids=[p.stem for p in MALFORMED])
def test_malformed_ir_is_refused_in_one_line(path: Path, tmp_path: Path) -> None:
    try:
        outcome: CompiledPipeline | KubesageError = compile_file(path, CONFIG)
    except KubesageError as exc:
        outcome = exc
    _check(outcome, Refused(_expected_message(path)))


@pytest.mark.parametrize("path", MALFORMED, ids=[p.stem for p in MALFORMED])
def test_cli_refuses_malformed_ir_without_a_traceback(path: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["compile", str(path), "--target", "sagemaker", "--output", str(tmp_path / "out.json")]
    )
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert re.search(_expected_message(path), lines[0]), lines[0]
    assert not (tmp_path / "out.json").exists()


def test_real_cli_process_on_malformed_and_translated_files(tmp_path: Path) -> None:
    """The installed `kubesage` entry point, as a user runs it: one line on stderr, no traceback."""
    cli = [sys.executable, "-m", "kubesage.cli"]
    bad = subprocess.run(
        [*cli, "compile", str(CORPUS_DIR / "malformed" / "unknown_component.yaml"), "--target", "sagemaker",
         "--output", str(tmp_path / "bad.json")],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert bad.returncode == 2
    assert "Traceback" not in bad.stderr
    assert bad.stderr.strip().splitlines() == [
        "error: task 'say' (in root) names component 'comp-sya', which the pipeline IR does not define; "
        "recompile the pipeline with kfp.compiler (kfp 2.x)"
    ]
    function, _ = CASES["kubernetes-k8s-scheduling-hints"]
    ir = tmp_path / "k8s.yaml"
    compiler.Compiler().compile(function, str(ir))
    assert len(ir.read_text().split("\n---\n")) == 2  # PipelineSpec + PlatformSpec
    good = subprocess.run(
        [*cli, "compile", str(ir), "--target", "sagemaker", "--output", str(tmp_path / "k8s.json"), "--explain"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert good.returncode == 0, good.stderr
    assert "Traceback" not in good.stderr
    assert "echo: kubernetes nodeSelector ignored" in good.stdout
    assert (tmp_path / "k8s.json").is_file()


def test_cli_refuses_a_binary_file_without_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "model.yaml"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff\xfe")
    result = CliRunner().invoke(main, ["compile", str(path), "--target", "sagemaker", "--output", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert result.stderr.strip().splitlines() == [
        f"error: {path} is not a text file (not UTF-8), so not a compiled KFP pipeline"
    ]
