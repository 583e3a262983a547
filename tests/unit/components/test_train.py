"""Train: seed hyperparameters, early stopping, UBJ output, daal4py parity."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import xgboost as xgb

from kubesage.churn.features import FeatureSchema
from kubesage.churn.modelio import MODEL_FILENAME, Daal4pyModel, booster_probabilities, load_booster
from kubesage.components.datasets import read_labelled_csv
from kubesage.components.train import TrainParams, train_from_csv
from kubesage.errors import ModelError, ParameterError


def test_defaults_are_the_seeds() -> None:
    params = TrainParams().xgboost_params()
    assert params["objective"] == "binary:logistic"
    assert (params["max_depth"], params["subsample"], params["gamma"], params["min_child_weight"]) == (5, 0.7, 4, 6)
    assert TrainParams().num_round == 100 and TrainParams().eta == 0.3


def test_hyperparameters_arrive_as_strings() -> None:
    params = TrainParams.from_strings({"max_depth": "7", "eta": "0.05", "num_round": "250", "gamma": "0"})
    assert (params.max_depth, params.eta, params.num_round, params.gamma) == (7, 0.05, 250, 0.0)
    assert isinstance(params.max_depth, int)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"max_depth": "deep"}, "max_depth='deep' is not a valid int"),
        ({"num_round": "10.5"}, "num_round='10.5' is not a valid int"),
        ({"learning_rate": "0.1"}, "unknown hyperparameter"),
        ({"subsample": "1.5"}, "out of range: subsample=1.5"),
    ],
)
def test_bad_hyperparameters_are_named(values: dict[str, str], message: str) -> None:
    with pytest.raises(ParameterError, match=message):
        TrainParams.from_strings(values)


def test_trained_model_is_ubj_with_schema_and_parity(trained_model: Path, prepared: dict[str, Path]) -> None:
    assert (trained_model / MODEL_FILENAME).read_bytes()[:1] == b"{"  # UBJSON object marker, not a pickle
    assert FeatureSchema.load(trained_model) == FeatureSchema.load(prepared["schema"])
    booster = load_booster(trained_model)
    validation = read_labelled_csv(prepared["validation"])
    reference = booster_probabilities(booster, validation.features)
    converted = Daal4pyModel.from_booster(booster).probabilities(validation.features)
    assert np.max(np.abs(reference - converted)) < 1e-5


def test_early_stopping_is_recorded(prepared: dict[str, Path], tmp_path: Path) -> None:
    result = train_from_csv(prepared["train"], prepared["validation"], TrainParams(num_round=300), tmp_path)
    assert result.rounds_trained < 300
    assert result.rounds_trained == result.best_iteration + 11  # stops 10 rounds after the best
    assert result.validation_auc > 0.95
    assert result.parity_max_abs_diff < 1e-5
    config = json.loads(load_booster(tmp_path).save_config())
    assert config["learner"]["objective"]["name"] == "binary:logistic"


def test_feature_count_must_match_schema(prepared: dict[str, Path], tmp_path: Path) -> None:
    schema = FeatureSchema.load(prepared["schema"])
    schema.categories["State"].append("ZZ")
    with pytest.raises(ModelError, match="describes 104 features but the data has 103"):
        train_from_csv(prepared["train"], prepared["validation"], TrainParams(), tmp_path, schema)


def test_pickle_is_never_loaded(tmp_path: Path) -> None:
    (tmp_path / "xgboost-model").write_bytes(b"\x80\x04\x95")  # a pickle header, as the seed saved it
    with pytest.raises(ModelError, match="pickled models are not loaded"):
        load_booster(tmp_path)


def test_saved_model_keeps_only_the_trees_up_to_the_best_round(prepared: dict[str, Path], tmp_path: Path) -> None:
    result = train_from_csv(prepared["train"], prepared["validation"], TrainParams(num_round=300), tmp_path)
    booster = load_booster(tmp_path)
    assert booster.num_boosted_rounds() == result.best_iteration + 1
    features = read_labelled_csv(prepared["test"]).features[:20]
    # A plain DMatrix predict (what MLflow's pyfunc does) sees the same model as inplace_predict.
    assert np.allclose(booster_probabilities(booster, features), booster.predict(xgb.DMatrix(features)), atol=1e-7)


def test_training_from_quantile_bins_gives_the_dmatrix_booster(trained_model: Path, prepared: dict[str, Path]) -> None:
    # train_from_csv builds QuantileDMatrix (histogram bins only) to bound memory at millions of rows;
    # the booster must be byte for byte the one a plain DMatrix trains.
    import xgboost as xgb

    from kubesage.churn.features import FeatureSchema
    from kubesage.churn.modelio import load_booster
    from kubesage.components.datasets import read_labelled_csv

    train, validation = read_labelled_csv(prepared["train"]), read_labelled_csv(prepared["validation"])
    names = FeatureSchema.load(prepared["schema"]).feature_names
    params = TrainParams()
    plain = xgb.train(
        params.xgboost_params(),
        xgb.DMatrix(train.features, label=train.labels, feature_names=names),
        num_boost_round=params.num_round,
        evals=[(xgb.DMatrix(validation.features, label=validation.labels, feature_names=names), "validation")],
        early_stopping_rounds=params.early_stopping_rounds,
        verbose_eval=False,
    )
    plain = plain[: plain.best_iteration + 1]
    assert plain.save_raw("ubj") == load_booster(trained_model).save_raw("ubj")


def test_training_streams_the_csv_in_batches(
    trained_model: Path, prepared: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The training CSV reaches XGBoost batch by batch (bounded memory at millions of rows); with
    # ~12 batches the merged quantile sketch may move a bin edge, so the model is close, not equal.
    from kubesage.churn.modelio import load_booster
    from kubesage.components import datasets

    monkeypatch.setattr(datasets, "STREAM_BLOCK_BYTES", 64 << 10)
    assert len(list(datasets.iter_labelled_csv(prepared["train"]))) >= 10
    result = train_from_csv(
        prepared["train"], prepared["validation"], TrainParams(), tmp_path, FeatureSchema.load(prepared["schema"])
    )
    validation = read_labelled_csv(prepared["validation"])
    batched = booster_probabilities(load_booster(tmp_path), validation.features)
    single = booster_probabilities(load_booster(trained_model), validation.features)
    assert result.validation_auc > 0.9
    assert np.mean(np.abs(batched - single)) < 0.02
