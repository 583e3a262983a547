"""Credentials in tracking URIs: redacted wherever printed or stored, refused where they would become a parameter.

The MLflow side is a real SQLite store; the CLI is the real click command run in-process against an
MLflow URL nothing listens on (so MLflow's own error message quotes the URL, credentials included).
"""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from kubesage import tracking as t
from kubesage.errors import RunnerError, TrackingError
from kubesage.util.redact import redact_text, redact_uri, uri_credentials

SECRET = "s3cr3tvalue"
CREDENTIAL_URIS = [
    f"https://user:{SECRET}@mlflow.example.com:5000/",
    f"https://{SECRET}@mlflow.example.com/",
    f"https://mlflow.example.com/?token={SECRET}",
    f"https://mlflow.example.com/api?run=1&access_token={SECRET}",
    f"https://acct.blob.core.windows.net/c?sv=2024-01-01&sig={SECRET}&se=x",
    f"https://b.s3.amazonaws.com/k?X-Amz-Credential=AKIA&X-Amz-Signature={SECRET}",
]


@pytest.mark.parametrize("uri", CREDENTIAL_URIS)
def test_every_credential_form_is_found_and_masked(uri: str) -> None:
    assert uri_credentials(uri)
    redacted = redact_uri(uri)
    assert SECRET not in redacted
    assert "***" in redacted
    assert redacted.split("://")[0] == uri.split("://")[0]


@pytest.mark.parametrize(
    "uri", ["http://127.0.0.1:5000", "sqlite:////tmp/mlflow.db", "s3://bucket/key?versionId=3", "models:/churn/1"]
)
def test_uris_without_credentials_are_unchanged(uri: str) -> None:
    assert uri_credentials(uri) == []
    assert redact_uri(uri) == uri


def test_uris_inside_free_text_are_masked_and_the_rest_kept() -> None:
    text = f"MLflow at https://u:{SECRET}@h:5000/x refused ('https://{SECRET}@h/y'); see https://h/z?token={SECRET}."
    redacted = redact_text(text)
    assert SECRET not in redacted
    assert redacted.startswith("MLflow at https://***@h:5000/x refused ('https://***@h/y')")
    assert "token=***" in redacted


@pytest.mark.parametrize("uri", CREDENTIAL_URIS)
def test_sagemaker_refuses_any_credential_as_a_pipeline_parameter(uri: str) -> None:
    from kubesage.runners.sagemaker.base import handoff_parameters

    tracking = t.PipelineRun("run", "1", uri, "sagemaker")
    with pytest.raises(RunnerError, match="carries a credential") as caught:
        handoff_parameters(tracking)
    assert SECRET not in str(caught.value)


