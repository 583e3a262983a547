"""The `kubesage` command line: the root group and every command group wired onto it, nothing else.

Each group lives in its own module of this package; they share `options` (the `--output` option and
the runner flags) and `output` (one way to report an error). `kubesage.cli:main` is the entry point.

A command's module is imported when that command runs (or when `--help` lists them all), as click's
documentation shows for large CLIs ("Lazily Loading Subcommands"): `kubesage score` then does not pay
for the runners, KFP and MLflow that `kubesage run` imports, about a third of a second per process.
"""

from __future__ import annotations

import atexit
import gc
import importlib
from typing import Any

import click

from kubesage.cli.output import quiet_library_logs

# Command name -> "module:attribute" of its click command. Click lists them alphabetically in --help.
COMMANDS: dict[str, str] = {
    "run": "kubesage.cli.run:run",
    "compile": "kubesage.cli.run:compile_command",
    "runners": "kubesage.cli.run:runners_command",
    "data": "kubesage.cli.data:data",
    "runs": "kubesage.cli.runs:runs",
    "serve": "kubesage.cli.serve:serve",
    "ui": "kubesage.cli.runs:ui",
    "features": "kubesage.cli.features:features",
    "score": "kubesage.cli.score:score",
    "api": "kubesage.cli.api:api_command",
    "deploy": "kubesage.cli.api:deploy_command",
    "rollback": "kubesage.cli.api:rollback_command",
    "approve": "kubesage.cli.api:approve_command",
    "api-key": "kubesage.cli.api:api_key_group",
    "drift": "kubesage.cli.drift:drift_command",
    "mlflow": "kubesage.cli.mlflow_service:mlflow_group",
}


class LazyGroup(click.Group):
    """A group whose commands are imported by name, on first use."""

    def __init__(self, *args: object, lazy_commands: dict[str, str], **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.lazy_commands = lazy_commands

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy_commands})

    def main(self, *args: Any, **kwargs: Any) -> Any:
        collect_garbage_less_often()  # before the command's module and its libraries are imported
        return super().main(*args, **kwargs)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy_commands and cmd_name not in self.commands:
            self.add_command(_load(cmd_name, self.lazy_commands[cmd_name]), cmd_name)
        return super().get_command(ctx, cmd_name)


def _load(name: str, target: str) -> click.Command:
    module_name, attribute = target.split(":")
    command = getattr(importlib.import_module(module_name), attribute)
    if not isinstance(command, click.Command) or command.name != name:
        raise TypeError(f"{target} is not the click command {name!r}")  # a wiring mistake here, found by the tests
    return command


@click.group(cls=LazyGroup, lazy_commands=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="kubesage")
def main() -> None:
    """Write a training pipeline once as KFP components; run it locally, on KFP or on SageMaker."""
    quiet_library_logs()
    skip_garbage_collection_at_exit()


# Allocations between two young-generation collections (Python's default: 700).
YOUNG_COLLECTION_THRESHOLD = 10_000


def collect_garbage_less_often() -> None:
    """Run the cycle collector after 10,000 allocations rather than 700, for this process.

    A command's imports (MLflow, KFP, pandas, SQLAlchemy: 400,000 objects that live until the exit)
    made the collector run a full collection seven times in a `kubesage run`, each over everything
    imported so far: 0.85 s of its 5 s of CPU. With this, none runs during the imports, and the young
    collections take 0.35 s in all. Cycles are still collected, in larger batches; a long command
    (following a SageMaker execution) keeps its memory bounded as before.
    """
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, middle, old)


def skip_garbage_collection_at_exit() -> None:
    """Spare the process the cycle collection Python runs over every object as it exits.

    A command that imported MLflow, KFP and pandas holds millions of objects; collecting them all at
    exit took 0.8-0.9 s of CPU after a `kubesage run` had printed its last line, 0.1 s with this. The
    memory goes back to the system with the process either way, and every exit handler still runs
    (MLflow's, logging's flush, temporary-file clean-ups): freezing only takes the objects out of the
    collector's reach. Registered once per process however often `main` runs (click's test runner
    invokes it many times in one process).
    """
    atexit.unregister(gc.freeze)
    atexit.register(gc.freeze)
