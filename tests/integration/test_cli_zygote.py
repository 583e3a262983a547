"""The zygote `run_cli` forks `kubesage` commands from (tests/cli_zygote.py): each command gets the
test's environment, working directory and exit status, and one that overruns is killed."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.integration.cli_helpers import run_cli

pytestmark = pytest.mark.integration


def test_a_command_runs_in_its_own_environment_and_directory(tmp_path: Path) -> None:
    # A relative SQLite URI resolves against the command's working directory: the store appears there
    # only if the command got both the URI (its environment) and the directory.
    listed = run_cli(["runs", "--output", "json"], tmp_path, "sqlite:///relative.db")
    assert listed.code == 0, listed.stderr
    assert listed.stdout.strip() == "[]"
    assert (tmp_path / "relative.db").is_file()
    refused = run_cli(["run", "no_such_pipeline"], tmp_path, "sqlite:///relative.db")
    assert refused.code == 2
    assert refused.stderr.startswith("error: unknown pipeline 'no_such_pipeline'") and refused.stdout == ""


def test_a_command_that_overruns_is_killed_and_the_next_one_runs(tmp_path: Path) -> None:
    # Seconds of work (a pipeline run would do too, but its fork server, which the kill does not reach,
    # as subprocess.run's does not, would go on importing its libraries for 2 s of CPU).
    generate = ["data", "generate", "--rows", "3000000", "--output", str(tmp_path / "big.csv")]
    with pytest.raises(subprocess.TimeoutExpired):
        run_cli(generate, tmp_path, f"sqlite:///{tmp_path / 'mlflow.db'}", timeout=0.5)
    after = run_cli(["run", "no_such_pipeline"], tmp_path, f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert after.code == 2
