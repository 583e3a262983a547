"""Libraries imported without the optional layers a prediction-only process does not use.

`import xgboost` imports scikit-learn whenever it is installed (`xgboost.compat` takes its estimator
base classes from it), and scikit-learn imports SciPy's statistics; daal4py's core extension imports
pandas when it can. Together most of a `kubesage score` process's start-up: 1.9 s of CPU on this
machine where the rest is 1.1 s (measured with `python -X importtime` and `time`), in a command that
scores 10M rows in about 4 s. Both dependencies are optional to the library that imports them:
without scikit-learn, XGBoost defines stand-in base classes for its scikit-learn estimators and its
Booster API is the same; without pandas, daal4py takes NumPy arrays only, which is all kubesage
passes it.

`hidden` makes `import NAME` raise ImportError for the duration, as if NAME were not installed
(`sys.modules[NAME] = None`), then unhides it: a later `import NAME` works as usual. What the process
loses is only what the library built at that import: XGBoost's scikit-learn estimators
(`XGBClassifier` and the like, which kubesage does not use) lack scikit-learn's base classes, and
daal4py does not take DataFrames. A name already imported is not hidden.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def hidden(*names: str) -> Iterator[None]:
    """`import NAME` fails with ImportError inside the block, for each NAME not imported already."""
    hide = [name for name in names if name not in sys.modules]
    for name in hide:
        sys.modules[name] = None  # type: ignore[assignment]
    try:
        yield
    finally:
        for name in hide:
            if sys.modules.get(name, 0) is None:
                del sys.modules[name]


def import_xgboost_without_scikit_learn() -> None:
    """Import XGBoost for Booster use only; a no-op where XGBoost is imported already."""
    if "xgboost" in sys.modules:
        return
    with hidden("sklearn"):
        import xgboost  # noqa: F401  (imported for its side effect: the module cached in sys.modules)
