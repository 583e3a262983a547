"""SageMaker's training contract, run without Docker on a folder laid out like /opt/ml."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import xgboost as xgb
from sklearn.metrics import roc_auc_score

from kubesage.churn.features import FEATURE_SCHEMA_FILENAME, FeatureSchema
from kubesage.churn.modelio import MODEL_FILENAME, booster_probabilities, load_booster
from kubesage.components.datasets import read_labelled_csv
from kubesage.components.train import TrainParams
from kubesage.errors import ParameterError
from kubesage.image.train import ENV_BASE, TrainingPaths, main, parse_hyperparameters


def lay_out(
    base: Path,
    splits: dict[str, Path],
    hyperparameters: dict[str, object] | None,
    channels: tuple[str, ...] = ("train", "validation", "schema"),
) -> TrainingPaths:
    """Arrange inputs as SageMaker does: one folder per channel, hyperparameters as JSON strings."""
    paths = TrainingPaths(base)
    for channel in channels:
        target = paths.channel(channel)
        target.mkdir(parents=True)
        shutil.copy(splits[channel], target)
    if hyperparameters is not None:
        paths.hyperparameters.parent.mkdir(parents=True)
        paths.hyperparameters.write_text(json.dumps(hyperparameters))
    return paths


def tree_depth(booster: xgb.Booster) -> int:
    """The deepest leaf over all trees (the text dump indents each level by one tab)."""
    return max(
        len(line) - len(line.lstrip("\t"))
        for tree in booster.get_dump()
        for line in tree.splitlines()
        if "leaf=" in line
    )


def test_trains_from_the_sagemaker_layout(tmp_path: Path, prepared: dict[str, Path]) -> None:
    paths = lay_out(
        tmp_path,
        prepared,
        {"max_depth": "3", "eta": "0.25", "num_round": "80", "early_stopping_rounds": "15", "subsample": "0.8"},
    )

    assert main(tmp_path) == 0

    assert not paths.failure_file.exists()
    assert (paths.model_dir / MODEL_FILENAME).is_file()
    schema = FeatureSchema.load(paths.model_dir)
    assert schema == FeatureSchema.load(prepared["schema"])
    booster = load_booster(paths.model_dir)
    # The string hyperparameters reached XGBoost as numbers: no tree is deeper than max_depth.
    assert tree_depth(booster) == 3
    assert booster.num_boosted_rounds() <= 80
    test = read_labelled_csv(prepared["test"])
    auc = roc_auc_score(test.labels, booster_probabilities(booster, test.features))
    assert auc > 0.95
    metrics = json.loads(paths.metrics_file.read_text())
    assert 0.9 < metrics["validation_auc"] <= 1.0
    assert metrics["daal4py_parity_max_abs_diff"] < 1e-5


def test_base_comes_from_the_environment_and_defaults_apply(
    tmp_path: Path, prepared: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    # No hyperparameters.json and no schema channel: TrainParams' defaults, a model without a schema.
    paths = lay_out(tmp_path, prepared, None, channels=("train", "validation"))
    paths.output_dir.mkdir(parents=True)
    paths.failure_file.write_text("left over from an earlier run")
    monkeypatch.setenv(ENV_BASE, str(tmp_path))

    assert main() == 0

    assert (paths.model_dir / MODEL_FILENAME).is_file()
    assert not (paths.model_dir / FEATURE_SCHEMA_FILENAME).exists()
    assert not paths.failure_file.exists()
    assert tree_depth(load_booster(paths.model_dir)) == TrainParams().max_depth


def test_paths_default_to_opt_ml(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_BASE, raising=False)
    paths = TrainingPaths.resolve()
    assert paths.model_dir == Path("/opt/ml/model")
    assert paths.channel("train") == Path("/opt/ml/input/data/train")
    assert paths.hyperparameters == Path("/opt/ml/input/config/hyperparameters.json")
    assert paths.failure_file == Path("/opt/ml/output/failure")


def test_string_hyperparameters_parse_to_typed_params() -> None:
    params = parse_hyperparameters(
        {"max_depth": "7", "eta": "0.05", "num_round": "250", "seed": "3", "sagemaker_job_name": "job-1"}
    )
    assert params == TrainParams(max_depth=7, eta=0.05, num_round=250, seed=3)
    assert isinstance(params.max_depth, int)
    assert isinstance(params.eta, float)


@pytest.mark.parametrize(
    ("hyperparameters", "message"),
    [
        pytest.param({"max_depht": "5"}, "unknown hyperparameter.*max_depht", id="unknown-name"),
        pytest.param({"max_depth": "deep"}, "max_depth='deep' is not a valid int", id="not-a-number"),
        pytest.param({"num_round": "2.5"}, "num_round='2.5' is not a valid int", id="fractional-int"),
        pytest.param({"eta": "0"}, "out of range: eta=0.0", id="out-of-range"),
        pytest.param({"eta": ["0.1"]}, "eta=\\['0.1'\\] must be a string or a number", id="list-value"),
    ],
)
def test_bad_hyperparameters_are_named(hyperparameters: dict[str, object], message: str) -> None:
    with pytest.raises(ParameterError, match=message):
        parse_hyperparameters(hyperparameters)


@pytest.mark.parametrize(
    ("hyperparameters", "channels", "reason"),
    [
        pytest.param({"max_depth": "deep"}, ("train", "validation"), "max_depth='deep'", id="bad-value"),
        pytest.param({"learning_rte": "0.1"}, ("train", "validation"), "learning_rte", id="unknown-name"),
        pytest.param(["max_depth", "5"], ("train", "validation"), "must hold a JSON object", id="not-an-object"),
        pytest.param({}, ("train",), "input channel 'validation' is missing", id="missing-channel"),
    ],
)
def test_failure_writes_the_reason_and_exits_non_zero(
    tmp_path: Path,
    prepared: dict[str, Path],
    hyperparameters: object,
    channels: tuple[str, ...],
    reason: str,
) -> None:
    paths = TrainingPaths(tmp_path)
    lay_out(tmp_path, prepared, None, channels=channels)
    paths.hyperparameters.parent.mkdir(parents=True)
    paths.hyperparameters.write_text(json.dumps(hyperparameters))

    assert main(tmp_path) != 0

    written = paths.failure_file.read_text()
    assert reason in written
    assert "Traceback" not in written
    assert not (paths.model_dir / MODEL_FILENAME).exists()


def test_malformed_json_and_bad_data_fail_cleanly(tmp_path: Path, prepared: dict[str, Path]) -> None:
    paths = lay_out(tmp_path, prepared, None, channels=("train", "validation"))
    paths.hyperparameters.parent.mkdir(parents=True)
    paths.hyperparameters.write_text('{"max_depth": "5",')
    assert main(tmp_path) == 2
    assert "is not valid JSON" in paths.failure_file.read_text()

    paths.hyperparameters.write_text("{}")
    (paths.channel("train") / "train.csv").write_text("1,0.5,abc\n0,0.1,0.2\n")
    assert main(tmp_path) == 2
    assert "is not a numeric label-first CSV" in paths.failure_file.read_text()


def test_schema_channel_without_schema_file_is_an_error(tmp_path: Path, prepared: dict[str, Path]) -> None:
    paths = lay_out(tmp_path, prepared, {}, channels=("train", "validation"))
    paths.channel("schema").mkdir(parents=True)
    assert main(tmp_path) == 2
    assert f"has no {FEATURE_SCHEMA_FILENAME}" in paths.failure_file.read_text()


def test_probabilities_are_finite(tmp_path: Path, prepared: dict[str, Path]) -> None:
    paths = lay_out(tmp_path, prepared, {"num_round": "20"})
    assert main(tmp_path) == 0
    test = read_labelled_csv(prepared["test"])
    probabilities = booster_probabilities(load_booster(paths.model_dir), test.features)
    assert probabilities.shape == (test.rows,)
    assert np.all((probabilities > 0) & (probabilities < 1))


def test_sigterm_stops_training_with_a_reason(tmp_path: Path, prepared: dict[str, Path]) -> None:
    # SageMaker's StopTrainingJob (and `docker stop`) send SIGTERM; as PID 1 it would be ignored
    # unless handled. A run that cannot finish on its own: 1M rounds, no early stopping.
    paths = lay_out(tmp_path, prepared, {"num_round": "1000000", "early_stopping_rounds": "0", "eta": "0.01"})
    process = subprocess.Popen(
        [sys.executable, "-m", "kubesage.image", "train"],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, ENV_BASE: str(tmp_path)},
    )
    try:
        assert process.stderr is not None
        for line in process.stderr:
            if "training with" in line:
                break
        time.sleep(1.0)  # inside xgb.train's boosting loop by now
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 143
    finally:
        process.kill()
        process.wait()
    assert "stopped by signal SIGTERM" in paths.failure_file.read_text()
    assert not (paths.model_dir / MODEL_FILENAME).exists()


# XGBoost calls a DataIter's `next` from C while building a QuantileDMatrix: the stop is sent from
# inside that callback, so the handler runs there, the moment the crash under load came from.
STOP_INSIDE_XGBOOST_CALLBACK = """
import os, signal, sys
import numpy as np
import xgboost as xgb
from kubesage.image.train import TrainingStoppedError, handle_stop_signals

