"""The registry is the one list of runners: names, options, flags, compile targets."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from kubesage.cli import main
from kubesage.errors import ParameterError, RunnerError
from kubesage.runners.registry import (
    compile_targets,
    describe_runners,
    get_runner,
    option_flags,
    parse_option_values,
    runner_spec,
    runner_specs,
)


def test_every_runner_is_listed_once_with_a_loadable_class() -> None:
    specs = runner_specs()
    assert {"local", "sagemaker", "sagemaker-local"} <= set(specs)
    for name, spec in specs.items():
        runner_class = spec.load()
        assert runner_class.name == name
        assert runner_class.Options is spec.options


def test_unknown_runner_names_suggest_the_closest() -> None:
    with pytest.raises(RunnerError, match=r"unknown runner 'locl' \(did you mean 'local'\?\); available: local"):
        runner_spec("locl")


def test_compile_targets_map_to_runners() -> None:
    targets = compile_targets()
    assert targets["sagemaker"].name == "sagemaker"
    assert "kfp" in targets


def test_flags_are_shared_by_the_runners_that_declare_them() -> None:
    flags = {f.flag: f for f in option_flags()}
    assert flags["--image"].field == "image_uri"
    assert {"sagemaker", "sagemaker-local"} <= set(flags["--image"].runners)
    assert flags["--bucket"].runners == ("sagemaker", "sagemaker-local")


def test_option_values_are_checked_by_name_and_decoded() -> None:
    spec = runner_spec("sagemaker")
    values = parse_option_values(
        spec, {"instance_types": '{"train": "ml.m5.xlarge"}', "timeout_seconds": "60", "prefix": "12"}
    )
    assert values == {"instance_types": {"train": "ml.m5.xlarge"}, "timeout_seconds": 60, "prefix": "12"}
    runner = get_runner("sagemaker", values)
    assert runner.options.instance_types == {"train": "ml.m5.xlarge"} and runner.options.prefix == "12"
    with pytest.raises(ParameterError, match=r"no option 'timeout' \(did you mean 'timeout_seconds'\?\)"):
        parse_option_values(spec, {"timeout": "60"})
    with pytest.raises(ParameterError, match=r"invalid sagemaker runner option: on_exit"):
        get_runner("sagemaker", {"on_exit": "never"})


@pytest.mark.parametrize("runner", ["kfp", "sagemaker"])
def test_on_exit_is_one_vocabulary_and_the_old_kfp_word_still_works(runner: str) -> None:
    assert get_runner(runner).options.on_exit == "stop"
    assert get_runner(runner, {"on_exit": "detach"}).options.on_exit == "detach"
    with pytest.warns(FutureWarning, match="on_exit=terminate is deprecated; use on_exit=stop"):
        assert get_runner(runner, {"on_exit": "terminate"}).options.on_exit == "stop"


def test_only_runners_with_an_s3_endpoint_option_change_the_input_check_endpoint() -> None:
    assert get_runner("local").input_endpoint() is None
    assert get_runner("kfp").input_endpoint() is None
    assert get_runner("sagemaker").input_endpoint() is None
    assert (
        get_runner("sagemaker", {"endpoint_url": "http://127.0.0.1:5001"}).input_endpoint() == "http://127.0.0.1:5001"
    )
    local_mode = get_runner("sagemaker-local", {"s3_endpoint_url": "http://127.0.0.1:5002"})
    assert local_mode.input_endpoint() == "http://127.0.0.1:5002"


def test_describe_runners_lists_options_with_defaults() -> None:
    described = {d["name"]: d for d in describe_runners()}
    options = {o["name"]: o for o in described["sagemaker"]["options"]}
    assert options["image_uri"]["flag"] == "--image"
    assert options["poll_seconds"]["default"] == 15.0
    assert described["sagemaker"]["extra"] == "sagemaker"
    assert described["local"]["compile_target"] == "kfp" or described["local"]["compile_target"] is None


def test_cli_lists_runners_and_refuses_flags_of_another_runner(tmp_path) -> None:  # type: ignore[no-untyped-def]
    cli = CliRunner()
    listed = cli.invoke(main, ["runners", "--output", "json"])
    assert listed.exit_code == 0, listed.output
    assert [r["name"] for r in json.loads(listed.output)] == list(runner_specs())
    helped = cli.invoke(main, ["run", "--help"])
    assert all(name in helped.output for name in runner_specs()) and "--option NAME=VALUE" in helped.output
    wrong = cli.invoke(main, ["run", "customer_churn", "--bucket", "b", "--param", "input_data=x.csv"])
    assert (
        wrong.exit_code == 2
        and "--bucket applies to the sagemaker, sagemaker-local runner(s), not local" in wrong.output
    )
    typo = cli.invoke(main, ["run", "customer_churn", "--runner", "sagemaker-locl"])
    assert typo.exit_code == 2 and "did you mean 'sagemaker-local'?" in typo.output
