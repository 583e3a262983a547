"""The `kubesage` command line: a thin layer over the package's functions.

Errors the user can fix print one line (no traceback) and exit non-zero. `--output json` prints one
JSON object on stdout and sends everything else (task logs, progress) to stderr.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.markup import escape

from kubesage.cli import api as api_cli
from kubesage.errors import KubesageError
from kubesage.util.redact import redact_text, redact_uri

F = TypeVar("F", bound=Callable[..., Any])
WORK_DIR = Path("build") / "kubesage"
err_console = Console(stderr=True)


def _fail(exc: KubesageError, as_json: bool) -> None:
    # Messages may quote a tracking or data URI: never print the credentials in one.
    message = redact_text(str(exc))
    if as_json:
        click.echo(json.dumps({"status": "error", "error": message, "kind": type(exc).__name__}))
    # soft_wrap: one line whatever the terminal width, so scripts and logs see the whole message
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    sys.exit(exc.exit_code)


@contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """Route fd 1 to fd 2 so subprocess and library output cannot corrupt the JSON on stdout."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def output_option(func: F) -> F:
    return click.option(
        "--output",
        "output_format",
        type=click.Choice(["text", "json"]),
        default="text",
        show_default=True,
        help="json prints one JSON object on stdout, for scripts.",
    )(func)


def _runner_specs() -> dict[str, Any]:
    from kubesage.runners.registry import runner_specs

    return runner_specs()


def _check_runner(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    from kubesage.runners.registry import runner_spec

    try:
        runner_spec(value)
    except KubesageError as exc:
        raise click.BadParameter(str(exc)) from None
    return value


def runner_option_flags(func: F) -> F:
    """One flag per option field that asks for one (--image, --role, ...), plus --option NAME=VALUE."""
    from kubesage.runners.registry import option_flags

    for flag in reversed(option_flags()):
        scope = ", ".join(flag.runners)
        if flag.switch_value is not None:
            func = click.option(
                flag.flag,
                f"flag_{flag.field}",
                flag_value=flag.switch_value,
                default=None,
                help=f"{scope}: {flag.help}.",
            )(func)
            continue
        func = click.option(flag.flag, f"flag_{flag.field}", default=None, help=f"{scope}: {flag.help}.")(func)
    return click.option(
        "--option",
        "runner_options",
        multiple=True,
        metavar="NAME=VALUE",
        help="Any runner option (repeatable; `kubesage runners` lists them). JSON values for lists and numbers.",
    )(func)


def _options_for(runner: str, flags: dict[str, Any], pairs: tuple[str, ...]) -> dict[str, Any]:
    """The options the user set for `runner`: its flags and --option values; flags of other runners refused."""
    from kubesage.ir.parameters import parse_assignments
    from kubesage.runners.registry import option_flags, parse_option_values, runner_spec

    spec = runner_spec(runner)
    chosen: dict[str, Any] = {}
    by_field = {f.field: f for f in option_flags()}
    for key, value in flags.items():
        if value is None:
            continue
        flag = by_field[key.removeprefix("flag_")]
        if runner not in flag.runners:
            raise click.UsageError(f"{flag.flag} applies to the {', '.join(flag.runners)} runner(s), not {runner}")
        chosen[flag.field] = value
    chosen.update(parse_option_values(spec, parse_assignments(pairs, what="--option")))
    return chosen


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="kubesage")
def main() -> None:
    """Write a training pipeline once as KFP components; run it locally, on KFP or on SageMaker."""


