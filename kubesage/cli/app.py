"""The `kubesage` command line: the root group and every command group wired onto it, nothing else.

Each group lives in its own module of this package; they share `options` (the `--output` option and
the runner flags) and `output` (one way to report an error). `kubesage.cli:main` is the entry point.
"""

from __future__ import annotations

import click

from kubesage.cli.api import api_command, api_key_group, approve_command, deploy_command, rollback_command
from kubesage.cli.data import data
from kubesage.cli.drift import drift_command
from kubesage.cli.features import features
from kubesage.cli.mlflow_service import mlflow_group
from kubesage.cli.output import quiet_library_logs
from kubesage.cli.run import compile_command, run, runners_command
from kubesage.cli.runs import runs, ui
from kubesage.cli.score import score
from kubesage.cli.serve import serve


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="kubesage")
def main() -> None:
    """Write a training pipeline once as KFP components; run it locally, on KFP or on SageMaker."""
    quiet_library_logs()


# Click lists them alphabetically in --help whatever the order here.
COMMANDS: tuple[click.Command, ...] = (
    run,
    compile_command,
    runners_command,
    data,
    runs,
    serve,
    ui,
    features,
    score,
    api_command,
    deploy_command,
    rollback_command,
    approve_command,
    api_key_group,
    drift_command,
    mlflow_group,
)
for _command in COMMANDS:
    main.add_command(_command)
