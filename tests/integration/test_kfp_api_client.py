"""The kfp runner's API adapter against the KFP API stand-in: retries, auth and error messages.

The stand-in speaks KFP's v2beta1 REST protocol on loopback (tests/standins/kfp_api.py); these checks
need no pipeline run, so they are quick. They prove how kfp.Client's errors are mapped, not how a
real cluster's gateway or auth behaves.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kubesage.errors import AccessDeniedError, RunnerError
from kubesage.runners.base import CallbackProgress
from kubesage.runners.kfp import KfpOptions
from kubesage.runners.kfp.client import KfpApi
from kubesage.util.ports import free_port
from tests.standins.kfp_api import Faults, KfpStandin

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("kfp_faults_reset")]


def make_api(host: str, **options: object) -> tuple[KfpApi, list[str], list[float]]:
    lines: list[str] = []
    slept: list[float] = []
    api = KfpApi(KfpOptions.model_validate({"host": host, **options}), CallbackProgress(lines.append), slept.append)
    return api, lines, slept


def test_5xx_is_retried_with_backoff_then_succeeds(kfp_standin: KfpStandin) -> None:
    kfp_standin.faults = Faults(server_errors=3)
    api, lines, slept = make_api(kfp_standin.url)
    experiment = api.call("create", api.client.create_experiment, "retried")
    assert experiment.display_name == "retried"
    assert slept == [1.0, 2.0, 4.0]
    assert sum("503" in line and "retrying" in line for line in lines) == 3
    assert any("/#/experiments/details/" in line for line in lines)  # kfp.Client's print became progress


def test_the_first_retry_waits_retry_backoff_seconds_and_each_next_twice_as_long(
    kfp_standin: KfpStandin,
) -> None:
    kfp_standin.faults = Faults(server_errors=3)
    api, lines, slept = make_api(kfp_standin.url, retry_backoff_seconds=0.25)
    api.call("create", api.client.create_experiment, "retried-sooner")
    assert slept == [0.25, 0.5, 1.0]
    assert [line.split("; ")[-1] for line in lines if "retrying" in line] == [
        "retrying in 0.25 s (1/4)",
        "retrying in 0.5 s (2/4)",
        "retrying in 1 s (3/4)",
    ]


def test_persistent_5xx_ends_with_where_to_look(kfp_standin: KfpStandin) -> None:
    kfp_standin.faults = Faults(server_errors=10)
    api, _, slept = make_api(kfp_standin.url, api_retries=2)
    with pytest.raises(RunnerError, match=r"kept failing \(HTTP 503.*after 2 retries.*ml-pipeline logs"):
        api.client  # noqa: B018
    assert slept == [1.0, 2.0]


def test_401_is_not_retried_and_says_how_to_get_a_token(kfp_standin: KfpStandin) -> None:
    kfp_standin.faults = Faults(unauthorized=1)
    api, _, slept = make_api(kfp_standin.url)
    with pytest.raises(AccessDeniedError, match="401.*token_file.*kubectl -n kubeflow create token"):
        api.client  # noqa: B018
    assert slept == []


def test_403_names_the_namespace(kfp_standin: KfpStandin) -> None:
    kfp_standin.faults = Faults(forbidden=1)
    api, _, _ = make_api(kfp_standin.url, namespace="team-a")
    with pytest.raises(AccessDeniedError, match="403.*namespace team-a.*contributor"):
        api.client  # noqa: B018


def test_a_bearer_token_from_a_file_is_sent_and_never_shown(tmp_path: Path) -> None:
    standin = KfpStandin(tmp_path / "standin", token="s3cret-token").start()
    try:
        api, _, _ = make_api(standin.url)
        with pytest.raises(AccessDeniedError, match="401"):
            api.client  # noqa: B018
        token_file = tmp_path / "token"
        token_file.write_text("s3cret-token\n")
        api, lines, _ = make_api(standin.url, token_file=str(token_file))
        assert api.call("list", api.client.list_experiments).total_size == 0
        assert not any("s3cret" in line for line in lines)
        assert "s3cret" not in repr(KfpOptions(host=standin.url, existing_token="s3cret-token"))
    finally:
        standin.stop()


def test_a_wrong_path_says_where_the_api_is(kfp_standin: KfpStandin) -> None:
    kfp_standin.faults = Faults()
    api, _, _ = make_api(f"{kfp_standin.url}/not-kfp")
    with pytest.raises(RunnerError, match="healthz is not there \\(404\\).*ml-pipeline"):
        api.client  # noqa: B018


def test_nobody_listening_ends_with_a_clear_message() -> None:
    api, _, slept = make_api(f"http://127.0.0.1:{free_port()}", api_retries=1)
    with pytest.raises(RunnerError, match="did not answer.*port-forward"):
        api.client  # noqa: B018
    assert slept == [1.0]


def test_no_host_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KF_PIPELINES_ENDPOINT", raising=False)
    with pytest.raises(RunnerError, match="--option host=.*KF_PIPELINES_ENDPOINT"):
        make_api("")


def _tiny_pipeline(path: Path) -> Path:
    from kfp import compiler, dsl

    # No annotations: this module's `from __future__ import annotations` turns them into strings,
    # which kfp's component decorator cannot read.
    @dsl.component(base_image="python:3.11")
    def hello():  # type: ignore[no-untyped-def]
        print("hello")

    @dsl.pipeline(name="tiny")
    def tiny():  # type: ignore[no-untyped-def]
        hello()

    compiler.Compiler().compile(tiny, str(path))
    return path


def test_a_submit_whose_answer_is_lost_starts_one_run(kfp_standin: KfpStandin, tmp_path: Path) -> None:
    from kubesage.runners.kfp.client import submit_run

    package = _tiny_pipeline(tmp_path / "tiny.yaml")
    api, lines, slept = make_api(kfp_standin.url)
    experiment = api.call("create", api.client.create_experiment, "idempotent")
    name = "churn run"
    # A run of the same name from before (a user-chosen name used twice) is not mistaken for ours.
    kfp_standin.faults = Faults(never_finish=True)
    earlier = submit_run(api, experiment.experiment_id, name, pipeline_package_path=str(package))
    kfp_standin.faults = Faults(never_finish=True, lose_run_answers=1)
    run = submit_run(api, experiment.experiment_id, name, pipeline_package_path=str(package))
    named = [r.model.run_id for r in kfp_standin.runs.values() if r.model.display_name == name]
    assert len(named) == 2  # the earlier one and this one: the retry started no third
    assert run.run_id in named
    assert run.run_id != earlier.run_id
    assert len(slept) == 1  # one retry found the run the lost answer had started
    assert f"the run {name!r} was started by the last attempt: {run.run_id}" in lines
