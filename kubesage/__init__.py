"""kubesage: write a training pipeline once as KFP components; run it locally, on KFP or on SageMaker.

The Python API (`kubesage.run`, `kubesage.compile`, `kubesage.runs`, `kubesage.list_runners`, ...) lives in
`kubesage.sdk`; its names are forwarded here on first use, so `import kubesage` itself imports nothing
(the Lambda zip carries this file, and the runtime must stay light: tests/unit/deploy/test_package.py).
"""

from __future__ import annotations

import importlib
from typing import Any

# Typed callers import from kubesage.sdk; a TYPE_CHECKING import here would put the SDK's imports in the
# Lambda runtime's import graph, which the import contracts (rightly) refuse.
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


# `list_runners`, not `runners`: kubesage.runners is the runners package, and once imported it is an
# attribute of this module that no __getattr__ is asked for.
def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("kubesage.sdk"), name)
    raise AttributeError(f"module 'kubesage' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
