"""oneDAL's gradient-boosted trees through daal4py's core, without daal4py's scikit-learn layer.

`import daal4py` runs the package's `__init__`, which imports `daal4py.mb` and `daal4py.sklearn`,
and with them scikit-learn and SciPy: 1.0-1.4 s of start-up on this machine, measured with
`python -X importtime`, where `kubesage score` scores 10M rows in about 4 s and a serving worker is
waited for before it answers. Prediction needs two pieces only: the XGBoost -> oneDAL conversion
(`daal4py.mb.gbt_convertors`, plain Python over the core) and `gbt_classification_prediction` (the
core extension, `daal4py._daal4py`). `load_core` loads just those, under daal4py's own module names,
with stand-ins for the two package modules whose `__init__` it skips; the stand-ins leave
`sys.modules` once the pieces are loaded, so a later `import daal4py` imports the whole package (and
reuses the core already loaded). A process that has imported daal4py already uses it as it is. The
core is loaded with pandas hidden where pandas is not imported yet (kubesage.churn.lean_import): it
then takes NumPy arrays only, which is all kubesage gives it.

The calls are the ones `daal4py.mb.GBTDAALModel.predict_proba` makes; should daal4py's layout
change so that the pieces cannot be loaded alone, `load_core` imports the whole package instead.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import threading
import types
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kubesage.churn.lean_import import hidden

if TYPE_CHECKING:
    import numpy as np
    import xgboost as xgb

_CORE = "daal4py._daal4py"
_CONVERTORS = "daal4py.mb.gbt_convertors"


@dataclass(frozen=True)
class Core:
    """What prediction uses of daal4py: the core extension's calls and the XGBoost converter."""

    prediction: Any  # daal4py.gbt_classification_prediction
    daalinit: Any  # daal4py.daalinit: oneDAL's thread count, process-global
    from_xgboost: Any  # daal4py.mb.gbt_convertors.get_gbt_model_from_xgboost


_lock = threading.Lock()
_loaded: Core | None = None


def load_core() -> Core:
    """daal4py's prediction and converter, loaded once per process (thread-safe)."""
    global _loaded
    with _lock:
        if _loaded is None:
            _loaded = _whole_package() if "daal4py" in sys.modules else _core_alone()
        return _loaded


def _whole_package() -> Core:
    import daal4py
    import daal4py.mb.gbt_convertors as convertors

    return Core(
        prediction=daal4py.gbt_classification_prediction,
        daalinit=daal4py.daalinit,
        from_xgboost=convertors.get_gbt_model_from_xgboost,
    )


def _core_alone() -> Core:
    try:
        with hidden("pandas"):  # optional to the core (DataFrame input), a third of a second to import
            core, convertors = _load_pieces()
    except (ImportError, AttributeError, OSError):
        return _whole_package()
    return Core(
        prediction=core.gbt_classification_prediction,
        daalinit=core.daalinit,
        from_xgboost=convertors.get_gbt_model_from_xgboost,
    )


def _load_pieces() -> tuple[types.ModuleType, types.ModuleType]:
    try:
        package = _stand_in("daal4py")
        _stand_in("daal4py.mb")
        core = _load(_CORE)
        # What the package's `from daal4py._daal4py import *` would give the converter's `from .. import`.
        package.__dict__.update({name: value for name, value in vars(core).items() if not name.startswith("__")})
        return core, _load(_CONVERTORS)
    finally:
        # The core stays registered (an extension module loads once per process); the stand-ins and the
        # converter, loaded against them, go, so that `import daal4py` later runs the real `__init__`s.
        for name in ("daal4py", "daal4py.mb", _CONVERTORS):
            sys.modules.pop(name, None)


def _stand_in(name: str) -> types.ModuleType:
    """A package module with the real one's spec and path, its `__init__` not run."""
    spec = importlib.util.find_spec(name)
    if spec is None or spec.submodule_search_locations is None:
        raise ImportError(f"{name} is not an installed package")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    return module


def _load(name: str) -> types.ModuleType:
    """Load and register one module of a stood-in package (found through its parent's `__path__`)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        raise ImportError(f"{name} is not installed")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@dataclass
class GbtClassifier:
    """An XGBoost booster as a oneDAL model: `probabilities` are P(class 1) per row."""

    model: Any
    n_classes: int
    n_features: int

    @classmethod
    def from_booster(cls, booster: xgb.Booster) -> GbtClassifier:
        """Convert once (as `daal4py.mb.convert_model` does); raises TypeError/ValueError as it does."""
        config = json.loads(booster.save_config())
        learner = config["learner"]
        model = load_core().from_xgboost(booster, config)
        return cls(
            model=model, n_classes=_n_classes(learner), n_features=int(learner["learner_model_param"]["num_feature"])
        )

    def algorithm(self, fptype: str) -> Any:
        """A prediction algorithm; it keeps its last result and refuses another row count, so one per batch
        unless the caller reuses it for a fixed shape."""
        return load_core().prediction(
            nClasses=self.n_classes, fptype=fptype, resultsToEvaluate="computeClassProbabilities"
        )

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        """P(class 1) for C-contiguous float64 (double path) or float32 (single-precision path) rows."""
        fptype = "float" if features.dtype.name == "float32" else "double"
        return self.algorithm(fptype).compute(features, self.model).probabilities[:, 1]


def _n_classes(learner: dict[str, Any]) -> int:
    """daal4py.mb's reading of an XGBoost config: binary objectives are two classes."""
    n_classes = int(learner["learner_model_param"]["num_class"])
    if n_classes <= 2 and learner["learner_train_param"]["objective"] in ("binary:logistic", "binary:logitraw"):
        return 2
    return n_classes if n_classes else 1
