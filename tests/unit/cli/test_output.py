"""`fail`, the one way every command reports an error: redacted, its exit code, JSON when asked."""

from __future__ import annotations

import json
import logging

import click
import pytest
from click.testing import CliRunner

from kubesage.cli.output import fail, quiet_library_logs
from kubesage.errors import AccessDeniedError, DataError, KubesageError

SECRET = "hunter2"


def _command(exc: KubesageError, as_json: bool) -> click.Command:
    @click.command()
    def command() -> None:
        fail(exc, as_json)

    return command


@pytest.mark.parametrize(
    ("exc", "code"),
    [(DataError("x"), 2), (AccessDeniedError("x"), 3), (KubesageError("x"), 1)],
    ids=["DataError", "AccessDeniedError", "KubesageError"],
)
def test_exits_with_the_errors_own_code(exc: KubesageError, code: int) -> None:
    assert CliRunner().invoke(_command(exc, as_json=False)).exit_code == code


def test_text_is_one_line_on_stderr_with_credentials_masked() -> None:
    exc = DataError(f"cannot read s3://bucket/churn.csv?X-Amz-Signature={SECRET} [not markup] " + "word " * 40)
    result = CliRunner().invoke(_command(exc, as_json=False))
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1  # never wrapped, however long
    assert result.stderr.startswith("error: cannot read s3://bucket/churn.csv?X-Amz-Signature=*** [not markup] word")
    assert SECRET not in result.output


def test_json_is_one_object_on_stdout_with_credentials_masked() -> None:
    exc = AccessDeniedError(f"MLflow at https://me:{SECRET}@mlflow.example/ said no")
    result = CliRunner().invoke(_command(exc, as_json=True))
    assert result.exit_code == 3
    assert json.loads(result.stdout) == {
        "status": "error",
        "error": "MLflow at https://***@mlflow.example/ said no",
        "kind": "AccessDeniedError",
    }
    assert result.stderr == "error: MLflow at https://***@mlflow.example/ said no\n"


def test_libraries_info_logging_stays_off_the_console(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """The SageMaker SDK's import calls basicConfig(level=INFO); after the CLI's handler it does nothing."""
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [])
    monkeypatch.setattr(root, "level", logging.WARNING)
    quiet_library_logs()
    logging.basicConfig(level=logging.INFO)  # what sagemaker/core/experiments/_metrics.py does on import
    assert root.level == logging.WARNING and root.handlers == [logging.lastResort]
    logging.getLogger("botocore.credentials").info("Found credentials in environment variables.")
    logging.getLogger("kubesage.test").warning("a real warning")
    assert capfd.readouterr().err == "a real warning\n"
