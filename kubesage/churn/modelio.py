"""The model directory contract, shared by training, evaluation, registration and serving.

A model directory holds the XGBoost booster in its native UBJ format (never pickle) and, when the
model came from kubesage's preprocess step, the feature schema beside it:

    <model_dir>/xgboost-model.ubj
    <model_dir>/feature_schema.json      (optional: lets a server accept raw records)

daal4py conversion happens once per process, at load, never per request.

Every feature matrix reaches daal4py through `xgboost_view`: XGBoost stores split thresholds as
float32 and compares float32 feature values, while oneDAL compares whatever it is given. A float64
value between a threshold and its float32 rounding would take the other branch in daal4py (seen
from about 3M training rows: differences up to 0.02 in a probability), so kubesage rounds values
to float32 first, as XGBoost does, and keeps oneDAL's double-precision sums.

Batch scoring takes oneDAL's single-precision path instead (`Daal4pyModel.float32_probabilities`):
given the float32 values themselves it compares them with thresholds daal4py stored as the float32
just below XGBoost's (XGBoost's `x < t` as oneDAL's `x <= t'`), the same branch everywhere (tested
at and around every split), and skips the float64 copy. Its sums are float32, in another order
than XGBoost's: within 2 float32 ulps (1.2e-7) of XGBoost, and a row's last bits depend on where it
falls in the block (oneDAL's vector and remainder kernels), so evaluate and serving keep the double
path, whose answers do not move with the batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import xgboost as xgb

from kubesage.churn.features import FEATURE_SCHEMA_FILENAME, FeatureSchema
from kubesage.churn.onedal import GbtClassifier
from kubesage.errors import ModelError, ParityError

MODEL_FILENAME = "xgboost-model.ubj"
MLFLOW_MODEL_FILENAME = "model.ubj"  # what mlflow.xgboost.log_model(model_format="ubj") writes
MLFLOW_EXTRA_FILES_DIR = "extra_files"  # where log_model(extra_files=...) puts the schema
NON_MODEL_JSON_FILES = frozenset(
    {
        FEATURE_SCHEMA_FILENAME,
        "evaluation.json",
        "input_example.json",
        "serving_input_example.json",
        # The drift baseline and results (kubesage.monitoring) travel beside the model too.
        "statistics.json",
        "constraints.json",
        "constraint_violations.json",
    }
)
PARITY_TOLERANCE = 1e-5


# The model artifact's digest: recorded by the register step (MLflow version tag), checked by
# `kubesage deploy` against the package's model.tar.gz, and handed to the serving container, which
# refuses to load different bytes (an artifact replaced in S3 after approval).
TAG_MODEL_SHA256 = "kubesage.model_sha256"
ENV_MODEL_SHA256 = "KUBESAGE_MODEL_SHA256"


def model_sha256(model_dir: str | Path) -> str:
    """The sha256 (hex) of the booster file the directory's model is loaded from."""
    import hashlib

    with find_model_file(model_dir).open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def verify_model_sha256(model_dir: str | Path, expected: str, source: str) -> None:
    """Raise ModelError (one line) unless the model's booster file has the sha256 `expected`."""
    actual = model_sha256(model_dir)
    if actual != expected.strip().lower():
        raise ModelError(
            f"the model in {model_dir} has sha256 {actual}, but {source} records {expected.strip()}: "
            "the artifact changed after registration; refusing it"
        )


def save_booster(booster: xgb.Booster, model_dir: str | Path) -> Path:
    """Write the booster all at once or not at all: a full disk leaves no truncated model behind."""
    target = Path(model_dir)
    path = target / MODEL_FILENAME
    partial = target / f".partial-{MODEL_FILENAME}"  # keeps the .ubj suffix XGBoost picks the format by
    try:
        target.mkdir(parents=True, exist_ok=True)
        booster.save_model(str(partial))
        partial.replace(path)
    except (OSError, xgb.core.XGBoostError) as exc:
        partial.unlink(missing_ok=True)
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__  # no native stack
        raise ModelError(
            f"could not write the model to {path}: {reason}; free disk space or choose another directory"
        ) from exc
    return path