@main.command()
@click.argument("pipeline")
@click.option(
    "--runner",
    default="local",
    show_default=True,
    callback=_check_runner,
    help=f"The backend: {', '.join(_runner_specs())} (`kubesage runners` lists what each needs and its options).",
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
    from kubesage.cli.run_output import ConsoleProgress, print_result
    from kubesage.ir.inputs import check_inputs
    from kubesage.ir.parameters import parse_assignments
    from kubesage.runners.registry import get_runner, load_pipeline

    as_json = output_format == "json"
    try:
        options = _options_for(runner, flags, runner_options)
        given = parse_assignments(params)
        # First, before compiling anything: a missing input file fails at once (Runner.run checks
        # the defaults too, still before any MLflow run exists).
        check_inputs(given, options.get("s3_endpoint_url"))
        backend = get_runner(runner, options)
        source = load_pipeline(pipeline, WORK_DIR)
        backend.check_parameters(source, given)  # before anything runs, even before the run header
        if not as_json:
            err_console.print(f"[bold]kubesage[/] running [cyan]{source.name}[/] on the [cyan]{runner}[/] runner")
        with _stdout_to_stderr() if as_json else _nullcontext():
            result = backend.run(source, given, progress=ConsoleProgress(err_console, verbose))
    except KubesageError as exc:
        _fail(exc, as_json)
        return
    if as_json:
        click.echo(redact_text(json.dumps(result.to_dict(), indent=2)))
    else:
        print_result(result, given, Console())
    if not result.succeeded:
        sys.exit(130 if result.status == "interrupted" else 1)


@contextmanager
def _nullcontext() -> Iterator[None]:
    yield


def _check_target(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    from kubesage.runners.registry import compile_targets

    targets = compile_targets()
    if value not in targets:
        raise click.BadParameter(f"unknown target {value!r}; available: {', '.join(targets)}")
    return value


@main.command("compile")
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
    from kubesage.runners.registry import compile_targets, get_runner, load_pipeline

    runner = compile_targets()[target].name
    try:
        backend = get_runner(runner, _options_for(runner, flags, runner_options))
        source = load_pipeline(pipeline, WORK_DIR)
        report = backend.explain(source) if explain else None
        written = backend.compile(source, output_path)
    except KubesageError as exc:
        _fail(exc, as_json=False)
        return
    if report:
        click.echo(report, nl=False)
    err_console.print(f"wrote {written}", highlight=False)
    _print_placeholders(backend.options)


def _print_placeholders(options: Any) -> None:
    """Name every value the definition holds only as a placeholder, and the flag that sets it."""
    from kubesage.runners.registry import placeholder_options

    placeholders = placeholder_options(options)
    if not placeholders:
        return
    err_console.print(
        "[yellow]placeholders[/] in this definition (fine to read or diff it; set them before deploying):",
        highlight=False,
    )
    for name, value, flag in placeholders:
        how = f"{flag} VALUE or --option {name}=VALUE" if flag else f"--option {name}=VALUE"
        err_console.print(escape(f"  {name} = {value}   set with {how}"), highlight=False, soft_wrap=True)


@main.command("runners")
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


@main.group()
def data() -> None:
    """Data utilities."""


@data.command("generate")
@click.option("--rows", type=click.IntRange(min=1), default=5000, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--output", "output_path", required=True, type=click.Path(dir_okay=False, path_type=Path))
def data_generate(rows: int, seed: int, output_path: Path) -> None:
    """Write a synthetic churn CSV with the seed dataset's 21 columns."""
    from kubesage.churn.synthetic import write_churn_csv

    try:
        written = write_churn_csv(rows, seed, output_path)
    except KubesageError as exc:
        _fail(exc, as_json=False)
        return
    err_console.print(f"wrote {rows} rows to {written}")


@main.command()
@click.option("--pipeline", "pipeline_name", default=None, help="Only runs of this pipeline (either spelling).")
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--wide", is_flag=True, help="Every metric and parameter, full run ids (needs a wide terminal).")
@click.option(
    "--compare", "compare_ids", multiple=True, metavar="RUN", help="Runs side by side (two or more; repeatable)."
)
@click.argument("more_ids", nargs=-1, metavar="[RUN...]")
@output_option
def runs(
    pipeline_name: str | None,
    limit: int,
    wide: bool,
    compare_ids: tuple[str, ...],
    more_ids: tuple[str, ...],
    output_format: str,
) -> None:
    """Recent pipeline runs from MLflow: metrics and the parameters that differ.

    `kubesage runs --compare RUN RUN...` shows two or more runs (full or short ids) side by side.
    """
    from kubesage.cli.run_history import compare_table, get_runs, recent_runs, runs_table

    as_json = output_format == "json"
    wanted = (*compare_ids, *more_ids)
    try:
        if more_ids and not compare_ids:
            raise click.UsageError("run ids go with --compare: kubesage runs --compare RUN RUN...")
        if wanted and len(wanted) < 2:
            raise click.UsageError("--compare needs two or more run ids")
        rows = get_runs(wanted) if wanted else recent_runs(pipeline_name, limit)
    except KubesageError as exc:
        _fail(exc, as_json)
        return
    if as_json:
        click.echo(redact_text(json.dumps([r.to_dict() for r in rows], indent=2)))
        return
    if not rows:
        hint = f" of pipeline {pipeline_name}" if pipeline_name else ""
        err_console.print(f"no runs{hint} yet; start one with `kubesage run PIPELINE`")
        return
    Console().print(compare_table(rows) if wanted else runs_table(rows, wide=wide))


@main.command()
@click.option(
    "--model-dir", "model_dir", default=None, help="A model directory (xgboost-model.ubj [+ feature_schema.json])."
)
@click.option("--model", "model_uri", default=None, help="An MLflow model URI, e.g. models:/customer-churn/1.")
@click.option("--host", default=None, help="Interface to listen on (default: $KUBESAGE_SERVE_HOST or 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (default: $SAGEMAKER_BIND_TO_PORT or 8080).")
@click.option("--workers", type=click.IntRange(min=1), default=None, help="Worker processes (default: CPUs).")
@click.option("--threads", type=click.IntRange(min=1), default=None, help="daal4py threads per worker.")
def serve(
    model_dir: str | None,
    model_uri: str | None,
    host: str | None,
    port: int | None,
    workers: int | None,
    threads: int | None,
) -> None:
    """Serve a model over SageMaker's /ping and /invocations contract, without Docker."""
    from kubesage.serving.model_source import resolve_model_dir
    from kubesage.serving.server import serve as run_server

    if (model_dir is None) == (model_uri is None):
        raise click.UsageError("give exactly one of --model-dir DIR or --model URI")
    err_console.print(_request_examples(model_uri or model_dir or "", port), highlight=False, soft_wrap=True)
    try:
        run_server(
            resolve_model_dir(model_dir or model_uri or ""), host=host, port=port, workers=workers, threads=threads
        )
    except KubesageError as exc:
        _fail(exc, as_json=False)


def _request_examples(model: str, port: int | None) -> str:
    """Requests that work when pasted: raw records (the model's schema turns them into features) and CSV."""
    from kubesage.serving.server import DEFAULT_PORT, ENV_PORT

    shown = port or int(os.environ.get(ENV_PORT) or DEFAULT_PORT)
    url = f"localhost:{shown}/invocations"
    return "\n".join(
        [
            f"serving {model} on port {shown} once /ping answers 200 (Ctrl-C stops). Try, with your churn CSV:",
            "  kubesage features records churn.csv --rows 2 --output request.json",
            f"  curl -s {url} -H 'Content-Type: application/json' --data-binary @request.json",
            f"  kubesage features transform churn.csv --rows 2 --model {model} --output vectors.csv",
            f"  curl -s {url} -H 'Content-Type: text/csv' --data-binary @vectors.csv",
        ]
    )


@main.command()
@click.option("--port", type=int, default=5000, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True)
def ui(port: int, host: str) -> None:
    """Open the MLflow UI on the tracking store in force (the embedded SQLite store by default)."""
    from kubesage.tracking import tracking_uri

    uri = tracking_uri()
    if not uri.startswith("sqlite:"):
        err_console.print(f"MLFLOW_TRACKING_URI is {redact_uri(uri)}: open that server's UI in a browser.")
        return
    err_console.print(f"MLflow UI on http://{host}:{port} for {uri}", highlight=False)
    for name, url in _experiment_urls(uri, f"http://{host}:{port}"):
        err_console.print(f"  {name}: {url}", highlight=False, soft_wrap=True)
    command = ["mlflow", "ui", "--backend-store-uri", uri, "--host", host, "--port", str(port), "--workers", "1"]
    os.execvp(sys.executable, [sys.executable, "-m", *command])


main.add_command(api_cli.api_command)
main.add_command(api_cli.deploy_command)
main.add_command(api_cli.approve_command)
main.add_command(api_cli.api_key_group)

from kubesage.cli.features import features  # noqa: E402  (its own module; registered here)

main.add_command(features)


def _experiment_urls(uri: str, base: str) -> list[tuple[str, str]]:
    """Each kubesage experiment's runs table, in the layout kubesage keeps (runner, metrics, params)."""
    from mlflow import MlflowClient

    from kubesage.tracking.ui_view import VIEW_TAG, runs_url

    try:
        experiments = MlflowClient(tracking_uri=uri).search_experiments()
    except Exception:  # the UI still starts; it shows the store's own error
        return []
    return [(e.name, runs_url(base, e.experiment_id)) for e in experiments if VIEW_TAG in e.tags]


if __name__ == "__main__":
    main()
