"""SageMaker's training contract for bring-your-own containers, runnable with or without Docker.

SageMaker lays a training job out under /opt/ml:

    <base>/input/config/hyperparameters.json   every value a JSON string, e.g. {"max_depth": "5"}
    <base>/input/data/train/                   one channel per folder: label-first CSV
    <base>/input/data/validation/
    <base>/input/data/schema/feature_schema.json   optional: copied into the model directory
    <base>/model/                              what the job leaves here becomes model.tar.gz
    <base>/output/failure                      why the job failed (SageMaker shows it as FailureReason)
    <base>/output/data/                        extra outputs (we write metrics.json)

`base` defaults to /opt/ml and can be moved with KUBESAGE_SM_BASE (or the `base` argument), so the
same code runs in a test or on a laptop without Docker.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import tempfile
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from kubesage.churn.features import FEATURE_SCHEMA_FILENAME, FeatureSchema
from kubesage.components import distributed
from kubesage.components.shards import one_csv
from kubesage.errors import DataError, KubesageError, ParameterError

if TYPE_CHECKING:
    from kubesage.components.train import TrainParams, TrainResult

logger = logging.getLogger(__name__)

ENV_BASE = "KUBESAGE_SM_BASE"
DEFAULT_BASE = Path("/opt/ml")
TRAIN_CHANNEL = "train"
VALIDATION_CHANNEL = "validation"
SCHEMA_CHANNEL = "schema"
# SageMaker itself adds hyperparameters with these prefixes (hyperparameter tuning adds
# `_tuning_objective_metric`; framework estimators add `sagemaker_*`). They are not ours to parse.
RESERVED_PREFIXES = ("sagemaker_", "_tuning_")
# SageMaker keeps the first 1024 characters of the failure file as the job's FailureReason.
FAILURE_REASON_LIMIT = 1024


@dataclass(frozen=True)
class TrainingPaths:
    """Where SageMaker's training contract puts things, relative to a configurable base."""

    base: Path

    @classmethod
    def resolve(cls, base: str | Path | None = None) -> TrainingPaths:
        """`base` if given, else $KUBESAGE_SM_BASE, else /opt/ml."""
        chosen = base if base is not None else os.environ.get(ENV_BASE) or DEFAULT_BASE
        return cls(Path(chosen))

    @property
    def hyperparameters(self) -> Path:
        return self.base / "input" / "config" / "hyperparameters.json"

    @property
    def config_dir(self) -> Path:
        return self.base / "input" / "config"

    @property
    def model_dir(self) -> Path:
        return self.base / "model"

    @property
    def output_dir(self) -> Path:
        return self.base / "output"

    @property
    def failure_file(self) -> Path:
        return self.output_dir / "failure"

    @property
    def metrics_file(self) -> Path:
        return self.output_dir / "data" / "metrics.json"

    def channel(self, name: str) -> Path:
        return self.base / "input" / "data" / name


def read_hyperparameters(path: Path) -> dict[str, Any]:
    """The raw hyperparameters.json object; a missing file means no hyperparameters (all defaults)."""
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ParameterError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ParameterError(f"{path} must hold a JSON object of name: value, got {type(data).__name__}")
    return data


def parse_hyperparameters(raw: Mapping[str, Any]) -> TrainParams:
    """Turn SageMaker's all-string hyperparameters into TrainParams; unknown names are an error."""
    from kubesage.components.train import TrainParams

    ours = {name: value for name, value in raw.items() if not name.startswith(RESERVED_PREFIXES)}
    for name, value in ours.items():
        # SageMaker always sends strings; numbers from a hand-written file are fine too.
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise ParameterError(f"hyperparameter {name}={value!r} must be a string or a number")
    return TrainParams.from_strings(ours)


def require_channel(paths: TrainingPaths, name: str) -> Path:
    directory = paths.channel(name)
    if not directory.is_dir():
        raise DataError(
            f"input channel '{name}' is missing: expected a folder {directory} holding one label-first CSV "
            f"(give the training job a '{name}' channel)"
        )
    return directory


def load_schema_channel(paths: TrainingPaths) -> FeatureSchema | None:
    """The optional `schema` channel's feature_schema.json, so the model directory carries it."""
    directory = paths.channel(SCHEMA_CHANNEL)
    if not directory.is_dir():
        return None
    if not (directory / FEATURE_SCHEMA_FILENAME).is_file():
        raise DataError(f"the '{SCHEMA_CHANNEL}' channel ({directory}) has no {FEATURE_SCHEMA_FILENAME}")
    return FeatureSchema.load(directory)


def run_training(paths: TrainingPaths) -> TrainResult | None:
    """Read the job's inputs, train, and write the model (and the schema, if given) to <base>/model."""
    from kubesage.components.train import train_from_csv

    params = parse_hyperparameters(read_hyperparameters(paths.hyperparameters))
    train_dir = require_channel(paths, TRAIN_CHANNEL)
    validation_dir = require_channel(paths, VALIDATION_CHANNEL)
    schema = load_schema_channel(paths)
    logger.info("training with %s", params)
    # --- issue 20: a multi-instance job trains one model across its hosts (components/distributed.py)
    cluster = distributed.read_cluster(paths.config_dir)
    if cluster.size > 1:
        return run_on_cluster(paths, cluster, params, train_dir, validation_dir, schema)
    with tempfile.TemporaryDirectory(prefix="kubesage-train-") as work:
        # A train split written as several files (one per instance) is read as one.
        train_input = one_csv(train_dir, Path(work))
        # --- end issue 20
        result = train_from_csv(train_input, validation_dir, params, paths.model_dir, schema=schema)
    write_metrics(paths, result.metrics())
    return result


