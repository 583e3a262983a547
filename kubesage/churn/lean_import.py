"""XGBoost imported without its scikit-learn layer, for a process that only predicts from a Booster.

`import xgboost` imports scikit-learn whenever it is installed (`xgboost.compat` takes its estimator
base classes from it), and scikit-learn imports SciPy's statistics: most of a `kubesage score`
process's start-up, about 1 s of the 4-5 s in which it scores 10M rows on this machine (measured
with `python -X importtime`). scikit-learn is an optional dependency of XGBoost: without it XGBoost
defines stand-in base classes, and the Booster API, which is all scoring uses, is the same.

So a scoring process imports XGBoost with scikit-learn hidden (`sys.modules["sklearn"] = None` makes
`import sklearn` raise ImportError, as if it were not installed), then unhides it: a later
`import sklearn` works as usual. What that process loses is XGBoost's scikit-learn estimators
(`XGBClassifier` and the like, which kubesage does not use): they are built without scikit-learn's
base classes. A process that has imported XGBoost already keeps it as it is.
"""

from __future__ import annotations

import sys


def import_xgboost_without_scikit_learn() -> None:
    """Import XGBoost for Booster use only; a no-op where XGBoost or scikit-learn is imported already."""
    if "xgboost" in sys.modules or "sklearn" in sys.modules:
        return
    sys.modules["sklearn"] = None  # type: ignore[assignment]
    try:
        import xgboost  # noqa: F401  (imported for its side effect: the module cached in sys.modules)
    finally:
        del sys.modules["sklearn"]
