"""`kubesage run`, `kubesage compile` and `kubesage runners`: a pipeline on a backend of the registry."""

from __future__ import annotations

import json
import os
import sys
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape

from kubesage.cli.options import options_for, output_option, runner_option_flags
from kubesage.cli.output import err_console, fail, stdout_to_stderr
from kubesage.errors import KubesageError
from kubesage.util.redact import redact_text

# Where a pipeline given as a Python module is compiled to IR before it runs.
WORK_DIR = Path("build") / "kubesage"


def _runner_names() -> list[str]:
    from kubesage.runners.registry import runner_specs

    return list(runner_specs())


def _check_runner(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    from kubesage.runners.registry import runner_spec

    try:
        runner_spec(value)
    except KubesageError as exc:
        raise click.BadParameter(str(exc)) from None
    return value


@click.command()
@click.argument("pipeline")
@click.option(
    "--runner",
    default="local",
    show_default=True,
    callback=_check_runner,
    help=f"The backend: {', '.join(_runner_names())} (`kubesage runners` lists what each needs and its options).",
)
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE", help="A pipeline parameter (repeatable).")
@click.option("--verbose", "-v", is_flag=True, help="Also print every task's own log (always kept in a file).")
@runner_option_flags
@output_option
def run(
    pipeline: str,
    runner: str,
    params: tuple[str, ...],
    verbose: bool,
    runner_options: tuple[str, ...],
    output_format: str,
    **flags: Any,
) -> None:
    """Run PIPELINE (a name under pipelines/, module:function, or an IR YAML file)."""
    if not verbose:  # MLflow's own INFO lines (database set-up, ...) belong in the task logs
        os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    # A cached step's files are copied to this run's step run through a download: without this, MLflow
    # drew a "Downloading artifacts" progress bar per cached step on the console.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    from kubesage import sdk
    from kubesage.cli.run_output import ConsoleProgress, print_result
    from kubesage.ir.parameters import parse_assignments

    class RunConsole(ConsoleProgress):
        """The console's progress, with the run's header once every check has passed (never before a refusal)."""

        def starting(self, pipeline: str, runner: str) -> None:
            if not as_json:
                err_console.print(f"[bold]kubesage[/] running [cyan]{pipeline}[/] on the [cyan]{runner}[/] runner")

    as_json = output_format == "json"
    try:
        options = options_for(runner, flags, runner_options)
        given = parse_assignments(params)
        with stdout_to_stderr() if as_json else nullcontext():
            progress = RunConsole(err_console, verbose)
            result = sdk.run(
                pipeline, runner=runner, params=given, options=options, progress=progress, workdir=WORK_DIR
            )
    except KubesageError as exc:
        fail(exc, as_json)
    if as_json:
        click.echo(redact_text(json.dumps(result.to_dict(), indent=2)))
    else:
        print_result(result, given, Console())
    if not result.succeeded:
        sys.exit(130 if result.status == "interrupted" else 1)


def _check_target(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    from kubesage.runners.registry import compile_targets

    targets = compile_targets()
    if value not in targets:
        raise click.BadParameter(f"unknown target {value!r}; available: {', '.join(targets)}")
    return value


@click.command("compile")
@click.argument("pipeline")
@click.option(
    "--target",
    default="kfp",
    show_default=True,
    callback=_check_target,
    help="What to compile to: kfp (IR YAML) or sagemaker (a pipeline definition).",
)
@click.option("--output", "output_path", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--explain", is_flag=True, help="Also print how each task and feature maps onto the target.")
@runner_option_flags
def compile_command(
    pipeline: str, target: str, output_path: Path, explain: bool, runner_options: tuple[str, ...], **flags: Any
) -> None:
    """Compile PIPELINE to KFP IR YAML or to a SageMaker pipeline definition (offline, deterministic)."""
    from kubesage import sdk

    try:
        options = options_for(_target_runner(target), flags, runner_options)
        compiled = sdk.compile(
            pipeline, target=target, output=output_path, options=options, explain=explain, workdir=WORK_DIR
        )
    except KubesageError as exc:
        fail(exc)
    if compiled.explanation:
        click.echo(compiled.explanation, nl=False)
    err_console.print(f"wrote {compiled.path}", highlight=False)
    _print_placeholders(compiled.placeholders)


def _target_runner(target: str) -> str:
    from kubesage.runners.registry import compile_targets

    return compile_targets()[target].name


def _print_placeholders(placeholders: list[tuple[str, Any, str | None]]) -> None:
    """Name every value the definition holds only as a placeholder, and the flag that sets it."""
    if not placeholders:
        return
    err_console.print(
        "[yellow]placeholders[/] in this definition (fine to read or diff it; set them before deploying):",
        highlight=False,
    )
    for name, value, flag in placeholders:
        how = f"{flag} VALUE or --option {name}=VALUE" if flag else f"--option {name}=VALUE"
        err_console.print(escape(f"  {name} = {value}   set with {how}"), highlight=False, soft_wrap=True)


@click.command("runners")
@output_option
def runners_command(output_format: str) -> None:
    """The backends `kubesage run --runner` takes, what each needs, and its options."""
    from kubesage.runners.registry import describe_runners

    described = describe_runners()
    if output_format == "json":
        click.echo(json.dumps(described, indent=2))
        return
    console = Console()
    for entry in described:
        extra = escape(f"  (pip install 'kubesage[{entry['extra']}]')") if entry["extra"] else ""
        console.print(f"[bold cyan]{entry['name']}[/]: {entry['summary']}{extra}", highlight=False, soft_wrap=True)
        console.print(f"  needs: {entry['needs']}", highlight=False, soft_wrap=True)
        for option in entry["options"]:
            flag = f" ({option['flag']})" if option["flag"] else ""
            console.print(
                escape(f"  --option {option['name']}={option['default']!s}{flag}  {option['description']}"),
                highlight=False,
                soft_wrap=True,
            )