def run_on_cluster(
    paths: TrainingPaths,
    cluster: distributed.Cluster,
    params: TrainParams,
    train_dir: Path,
    validation_dir: Path,
    schema: FeatureSchema | None,
) -> TrainResult | None:
    """This host's part of a multi-instance job; None when it had no rows and left."""

    def finish(done: distributed.ClusterTraining) -> None:
        write_metrics(paths, done.metrics())
        run_id = distributed.track(done, params, os.environ.get("TRAINING_JOB_NAME"))
        if run_id:
            logger.info("recorded in MLflow run %s", run_id)

    with tempfile.TemporaryDirectory(prefix="kubesage-shard-") as work:
        done = distributed.train_on_cluster(
            cluster,
            train_dir,
            validation_dir,
            params,
            paths.model_dir,
            Path(work),
            finish,
            distribution=distributed.channel_distribution(paths.config_dir, TRAIN_CHANNEL),
            schema=schema,
        )
    if done.result is None:
        write_metrics(paths, done.metrics())
    return done.result


def write_metrics(paths: TrainingPaths, metrics: Mapping[str, float]) -> None:
    """metrics.json for whoever collects output/data, and one `name=value;` log line per metric for
    SageMaker metric definitions (regex e.g. `validation_auc=([0-9.]+);`)."""
    paths.metrics_file.parent.mkdir(parents=True, exist_ok=True)
    paths.metrics_file.write_text(json.dumps(dict(metrics), indent=2, sort_keys=True), encoding="utf-8")
    for name, value in sorted(metrics.items()):
        logger.info("metric %s=%.6g;", name, value)


def failure_reason(exc: BaseException) -> str:
    """One line for SageMaker's FailureReason: our errors as they are, others with their type."""
    if isinstance(exc, KubesageError):
        reason = f"{type(exc).__name__}: {exc}"
    else:
        reason = f"unexpected {type(exc).__name__}: {exc}"
    return reason[:FAILURE_REASON_LIMIT]


def write_failure(paths: TrainingPaths, reason: str) -> None:
    paths.output_dir.mkdir(parents=True, exist_ok=True)
    paths.failure_file.write_text(reason + "\n", encoding="utf-8")


class TrainingStoppedError(KubesageError):
    """SageMaker (or `docker stop`) asked the job to stop."""

    exit_code = 143  # 128 + SIGTERM, as a shell reports a process ended by it


# XGBoost calls a DataIter's methods from C while it builds a QuantileDMatrix. An exception raised
# there outside XGBoost's own try (a signal can land on any line) cannot cross the C++ frames: ctypes
# prints "Exception ignored" and XGBoost goes on with corrupt state ("corrupted size vs. prev_size",
# then SIGABRT: exit -6 instead of 143 with a reason, seen on a loaded machine). So a stop that lands
# inside such a callback is raised a moment later, once XGBoost is back in Python of its own.
_RETRY_SECONDS = 0.05
_DEFERRED_SIGNAL = signal.SIGALRM


def _inside_xgboost_callback(frame: FrameType | None) -> bool:
    while frame is not None:
        if frame.f_code.co_qualname.startswith("DataIter."):
            return True
        frame = frame.f_back
    return False


def _raise_stopped(signum: int, frame: FrameType | None) -> None:
    if _inside_xgboost_callback(frame):
        signal.signal(_DEFERRED_SIGNAL, lambda _deferred, later: _raise_stopped(signum, later))
        signal.setitimer(signal.ITIMER_REAL, _RETRY_SECONDS)
        return
    raise TrainingStoppedError(f"stopped by signal {signal.Signals(signum).name} before training finished")


def handle_stop_signals() -> None:
    """SIGTERM (SageMaker's StopTrainingJob, `docker stop`) raises TrainingStoppedError in the training."""
    # As PID 1 in a container, SIGTERM is ignored unless handled: StopTrainingJob must end the job.
    signal.signal(signal.SIGTERM, _raise_stopped)


def main(base: str | Path | None = None) -> int:
    """The `train` entry point: 0 on success; on failure, the reason in <base>/output/failure and non-zero."""
    paths = TrainingPaths.resolve(base)
    handle_stop_signals()
    paths.failure_file.unlink(missing_ok=True)
    try:
        result = run_training(paths)
    except Exception as exc:
        reason = failure_reason(exc)
        if not isinstance(exc, KubesageError):
            traceback.print_exc(file=sys.stderr)
        try:
            write_failure(paths, reason)
        except OSError as write_error:
            logger.error("could not write %s: %s", paths.failure_file, write_error)
        logger.error("training failed: %s", reason)
        return exc.exit_code if isinstance(exc, KubesageError) else 1
    if result is None:  # issue 20: a host of a multi-instance job with no rows of its own
        return 0
    if not result.model_path.is_relative_to(paths.model_dir):  # issue 20: another host of the job writes it
        logger.info("the first host writes the model (validation AUC %.4f)", result.validation_auc)
        return 0
    logger.info(
        "model written to %s (best iteration %d, validation AUC %.4f)",
        result.model_path,
        result.best_iteration,
        result.validation_auc,
    )
    return 0
