"""kfp-kubernetes secrets and ConfigMaps compiled to SageMaker: what the definition carries (names only),
the job role's statement for exactly those secrets (linted), and the options that map them.

The pipelines are the corpus's (tests/corpus/sagemaker/kubernetes.py), compiled by kfp 2.17 with
kfp-kubernetes, so the platform spec is the one KFP writes. What the shim does with these names at run
time is tested against moto in tests/integration/test_secret_env_moto.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from kfp import compiler
from pydantic import ValidationError

from kubesage.cli import main
from kubesage.runners.sagemaker.compiler import CompiledPipeline
from kubesage.runners.sagemaker.config import SageMakerConfig
from tests.corpus.sagemaker import kubernetes
from tests.unit.runners.sagemaker.ir_file import compile_file
from tests.unit.runners.sagemaker.test_iam_policies import LINT

JOB_ROLE = "arn:aws:iam::111122223333:role/kubesage-sagemaker-job"
SECRET_ARN = "arn:aws:secretsmanager:us-east-1:111122223333:secret:prod/api-token-AbC123"


def _compiled(pipeline: Any, tmp_path: Path, **options: Any) -> CompiledPipeline:
    ir = tmp_path / "p.yaml"
    compiler.Compiler().compile(pipeline, str(ir))
    return compile_file(ir, SageMakerConfig(bucket="kubesage-corpus", job_role_arn=JOB_ROLE, **options))


def _environment(compiled: CompiledPipeline, step: str) -> dict[str, Any]:
    (found,) = [s for s in compiled.definition["Steps"] if s["Name"] == step]
    return dict(found["Arguments"]["Environment"])


@pytest.fixture(scope="module")
def env_and_file(tmp_path_factory: pytest.TempPathFactory) -> CompiledPipeline:
    return _compiled(
        kubernetes.k8s_secrets_env_and_file,
        tmp_path_factory.mktemp("k8s"),
        secret_map={"api-token": SECRET_ARN},
        config_maps={"settings": {"level": "INFO"}},
        secrets_endpoint_url="http://127.0.0.1:5999",
    )


def test_the_step_environment_names_the_secrets_and_holds_the_config_values(env_and_file: CompiledPipeline) -> None:
    env = _environment(env_and_file, "use-token")
    assert json.loads(env["KUBESAGE_SECRET_ENV"]) == {
        "API_TOKEN": {"secret": SECRET_ARN, "key": "token", "optional": False}
    }
    assert json.loads(env["KUBESAGE_SECRET_FILES"]) == {"/etc/api-token": {"secret": SECRET_ARN, "optional": False}}
    assert env["LOG_LEVEL"] == "INFO"  # a ConfigMap value is configuration: literal, given at compile time
    assert env["AWS_DEFAULT_REGION"] == "us-east-1"
    assert env["AWS_ENDPOINT_URL_SECRETS_MANAGER"] == "http://127.0.0.1:5999"
    assert "API_TOKEN" not in env  # the value arrives when the job starts, never in the definition


def test_the_job_role_may_read_exactly_the_mapped_secrets(env_and_file: CompiledPipeline, tmp_path: Path) -> None:
    assert env_and_file.job_role_secrets_policy == {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ReadOnlyTheTasksSecrets",
                "Effect": "Allow",
                "Action": "secretsmanager:GetSecretValue",
                "Resource": [SECRET_ARN],
            }
        ],
    }
    written = env_and_file.write(tmp_path / "out.json")
    policy = tmp_path / "out.json.job-role-secrets.json"
    assert policy in written
    assert LINT.lint_policy(policy.name, policy.read_text()) == []  # parliament + kubesage's rules


def test_a_secret_named_by_name_gets_the_six_character_suffix_pattern(tmp_path: Path) -> None:
    compiled = _compiled(kubernetes.k8s_secret_volume, tmp_path, secret_map={"tls": "prod/tls"})
    assert compiled.job_role_secrets_policy is not None
    (statement,) = compiled.job_role_secrets_policy["Statement"]
    assert statement["Resource"] == ["arn:aws:secretsmanager:us-east-1:111122223333:secret:prod/tls-??????"]
    assert json.loads(_environment(compiled, "say")["KUBESAGE_SECRET_FILES"]) == {
        "/etc/tls": {"secret": "prod/tls", "optional": True}
    }
    # the linter's own probe: a secret whose name only starts the same is not readable
    assert not LINT.may_allow(
        compiled.job_role_secrets_policy,
        "secretsmanager:GetSecretValue",
        "arn:aws:secretsmanager:us-east-1:111122223333:secret:prod/tls-admin-AbC123",
    )


def test_the_linter_refuses_a_wider_secrets_statement() -> None:
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": "arn:aws:secretsmanager:*"}
        ],
    }
    found = LINT.kubesage_rules("out.json.job-role-secrets.json", policy)
    assert "out.json.job-role-secrets.json: arn:aws:secretsmanager:* is not one secret's ARN" in found[0]
    assert any("a secret the pipeline does not name" in line for line in found)


def test_a_runtime_loop_step_gets_its_body_tasks_secrets(tmp_path: Path) -> None:
    compiled = _compiled(kubernetes.k8s_secret_in_runtime_loop, tmp_path, secret_map={"api-token": "prod/api"})
    assert json.loads(_environment(compiled, "for-loop-1")["KUBESAGE_SECRET_ENV"]) == {
        "API_TOKEN": {"secret": "prod/api", "key": "token", "optional": False}
    }


def test_without_platform_secrets_nothing_changes(tmp_path: Path) -> None:
    compiled = _compiled(kubernetes.k8s_scheduling_hints, tmp_path, secret_map={"api-token": "prod/api"})
    assert compiled.job_role_secrets_policy is None
    assert not {"KUBESAGE_SECRET_ENV", "KUBESAGE_SECRET_FILES"} & set(_environment(compiled, "echo"))
    assert not [p for p in compiled.write(tmp_path / "o.json") if p.name.endswith("job-role-secrets.json")]


def test_the_options_take_the_short_forms_and_json() -> None:
    config = SageMakerConfig(secret_map="api-token=prod/api-token, tls=prod/tls", config_maps="settings:level=INFO")
    assert config.secret_map == {"api-token": "prod/api-token", "tls": "prod/tls"}
    assert config.config_maps == {"settings": {"level": "INFO"}}
    assert SageMakerConfig(config_maps={"s": {"k": "a=b,c"}}).config_maps == {"s": {"k": "a=b,c"}}
    with pytest.raises(ValidationError, match="'api-token' is not NAME=SECRET"):
        SageMakerConfig(secret_map="api-token")
    with pytest.raises(ValidationError, match="'level=INFO' is not NAME:KEY=VALUE"):
        SageMakerConfig(config_maps="level=INFO")


def test_compile_explains_and_writes_the_policy_beside_the_definition(tmp_path: Path) -> None:
    ir = tmp_path / "p.yaml"
    compiler.Compiler().compile(kubernetes.k8s_secret_env, str(ir))
    out = tmp_path / "out.json"
    result = CliRunner().invoke(
        main,
        ["compile", str(ir), "--target", "sagemaker", "--output", str(out), "--explain",
         "--secret-map", "api-token=prod/api-token"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert (
        "say: kubernetes secret 'api-token' key 'token' -> env API_TOKEN from Secrets Manager 'prod/api-token' "
        "(the shim reads it at start; the definition holds the names only)"
    ) in result.stdout
    assert "job role: secretsmanager:GetSecretValue on only 'prod/api-token'" in result.stdout
    assert json.loads((tmp_path / "out.json.job-role-secrets.json").read_text())["Statement"][0]["Resource"] == [
        "arn:aws:secretsmanager:us-east-1:000000000000:secret:prod/api-token-??????"
    ]
    # without --secret-map: the Secrets Manager secret of the same name, said in the report and the policy
    same_name = CliRunner().invoke(
        main, ["compile", str(ir), "--target", "sagemaker", "--output", str(tmp_path / "x.json"), "--explain"]
    )
    assert same_name.exit_code == 0, same_name.output
    assert (
        "say: kubernetes secret 'api-token' is not in --secret-map -> the Secrets Manager secret of the same name, "
        "'api-token' (create it holding the secret's keys as JSON, or map another with --secret-map "
        "api-token=$SECRET_ID)"
    ) in same_name.stdout
    assert "job role: secretsmanager:GetSecretValue on only 'api-token'" in same_name.stdout
    assert json.loads((tmp_path / "x.json.job-role-secrets.json").read_text())["Statement"][0]["Resource"] == [
        "arn:aws:secretsmanager:us-east-1:000000000000:secret:api-token-??????"
    ]


def test_an_unmapped_secret_reads_the_secrets_manager_secret_of_the_same_name(tmp_path: Path) -> None:
    """kubeflow/pipelines samples/v2/pipeline_with_secret_as_env and _as_volume compile without --secret-map:
    the names only in the definition, the job role's statement naming exactly the secrets the tasks read."""
    compiled = _compiled(kubernetes.k8s_secrets_env_and_file, tmp_path, config_maps={"settings": {"level": "INFO"}})
    env = _environment(compiled, "use-token")
    assert json.loads(env["KUBESAGE_SECRET_ENV"]) == {
        "API_TOKEN": {"secret": "api-token", "key": "token", "optional": False}
    }
    assert json.loads(env["KUBESAGE_SECRET_FILES"]) == {"/etc/api-token": {"secret": "api-token", "optional": False}}
    assert compiled.job_role_secrets_policy == {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ReadOnlyTheTasksSecrets",
                "Effect": "Allow",
                "Action": "secretsmanager:GetSecretValue",
                "Resource": ["arn:aws:secretsmanager:us-east-1:111122223333:secret:api-token-??????"],
            }
        ],
    }
    notes = [line for line in compiled.report if "is not in --secret-map" in line]
    assert len(notes) == 1  # one note per task and secret, though env and volume both read it
    policy = tmp_path / "out.json.job-role-secrets.json"
    compiled.write(tmp_path / "out.json")
    assert LINT.lint_policy(policy.name, policy.read_text()) == []


def test_the_secret_map_still_overrides_one_name_and_the_rest_keep_theirs(tmp_path: Path) -> None:
    compiled = _compiled(kubernetes.k8s_secrets_env_and_file, tmp_path, secret_map={"other": "prod/other"},
                         config_maps={"settings": {"level": "INFO"}})  # fmt: skip
    assert json.loads(_environment(compiled, "use-token")["KUBESAGE_SECRET_ENV"])["API_TOKEN"]["secret"] == "api-token"
    compiled = _compiled(kubernetes.k8s_secrets_env_and_file, tmp_path, secret_map={"api-token": "prod/api"},
                         config_maps={"settings": {"level": "INFO"}})  # fmt: skip
    assert not [line for line in compiled.report if "is not in --secret-map" in line]
    assert compiled.job_role_secrets_policy is not None
    assert compiled.job_role_secrets_policy["Statement"][0]["Resource"] == [
        "arn:aws:secretsmanager:us-east-1:111122223333:secret:prod/api-??????"
    ]
