"""kubesage's Python API: what `kubesage run`, `compile`, `runs` and `runners` do, for notebooks and scripts.

    import kubesage

    result = kubesage.run("customer_churn", params={"input_data": "churn.csv"})
    result.metrics["roc_auc"], result.registered_model_version
    kubesage.runs(pipeline="customer-churn")          # a pandas DataFrame, like mlflow.search_runs

A pipeline is what the CLI takes (a built-in name, `package.module:function`, a compiled IR file) or
the `@dsl.pipeline` function itself. Errors are the CLI's: a `KubesageError` (kubesage.errors) with the
same one-line message, raised before anything is recorded when a parameter, an input or a runner's
preflight check fails. The CLI is a thin layer over these functions; `kubesage/__init__.py` forwards
the names in `__all__` here on first use, so `import kubesage` itself stays cheap.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

from kubesage.errors import KubesageError, PipelineNotFoundError, RunnerError
from kubesage.ir.inputs import check_inputs
from kubesage.ir.source import PipelineSource
from kubesage.runners.base import Progress, RunnerOptions, RunResult, StepEvent
from kubesage.runners.registry import describe_runners, get_runner, load_pipeline, placeholder_options

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "CompileResult",
    "KubesageError",
    "Progress",
    "RunResult",
    "StepEvent",
    "compile",
    "get_runner",
    "list_runners",
    "run",
    "runs",
]

# Where a pipeline given as Python (a function or module:function) is compiled to IR before it runs.
WORK_DIR = Path("build") / "kubesage"

# A pipeline: a name, module:function, an IR file, or a @dsl.pipeline function
Pipeline: TypeAlias = str | os.PathLike[str] | Any
Options: TypeAlias = RunnerOptions | Mapping[str, Any] | None


@dataclass(frozen=True)
class CompileResult:
    """What `compile` wrote, how the pipeline mapped (with `explain=True`), and what is still a placeholder."""

    path: Path
    explanation: str | None
    # (option, value, CLI flag or None) of every option the definition holds only as a placeholder
    placeholders: list[tuple[str, Any, str | None]]


def _source(pipeline: Pipeline, workdir: Path) -> PipelineSource:
    """Compiled IR for a name, module:function, IR file, or a @dsl.pipeline function."""
    if isinstance(pipeline, str | os.PathLike):
        return load_pipeline(os.fspath(pipeline), workdir)
    from kfp.dsl.graph_component import GraphComponent

    if not isinstance(pipeline, GraphComponent):
        raise PipelineNotFoundError(
            f"{pipeline!r} is not a pipeline: pass a @dsl.pipeline function, a built-in name, "
            "'package.module:function' or a compiled IR file"
        )
    from kubesage.ir.source import compile_pipeline_function

    safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in pipeline.name)
    workdir.mkdir(parents=True, exist_ok=True)
    return load_pipeline(str(compile_pipeline_function(pipeline, workdir / f"{safe}.yaml")), workdir)


def _given(params: Mapping[str, Any] | None) -> dict[str, Any]:
    """Parameters as given; a path object becomes its text, as typed on the CLI."""
    return {name: os.fspath(v) if isinstance(v, os.PathLike) else v for name, v in (params or {}).items()}


def run(
    pipeline: Pipeline,
    *,
    runner: str = "local",
    params: Mapping[str, Any] | None = None,
    options: Options = None,
    progress: Progress | Callable[[str], None] | None = None,
    workdir: str | os.PathLike[str] = WORK_DIR,
) -> RunResult:
    """Run `pipeline` on `runner` and wait for it to end; its MLflow parent run holds everything.

    Args:
        pipeline: a built-in name (`"customer_churn"`), `"package.module:function"`, a compiled IR file,
            or a `@dsl.pipeline` function.
        runner: a name from `runners()`: `local`, `kfp`, `sagemaker`, `sagemaker-local`.
        params: pipeline parameters, checked against the pipeline's typed inputs (strings are converted).
        options: the runner's options (`runners()` lists them), a mapping or the runner's options model.
        progress: a `Progress`, or a callable given one line per event; None reports nothing.
        workdir: where a pipeline given as Python is compiled to IR.

    Returns:
        The run's `RunResult` (`status`, `metrics`, `registered_model_version`, `steps`, ...). A run that
        starts and fails returns a result with `status="failed"` and the reason in `failure`.

    Raises:
        KubesageError: a parameter, input file, option or preflight check failed; nothing was recorded.
    """
    given = _given(params)
    backend = get_runner(runner, options)
    # A missing input file fails before anything is compiled (Runner.run checks the defaults too).
    check_inputs(given, backend.input_endpoint())
    source = _source(pipeline, Path(workdir))
    backend.check_parameters(source, given)
    return backend.run(source, given, progress=progress)


def compile(
    pipeline: Pipeline,
    *,
    output: str | os.PathLike[str],
    target: str = "kfp",
    options: Options = None,
    explain: bool = False,
    workdir: str | os.PathLike[str] = WORK_DIR,
) -> CompileResult:
    """Compile `pipeline` to KFP IR YAML (`target="kfp"`) or a SageMaker definition (`"sagemaker"`), offline.

    Raises:
        KubesageError: an unknown target, a bad option, or a feature the target cannot express.
    """
    from kubesage.runners.registry import compile_targets

    targets = compile_targets()
    if target not in targets:
        raise RunnerError(f"unknown target {target!r}; available: {', '.join(targets)}")
    backend = get_runner(targets[target].name, options)
    source = _source(pipeline, Path(workdir))
    explanation = backend.explain(source) if explain else None
    written = backend.compile(source, Path(output))
    return CompileResult(written, explanation, placeholder_options(backend.options))


def runs(
    pipeline: str | None = None,
    *,
    run_ids: Sequence[str] = (),
    limit: int = 20,
    tracking_uri: str | None = None,
) -> pd.DataFrame:
    """Pipeline runs from MLflow, newest first, one row each, as `mlflow.search_runs` shapes them.

    Columns: `run_id`, `start_time`, `pipeline`, `runner`, `status`, `registered_model`, then
    `metrics.NAME` and `params.NAME`. `run_ids` (full or the 8-character short ids) selects runs to
    compare instead of the most recent ones; `pipeline` matches either spelling.
    """
    import pandas as pd

    from kubesage.tracking.history import get_runs, recent_runs

    rows = get_runs(run_ids, tracking_uri) if run_ids else recent_runs(pipeline, limit, tracking_uri)
    records = [
        {
            "run_id": r.run_id,
            "start_time": pd.Timestamp(r.started, tz="UTC"),
            "pipeline": r.pipeline,
            "runner": r.runner,
            "status": r.status,
            "registered_model": r.registered,
            **{f"metrics.{k}": v for k, v in r.metrics.items()},
            **{f"params.{k}": v for k, v in r.params.items()},
        }
        for r in rows
    ]
    columns = ["run_id", "start_time", "pipeline", "runner", "status", "registered_model"]
    return pd.DataFrame.from_records(records, columns=columns + sorted({k for r in records for k in r} - set(columns)))


def list_runners() -> list[dict[str, Any]]:
    """Every runner in the registry: name, summary, what it needs, its pip extra and its options."""
    return describe_runners()
