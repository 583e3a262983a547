"""The local backend: KFP's own local runner, each task a subprocess of this interpreter."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from kubesage.runners.base import RunnerOptions
from kubesage.runners.registry import RunnerSpec


class LocalOptions(RunnerOptions):
    pipeline_root: Path | None = Field(
        default=None,
        description="where KFP's local runner writes task outputs; default $KUBESAGE_LOCAL_ROOT or ./local_outputs",
    )


RUNNERS = (
    RunnerSpec(
        name="local",
        runner="kubesage.runners.local.runner:LocalRunner",
        options=LocalOptions,
        summary="KFP's local runner: each task a subprocess on this machine",
        needs="nothing (embedded MLflow store by default)",
    ),
)
