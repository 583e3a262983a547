"""The model a server process holds: loaded, converted to daal4py and warmed once, then only predicts.

One Predictor per worker process. oneDAL's thread count is process-global (daal4py.daalinit), so
it is set here, explicitly, before the conversion; requests are then predicted one at a time on
the worker's event-loop thread, never from several Python threads at once.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kubesage.churn.features import FeatureSchema
from kubesage.churn.modelio import (
    ENV_MODEL_SHA256,
    Daal4pyModel,
    check_parity,
    find_model_file,
    load_booster,
    load_schema_if_present,
    verify_model_sha256,
    xgboost_view,
)
from kubesage.errors import ModelError

logger = logging.getLogger(__name__)

# Served probabilities must equal the training-time booster's within this; checked at load.
SERVING_PARITY_TOLERANCE = 1e-6
_WARM_BATCH_ROWS = 256


@dataclass
class Predictor:
    """A booster converted to daal4py once, with the feature schema when the model dir has one."""

    daal_model: Daal4pyModel
    schema: FeatureSchema | None
    model_path: Path
    threads: int
    parity_max_abs_diff: float
    load_seconds: float
    _single_row: Any = field(default=None, init=False, repr=False)

    @property
    def n_features(self) -> int:
        return self.daal_model.n_features

    @classmethod
    def load(cls, model_dir: str | Path, threads: int = 1) -> Predictor:
        """Load, convert, check parity against XGBoost and warm; raises ModelError/SchemaError."""
        started = time.perf_counter()
        set_thread_count(threads)
        expected = os.environ.get(ENV_MODEL_SHA256, "").strip()
        if expected:  # set by `kubesage deploy` on the SageMaker model: the digest it verified
            verify_model_sha256(model_dir, expected, ENV_MODEL_SHA256)
        model_path = find_model_file(model_dir)
        booster = load_booster(model_dir)
        booster.set_param({"nthread": threads})
        schema = load_schema_if_present(model_dir)
        daal_model = Daal4pyModel.from_booster(booster)
        probe = parity_probe(daal_model.n_features)
        parity = check_parity(booster, daal_model, probe, tolerance=SERVING_PARITY_TOLERANCE)
        predictor = cls(
            daal_model=daal_model,
            schema=schema,
            model_path=model_path,
            threads=threads,
            parity_max_abs_diff=parity,
            load_seconds=0.0,
        )
        served = predictor.predict(probe)
        if not np.array_equal(served, daal_model.probabilities(probe)):
            raise ModelError("the served prediction path differs from Daal4pyModel.probabilities; refusing to serve")
        predictor.warm()
        predictor.load_seconds = time.perf_counter() - started
        logger.info(
            "loaded %s (%d features, schema: %s, threads: %d, parity %.2g) in %.2f s",
            model_path,
            predictor.n_features,
            "yes" if schema else "no",
            threads,
            parity,
            predictor.load_seconds,
        )
        return predictor

    def predict(self, features: np.ndarray) -> np.ndarray:
        """P(class 1) per row, from the values XGBoost would compare (`modelio.xgboost_view`).

        The same oneDAL call as `Daal4pyModel.probabilities` (kubesage.churn.onedal), with one
        difference: an algorithm object keeps the result table of its previous call, refuses a
        different row count and overwrites its result on the next call, so single rows reuse one
        object and copy the answer out (40% faster than building one) while batches get a fresh
        object. daal4py's model-builder wrapper (`predict_proba`) also re-checked its inputs on
        each request, a third of the time of a single-record prediction.
        """
        if features.ndim != 2 or features.shape[1] != self.n_features:
            raise ModelError(f"expected {self.n_features} features per row, got {features.shape[-1]}")
        matrix = xgboost_view(features)
        daal_model = self.daal_model.model.model
        if matrix.shape[0] == 1:
            if self._single_row is None:
                self._single_row = self._new_algorithm()
            return np.array(self._single_row.compute(matrix, daal_model).probabilities[:, 1])
        return self._new_algorithm().compute(matrix, daal_model).probabilities[:, 1]

    def _new_algorithm(self) -> Any:
        return self.daal_model.model.algorithm("double")

    def warm(self) -> None:
        """First predictions pay for lazy allocations; pay them before /ping says ready."""
        for rows in (1, 1, 8, _WARM_BATCH_ROWS):
            self.predict(np.zeros((rows, self.n_features), dtype=np.float64))


def parity_probe(n_features: int, rows: int = 200, seed: int = 0) -> np.ndarray:
    """Deterministic probe inputs: standard-normal and one-hot-like values, with some missing."""
    rng = np.random.default_rng(seed)
    probe = rng.normal(size=(rows, n_features))
    probe[rows // 2 :] = (probe[rows // 2 :] > 0.5).astype(np.float64)
    probe[rng.random(size=probe.shape) < 0.05] = np.nan
    return probe


def set_thread_count(threads: int) -> None:
    """oneDAL's thread pool is process-global; XGBoost's is per booster (set at load)."""
    from kubesage.churn.onedal import load_core

    load_core().daalinit(threads)
