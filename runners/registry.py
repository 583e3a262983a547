"""Runner lookup by name. A new backend adds one line here and its own module, nothing else."""

from __future__ import annotations

import importlib

from pydantic import ValidationError

from kubesage.errors import ParameterError, RunnerError
from kubesage.runners.base import Runner

RUNNERS: dict[str, str] = {
    "local": "kubesage.runners.local:LocalRunner",
    "sagemaker": "kubesage.runners.sagemaker.runner:SageMakerRunner",
    "sagemaker-local": "kubesage.runners.sagemaker.local_mode:SageMakerLocalRunner",
}
# The pip extra a runner's own dependencies come with.
EXTRAS: dict[str, str] = {"sagemaker": "sagemaker", "sagemaker-local": "sagemaker"}


def get_runner(name: str, **options: object) -> Runner:
    try:
        target = RUNNERS[name]
    except KeyError:
        raise RunnerError(f"unknown runner {name!r}; available: {', '.join(sorted(RUNNERS))}") from None
    module_name, _, class_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise RunnerError(
            f"the {name} runner needs extra packages ({exc.name}); install them with `pip install 'kubesage[{name}]'`"
        ) from exc
    runner_class = getattr(module, class_name)
    try:
        runner: Runner = runner_class(**options)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'option'}: {e['msg']}" for e in exc.errors())
        raise ParameterError(f"invalid {name} runner option: {problems}") from None
    return runner