def find_model_file(model_dir: str | Path) -> Path:
    """The booster file in a model directory: ours, MLflow's model.ubj, or any single .ubj/.json booster."""
    directory = Path(model_dir)
    if directory.is_file():
        return directory
    if not directory.exists():
        raise ModelError(f"model directory {directory} does not exist")
    for name in (MODEL_FILENAME, MLFLOW_MODEL_FILENAME):
        if (directory / name).exists():
            return directory / name
    for suffix in (".ubj", ".json"):
        candidates = sorted(p for p in directory.glob(f"*{suffix}") if p.name not in NON_MODEL_JSON_FILES)
        if len(candidates) == 1:
            return candidates[0]
    raise ModelError(
        f"no XGBoost model in {directory}: expected {MODEL_FILENAME} (or a single .ubj/.json booster); "
        "pickled models are not loaded"
    )


def load_booster(model_dir: str | Path) -> xgb.Booster:
    path = find_model_file(model_dir)
    booster = xgb.Booster()
    try:
        booster.load_model(str(path))
    except xgb.core.XGBoostError as exc:
        raise ModelError(f"{path} is not an XGBoost model in UBJ/JSON format: {exc}") from exc
    return booster


def load_schema_if_present(model_dir: str | Path) -> FeatureSchema | None:
    """The feature schema beside the model (ours) or in MLflow's extra_files/, if there is one."""
    directory = Path(model_dir)
    if directory.is_file():
        directory = directory.parent
    for candidate in (
        directory / FEATURE_SCHEMA_FILENAME,
        directory / MLFLOW_EXTRA_FILES_DIR / FEATURE_SCHEMA_FILENAME,
    ):
        if candidate.exists():
            return FeatureSchema.load(candidate)
    return None


def booster_probabilities(booster: xgb.Booster, features: np.ndarray) -> np.ndarray:
    """XGBoost's own P(positive), without building a DMatrix (inplace_predict)."""
    kwargs: dict[str, Any] = {}
    best = _best_iteration(booster)
    if best is not None:
        kwargs["iteration_range"] = (0, best + 1)
    return np.asarray(booster.inplace_predict(features, **kwargs), dtype=np.float64)


def _best_iteration(booster: xgb.Booster) -> int | None:
    value = booster.attr("best_iteration")
    return int(value) if value is not None else None


@dataclass
class Daal4pyModel:
    """A booster converted to oneDAL once; `probabilities` is the hot path."""

    model: GbtClassifier
    n_features: int

    @classmethod
    def from_booster(cls, booster: xgb.Booster) -> Daal4pyModel:
        try:
            converted = GbtClassifier.from_booster(booster)
        except (TypeError, ValueError) as exc:
            raise ModelError(f"daal4py cannot convert this model: {exc}") from exc
        return cls(model=converted, n_features=booster.num_features())

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        if features.ndim != 2 or features.shape[1] != self.n_features:
            raise ModelError(f"expected {self.n_features} features per row, got {features.shape[-1]}")
        return np.asarray(self.model.probabilities(xgboost_view(features)), dtype=np.float64)

    def float32_probabilities(self, features: np.ndarray) -> np.ndarray:
        """P(class 1) through oneDAL's single-precision path, for C-contiguous float32 features (no copy).

        In float32; within 2e-7 of `probabilities` (each within 2 float32 ulps of XGBoost's): see the
        module's docstring.
        """
        if features.ndim != 2 or features.shape[1] != self.n_features:
            raise ModelError(f"expected {self.n_features} features per row, got {features.shape[-1]}")
        return np.asarray(self.model.probabilities(np.ascontiguousarray(features, dtype=np.float32)))


def xgboost_view(features: np.ndarray) -> np.ndarray:
    """The values XGBoost compares with its split thresholds: rounded to float32, held as C-contiguous float64.

    float64 storage keeps oneDAL's double-precision path (probabilities within 1e-7 of XGBoost's);
    the rounding is what makes every split decision the same as XGBoost's.
    """
    return np.ascontiguousarray(features, dtype=np.float32).astype(np.float64)


def check_parity(
    booster: xgb.Booster, daal_model: Daal4pyModel, features: np.ndarray, tolerance: float = PARITY_TOLERANCE
) -> float:
    """Largest |daal4py - XGBoost| probability difference; raises ParityError above `tolerance`."""
    reference = booster_probabilities(booster, features)
    converted = daal_model.probabilities(features)
    max_diff = float(np.max(np.abs(reference - converted))) if len(reference) else 0.0
    if max_diff > tolerance:
        raise ParityError(
            f"daal4py probabilities differ from XGBoost by {max_diff:.3g} (> {tolerance:g}); "
            "check the scikit-learn-intelex and xgboost versions (XGBoost >= 3.1 needs scikit-learn-intelex >= 2025.10)"
        )
    return max_diff
