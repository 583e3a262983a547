"""What each uvicorn worker imports first: the app factory, with XGBoost loaded for Booster use only.

uvicorn starts each worker as a new interpreter that imports the app factory by name. Importing
XGBoost without scikit-learn (`kubesage.churn.lean_import`) before the server's modules import it
spares every worker scikit-learn and SciPy's statistics, about 1 s of CPU per worker start on this
machine; the server uses XGBoost's Booster and oneDAL only.
"""

from kubesage.churn.lean_import import import_xgboost_without_scikit_learn

import_xgboost_without_scikit_learn()

from kubesage.serving.server import app_from_env  # noqa: E402  (after the lean import, on purpose)

__all__ = ["app_from_env"]
