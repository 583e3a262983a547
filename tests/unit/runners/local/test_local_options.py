"""The local runner's options (launcher, caching, parallelism) and how the fork launcher reads KFP's
launch line, without running a pipeline. (No `from __future__ import annotations`: KFP reads the
components' annotations as objects.)"""

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from kfp import compiler, dsl

from kubesage.cli import main
from kubesage.errors import ParameterError
from kubesage.runners.local.cache import content_digest
from kubesage.runners.local.launcher import kfp_python_call
from kubesage.runners.registry import get_runner, option_flags


@dsl.component(base_image="python:3.11", install_kfp_package=False)
def plain(x: int) -> int:
    return x + 1


@dsl.component(base_image="python:3.11", packages_to_install=["requests"])
def installs(x: int) -> int:
    return x + 1


def _command(component: object, tmp_path: Path) -> list[str]:
    target = tmp_path / "component.yaml"
    compiler.Compiler().compile(component, str(target))
    spec = yaml.safe_load(target.read_text())
    container = next(iter(spec["deploymentSpec"]["executors"].values()))["container"]
    return [*container["command"], *container["args"]]


def test_the_fork_launcher_takes_kfps_own_launch_line(tmp_path: Path) -> None:
    call = kfp_python_call(_command(plain, tmp_path))
    assert call is not None
    assert "def plain(x: int) -> int:" in call.source
    assert call.args == ["--executor_input", "{{$}}", "--function_to_execute", "plain"]


def test_a_task_that_installs_packages_is_left_to_kfps_subprocess(tmp_path: Path) -> None:
    assert kfp_python_call(_command(installs, tmp_path)) is None
    assert kfp_python_call(["python", "-c", "print(1)", "x"]) is None


def test_defaults_and_a_wrong_launcher_named() -> None:
    runner = get_runner("local")
    assert (runner.options.launcher, runner.options.enable_caching, runner.options.max_parallel) == ("fork", True, None)
    with pytest.raises(ParameterError, match="launcher"):
        get_runner("local", {"launcher": "spawn"})
    with pytest.raises(ParameterError, match="max_parallel"):
        get_runner("local", {"max_parallel": 0})


def test_no_cache_is_a_flag_without_a_value() -> None:
    flag = {f.flag: f for f in option_flags()}["--no-cache"]
    assert (flag.field, flag.switch_value, flag.runners) == ("enable_caching", False, ("local",))
    refused = CliRunner().invoke(main, ["run", "customer_churn", "--runner", "sagemaker", "--no-cache"])
    assert refused.exit_code == 2
    assert "--no-cache applies to the local runner(s), not sagemaker" in refused.output


def test_content_digest_of_a_file_and_a_folder(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.txt").write_text("one")
    before = content_digest(str(tmp_path / "d"))
    (tmp_path / "d" / "a.txt").write_text("two")
    assert content_digest(str(tmp_path / "d")) != before
    assert content_digest(str(tmp_path / "d" / "a.txt")) == content_digest(str(tmp_path / "d" / "a.txt"))
    assert content_digest(str(tmp_path / "missing")) is None
    assert json.dumps(content_digest(str(tmp_path / "d")))  # plain text, storable in an entry
