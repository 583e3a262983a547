"""Environment variables a step takes from its own SageMaker job when the job starts (kfp-kubernetes
`use_field_path_as_env` of `metadata.name`).

A KFP task reads its pod's name; a SageMaker step has no pod, and the closest identity is its job's name,
unique per step run as the pod's name is per task run, and known only once the job exists. The definition
names the variables (`KUBESAGE_JOB_NAME_ENV`, a JSON list); the shim sets each to the job's name: a training
job's from `TRAINING_JOB_NAME`, a processing job's from `/opt/ml/config/processingjobconfig.json` (both
written by SageMaker, and by the SDK's local mode).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from kubesage.errors import RunnerError

ENV_JOB_NAME_ENV = "KUBESAGE_JOB_NAME_ENV"
PROCESSING_JOB_CONFIG = Path("/opt/ml/config/processingjobconfig.json")


def encode(names: list[str]) -> str:
    return json.dumps(sorted(set(names)), separators=(",", ":"))


def job_name(environ: Mapping[str, str], processing_config: Path = PROCESSING_JOB_CONFIG) -> str:
    """This job's name: a training job's from its environment, a processing job's from its config file."""
    if environ.get("TRAINING_JOB_NAME"):
        return environ["TRAINING_JOB_NAME"]
    try:
        name = json.loads(processing_config.read_text(encoding="utf-8")).get("ProcessingJobName")
    except (OSError, ValueError, AttributeError) as exc:
        raise RunnerError(
            f"cannot find this job's name for use_field_path_as_env metadata.name: no TRAINING_JOB_NAME and "
            f"{processing_config} unreadable ({type(exc).__name__})"
        ) from exc
    if not isinstance(name, str) or not name:
        raise RunnerError(f"{processing_config} has no ProcessingJobName (wanted for metadata.name)")
    return name


def resolve_environment(environ: Mapping[str, str], processing_config: Path = PROCESSING_JOB_CONFIG) -> dict[str, str]:
    """The variables `KUBESAGE_JOB_NAME_ENV` in `environ` names, each set to this job's name; {} when unset."""
    text = environ.get(ENV_JOB_NAME_ENV)
    if not text:
        return {}
    try:
        names = json.loads(text)
    except ValueError as exc:
        raise RunnerError(f"{ENV_JOB_NAME_ENV} is not a JSON list of variable names: {exc}") from exc
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise RunnerError(f"{ENV_JOB_NAME_ENV} is not a JSON list of variable names")
    name = job_name(environ, processing_config)
    return dict.fromkeys(names, name)
