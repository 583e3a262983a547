"""The CLI's layout: every command group is wired onto `main`, and only kubesage.cli defines commands."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from kubesage.cli import main

COMMANDS = [
    "api",
    "api-key",
    "approve",
    "compile",
    "data",
    "deploy",
    "drift",
    "features",
    "mlflow",
    "rollback",
    "run",
    "runners",
    "runs",
    "score",
    "serve",
    "ui",
]


def test_main_has_every_command_and_each_answers_help() -> None:
    assert main.list_commands(click.Context(main)) == COMMANDS
    for name in COMMANDS:
        result = CliRunner().invoke(main, [name, "--help"])
        assert result.exit_code == 0, result.output
        assert result.output.startswith(f"Usage: main {name} ")


# click outside the CLI package: an import, or a command or group defined (`@click.command`, `@x.group`).
DEFINES_COMMAND = re.compile(r"^\s*@(click|\w+)\.(command|group)\b|^\s*(import click|from click\b)", re.MULTILINE)


@pytest.mark.parametrize("package", ["kubesage", "kubesage.components", "kubesage.pipelines", "kubesage.runners"])
def test_no_module_outside_the_cli_package_uses_click(package: str) -> None:
    root = Path(importlib.import_module(package).__file__ or "").parent
    cli = Path(importlib.import_module("kubesage.cli").__file__ or "").parent
    offenders = [
        str(path.relative_to(root))
        for path in root.rglob("*.py")
        if not path.is_relative_to(cli) and DEFINES_COMMAND.search(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []


def test_a_command_imports_only_its_own_module() -> None:
    """`kubesage score --help` must not pay for `kubesage run`'s KFP, MLflow and SageMaker SDK at start-up."""
    import subprocess
    import sys

    probe = (
        "import sys; from click.testing import CliRunner; from kubesage.cli import main; "
        "result = CliRunner().invoke(main, ['score', '--help']); assert result.exit_code == 0, result.output; "
        "print(sorted(m for m in ('kubesage.cli.run', 'kubesage.cli.api', 'kfp', 'mlflow', 'sagemaker')"
        " if m in sys.modules))"
    )
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == "[]"
