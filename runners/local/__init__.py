"""The local backend: KFP's own local runner, tasks forked from a warm process (or subprocesses)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from kubesage.runners.base import RunnerOptions
from kubesage.runners.registry import RunnerSpec


class LocalOptions(RunnerOptions):
    pipeline_root: Path | None = Field(
        default=None,
        description="where KFP's local runner writes task outputs; default $KUBESAGE_LOCAL_ROOT or ./local_outputs",
    )
    launcher: Literal["fork", "subprocess"] = Field(
        default="fork",
        description=(
            "how a task starts: fork (a child of a process that imported the libraries once) or "
            "subprocess (KFP's own: a new Python per task); fork falls back to subprocess where unavailable"
        ),
    )
    enable_caching: bool = Field(
        default=True,
        description=(
            "reuse the outputs of a task whose component and inputs (parameters, artifact contents) "
            "match an earlier successful run; the cache is <pipeline_root>/.kubesage_cache"
        ),
        json_schema_extra={"flag": "--no-cache", "switch_value": False, "flag_help": "run every task, reuse nothing"},
    )
    max_parallel: int | None = Field(
        default=None,
        ge=1,
        description="how many independent tasks run at once; default the number of CPU cores",
    )


RUNNERS = (
    RunnerSpec(
        name="local",
        runner="kubesage.runners.local.runner:LocalRunner",
        options=LocalOptions,
        summary="KFP's local runner: tasks forked from a warm process on this machine",
        needs="nothing (embedded MLflow store by default)",
    ),
)