def test_failure_tags_are_redacted(mlflow_sqlite: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflow import MlflowClient

    run = t.start_pipeline_run("redaction", "local", {}, uri=mlflow_sqlite)
    for name, value in run.step_env.items():
        monkeypatch.setenv(name, value)
    t.finish_pipeline_run(run, "FAILED", failure=f"could not reach https://u:{SECRET}@h/ (token={SECRET})")
    with pytest.raises(TrackingError), t.step_run("train"):
        raise TrackingError(f"MLflow at https://h/?access_token={SECRET} refused")
    client = MlflowClient(tracking_uri=mlflow_sqlite)
    parent = client.get_run(run.run_id).data.tags[t.TAG_FAILURE]
    assert SECRET not in parent and "https://***@h/" in parent
    step = client.search_runs([run.experiment_id], filter_string="tags.`kubesage.step` = 'train'")
    assert step, "the step run was not recorded"
    assert SECRET not in step[0].data.tags[t.TAG_FAILURE]


def test_cli_errors_never_print_the_credential(monkeypatch: pytest.MonkeyPatch) -> None:
    from kubesage.cli import main

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://user:{SECRET}@127.0.0.1:9/")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    result = CliRunner().invoke(main, ["runs", "--output", "json"])
    assert result.exit_code != 0
    answer = json.loads(result.stdout.splitlines()[0])
    assert answer["status"] == "error"
    assert "http://***@127.0.0.1:9" in answer["error"]
    assert SECRET not in result.output


# Every shape a secret travels in (issue 18 item 10), each a template with {s} where the secret goes.
SHAPES = [
    "MLFLOW_TRACKING_PASSWORD={s}",
    "export DATABRICKS_TOKEN={s}",
    "AWS_SECRET_ACCESS_KEY={s} AWS_SESSION_TOKEN={s}",
    "MLFLOW_TRACKING_TOKEN: {s}",
    "Authorization: Bearer {s}",
    "authorization=Basic {s}",
    "Proxy-Authorization: {s}",
    "curl -H 'Authorization: Bearer {s}' https://h/",
    "sent Bearer {s} to the server",
    '{{"user": "me", "password": "{s}"}}',
    "{{'client_secret': '{s}', 'n': 1}}",
    '{{"MLFLOW_TRACKING_PASSWORD":"{s}"}}',
    "https://storage.googleapis.com/b/o?X-Goog-Algorithm=GOOG4-RSA-SHA256&X-Goog-Signature={s}&X-Goog-Date=1",
    "X-Goog-Signature: {s}",
    "https://user:{s}@mlflow.example.com:5000/",
    "https://{s}@mlflow.example.com/api",
    "https://h/p?run=1&access_token={s}",
    "https://b.s3.amazonaws.com/k?X-Amz-Credential=AKIA/x&X-Amz-Signature={s}",
    "?sv=2024&sig={s}",
    "x-api-key: {s}",
]
URL_SAFE = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~"


@settings(max_examples=60, deadline=None)
@given(
    shape=st.sampled_from(SHAPES),
    secret=st.text(alphabet=URL_SAFE, min_size=8, max_size=64),
    before=st.sampled_from(["", "error: ", "failed (", "line1\n"]),
    after=st.sampled_from(["", " and more", ")", "\nnext line", "; retry"]),
)
def test_no_generated_secret_survives_redaction_in_any_shape(shape: str, secret: str, before: str, after: str) -> None:
    # Secrets that are part of the shape's own words (e.g. 'password') would be found regardless.
    assume(secret.lower() not in shape.lower())
    text = before + shape.format(s=secret) + after
    redacted = redact_text(text)
    assert secret not in redacted
    assert "***" in redacted
    assert redacted.startswith(before)


@settings(max_examples=30, deadline=None)
@given(st.text(alphabet=URL_SAFE + " :=/", max_size=80))
def test_text_without_a_secret_name_is_unchanged(text: str) -> None:
    assume(not any(word in text.lower() for word in ("password", "passwd", "secret", "token", "signature",
                                                      "credential", "api", "bearer", "basic", "auth", "key",
                                                      "code", "sig", "://")))  # fmt: skip
    assert redact_text(text) == text


def test_deploy_tags_and_the_bundle_never_carry_a_credential() -> None:
    from kubesage.deploy.stack import stack_tags

    model = f"https://user:{SECRET}@mlflow.example.com/models/churn?token={SECRET}"
    (tag,) = stack_tags(model)
    assert tag == {"Key": "kubesage:model", "Value": "https://***@mlflow.example.com/models/churn?token=***"}
    assert stack_tags("models:/customer-churn/3") == [{"Key": "kubesage:model", "Value": "models:/customer-churn/3"}]


@pytest.mark.parametrize("token", ["$TOKEN", "eyJhbGciOiJIUzI1NiJ9.c2VjcmV0.sig"])
def test_redacted_json_stays_json(token: str) -> None:
    """`--output json` is redacted as text: a masked header must not eat the escape before a quote."""
    document = {"failure": f'run `curl -H "Authorization: Bearer {token}"` or set "MLFLOW_TRACKING_PASSWORD={token}"'}
    parsed = json.loads(redact_text(json.dumps(document)))
    if token.startswith("$"):
        assert parsed == document  # a placeholder, not a secret
    else:
        assert token not in parsed["failure"] and "Authorization: Bearer ***" in parsed["failure"]
