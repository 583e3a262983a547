"""`kubesage serve` says how to send a request before it starts (issue 13: docs that work when pasted)."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from kubesage.cli import main


def test_serve_prints_pasteable_requests_then_refuses_a_missing_model(tmp_path: Path) -> None:
    missing = tmp_path / "no-model"
    result = CliRunner().invoke(main, ["serve", "--model-dir", str(missing), "--port", "8123"])
    assert result.exit_code != 0
    out = result.output
    assert f"serving {missing} on port 8123" in out
    assert "kubesage features records churn.csv --rows 2 --output request.json" in out
    assert "curl -s localhost:8123/invocations -H 'Content-Type: application/json' --data-binary @request.json" in out
    assert f"kubesage features transform churn.csv --rows 2 --model {missing} --output vectors.csv" in out
    assert "curl -s localhost:8123/invocations -H 'Content-Type: text/csv' --data-binary @vectors.csv" in out
    assert "does not exist" in out and "Traceback" not in out


def test_serve_refuses_a_bad_header_timeout_before_any_worker_starts(trained_model: Path) -> None:
    result = CliRunner().invoke(
        main,
        ["serve", "--model-dir", str(trained_model), "--port", "8124"],
        env={"KUBESAGE_HEADER_TIMEOUT_SECONDS": "0"},
    )
    assert result.exit_code != 0
    assert "KUBESAGE_HEADER_TIMEOUT_SECONDS='0' is out of range" in result.output
    assert "Traceback" not in result.output
