"""What `kubesage run` prints: one line per step start and end, a short summary, and what to do next.

Task logs (executor input, library chatter) are the runner's to keep in a file; they reach the
console only with `--verbose`. Everything here goes to stderr, so `--output json` keeps stdout clean.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from kubesage.runners.base import Progress, RunResult, StepEvent
from kubesage.runners.status import StepStatus

# The metrics the summary shows, in this order; `kubesage runs --wide` and MLflow keep all of them.
KEY_METRICS: tuple[str, ...] = ("roc_auc", "pr_auc", "accuracy", "precision", "recall", "f1", "log_loss")
_MARKS = {
    StepStatus.STARTED: "[dim]..[/]",
    StepStatus.SUCCEEDED: "[green]ok[/]",
    StepStatus.FAILED: "[red]!![/]",
    StepStatus.SKIPPED: "[dim]--[/]",
    StepStatus.CACHED: "[cyan]==[/]",
}


class ConsoleProgress(Progress):
    """Progress as console lines: `  ok train  succeeded  12.3 s`; task output only when verbose."""

    def __init__(self, console: Console, verbose: bool = False) -> None:
        self._console = console
        self.verbose = verbose

    def info(self, message: str) -> None:
        self._console.print(escape(message), style="dim", highlight=False, soft_wrap=True)

    def step(self, event: StepEvent) -> None:
        self._console.print(step_line(event), highlight=False, soft_wrap=True)

    def log(self, line: str) -> None:
        if self.verbose:
            self._console.print(escape(line), style="dim", highlight=False, soft_wrap=True)


def step_line(event: StepEvent) -> str:
    mark = _MARKS.get(event.status, "  ")
    seconds = f"{event.seconds:6.1f} s" if event.seconds is not None else ""
    detail = f"  {escape(event.message)}" if event.message else ""
    return f"  {mark} {escape(event.name):<16} {event.status:<10}{seconds}{detail}"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 'es' if word.endswith('ch') else 's'}"


def task_count(result: RunResult) -> str:
    """`5 tasks ran, 1 branch skipped`: what the backend executed, whether or not the tasks track anything."""
    text = f"{_plural(result.tasks_run, 'task')} ran"
    if result.skipped_branches:
        text += f", {_plural(len(result.skipped_branches), 'branch')} skipped"
    return text


def metrics_table(metrics: Mapping[str, float]) -> Table | None:
    """The key metrics in one row, so the summary stays a few lines tall."""
    shown = [name for name in KEY_METRICS if name in metrics]
    if not shown:
        return None
    table = Table(
        box=box.SIMPLE_HEAD, title="metrics (test split)", title_justify="left", pad_edge=False, show_edge=False
    )
    for name in shown:
        table.add_column(name, justify="right")
    table.add_row(*[f"{metrics[name]:.4f}" for name in shown])
    return table


def next_steps(result: RunResult, parameters: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(what, command) pairs that work when pasted, for the run that just ended."""
    steps: list[tuple[str, str]] = []
    ui = "kubesage ui" if result.tracking_uri.startswith("sqlite:") else f"open {result.tracking_uri}"
    steps.append(("see it in MLflow", f"{ui}   # runs side by side: kubesage runs --pipeline {result.pipeline}"))
    if not result.registered_model_version:
        return steps
    model = f"models:/{result.registered_model_name}/{result.registered_model_version}"
    if result.model_package_arn:
        steps.append(("approve it", f"kubesage approve {result.model_package_arn}"))
        steps.append(
            (
                "deploy it",
                f"kubesage deploy --model-package {result.model_package_arn} --model {model} "
                "--execution-role ROLE_ARN --bucket BUCKET",
            )
        )
    steps.append(("serve the model", f"kubesage serve --model {model} --port 8080"))
    data = str(parameters.get("input_data", ""))
    source = shlex.quote(data) if data and Path(data).is_file() else "YOUR_DATA.csv"
    steps.append(("make a request", f"kubesage features records {source} --rows 2 --output request.json"))
    steps.append(
        (
            "send it",
            "curl -s localhost:8080/invocations -H 'Content-Type: application/json' --data-binary @request.json",
        )
    )
    return steps


def print_result(result: RunResult, parameters: Mapping[str, Any], console: Console) -> None:
    """The summary after the step lines: outcome, metrics, model, and the next steps."""
    colour = "green" if result.succeeded else "red"
    console.print(
        f"[bold {colour}]{result.status}[/] {escape(result.pipeline)} on {result.runner} "
        f"in {result.wall_seconds:.0f} s: {task_count(result)}  (MLflow run {result.mlflow_run_id})",
        highlight=False,
        soft_wrap=True,
    )
    for branch, why in result.skipped_branches.items():
        console.print(f"  [dim]skipped[/] {escape(branch)}" + (f": {escape(why)}" if why else ""), highlight=False)
    table = metrics_table(result.metrics)
    if table is not None:
        console.print(table)
    if result.registered_model_version:
        console.print(
            f"[green]registered[/] models:/{result.registered_model_name}/{result.registered_model_version}",
            highlight=False,
        )
    if result.model_package_arn:
        console.print(f"[green]model package[/] {escape(result.model_package_arn)}", highlight=False, soft_wrap=True)
    elif result.succeeded and result.not_registered_reason:
        # Only a pipeline with a register step (or its gate) records why nothing was registered.
        console.print(f"[yellow]not registered[/]: {escape(result.not_registered_reason)}", highlight=False)
    if not result.succeeded:
        console.print(f"[bold red]error:[/] {escape(result.failure or result.status)}", highlight=False, soft_wrap=True)
        return
    console.print("[bold]next steps[/]")
    for what, command in next_steps(result, parameters):
        console.print(f"  {what + ':':<18} {escape(command)}", highlight=False, soft_wrap=True)
