"""`python -m kubesage.image train|serve`: what the image's train and serve commands run.

XGBoost is imported first for Booster use only (kubesage.churn.lean_import): neither command uses its
scikit-learn estimators, and a training host or a server started without scikit-learn and SciPy's
statistics starts about 1 s of CPU sooner.
"""

import sys

from kubesage.churn.lean_import import import_xgboost_without_scikit_learn

import_xgboost_without_scikit_learn()

from kubesage.image.entry import main  # noqa: E402  (after the lean import, on purpose)

sys.exit(main())