class Batches(xgb.DataIter):
    def __init__(self):
        super().__init__()
        self.sent = 0
    def reset(self):
        self.sent = 0
    def next(self, input_data):
        if self.sent == 2:
            return False
        if self.sent == 0:
            os.kill(os.getpid(), signal.SIGTERM)
        rng = np.random.default_rng(self.sent)
        input_data(data=rng.random((200, 3)), label=rng.integers(0, 2, 200))
        self.sent += 1
        return True

handle_stop_signals()
try:
    matrix = xgb.QuantileDMatrix(Batches())
    print("matrix built", flush=True)
    xgb.train({"objective": "binary:logistic"}, matrix, num_boost_round=10_000_000)
except TrainingStoppedError as exc:
    print(exc, flush=True)
    sys.exit(143)
sys.exit(0)
"""


def test_a_stop_inside_xgboosts_data_callback_is_raised_once_xgboost_is_back_in_python() -> None:
    done = subprocess.run(
        [sys.executable, "-c", STOP_INSIDE_XGBOOST_CALLBACK], capture_output=True, text=True, timeout=120, check=False
    )

    assert done.returncode == 143, done.stderr[-2000:]
    assert done.stdout.splitlines() == ["matrix built", "stopped by signal SIGTERM before training finished"]
    assert "Exception ignored" not in done.stderr
