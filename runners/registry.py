"""Runner lookup by name. A new backend adds one line here and its own module, nothing else."""

from __future__ import annotations

import importlib

from kubesage.errors import RunnerError
from kubesage.runners.base import Runner

RUNNERS: dict[str, str] = {
    "local": "kubesage.runners.local:LocalRunner",
}


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
    runner: Runner = runner_class(**options)
    return runner
