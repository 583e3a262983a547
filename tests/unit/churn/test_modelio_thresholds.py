"""daal4py answers exactly as XGBoost at and around every split threshold, on every prediction path.

XGBoost keeps split thresholds as float32 and compares float32 feature values; oneDAL compares what
it is given. The probes are every threshold of the trained churn model with its float32 neighbours,
its float64 neighbours and points between them: the values a float64 input can hold that round to
either side. Enumerated, not sampled, so the test cannot pass by luck; with `modelio.xgboost_view`
reduced to a plain float64 copy it fails (measured: 132 of 4,698 probe rows, up to 0.61 apart).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import xgboost as xgb
from starlette.testclient import TestClient

from kubesage.churn.modelio import Daal4pyModel, booster_probabilities, load_booster
from kubesage.components.datasets import read_labelled_csv
from kubesage.lambda_runtime.endpoint import csv_body
from kubesage.serving.app import create_app
from kubesage.serving.predictor import Predictor

TOLERANCE = 1e-6
BASE_ROWS = 3


def split_thresholds(booster: xgb.Booster) -> list[tuple[int, np.float32]]:
    """(feature index, float32 threshold) of every split, read from XGBoost's own JSON model."""
    model = json.loads(booster.save_raw(raw_format="json"))
    pairs: set[tuple[int, float]] = set()
    for tree in model["learner"]["gradient_booster"]["model"]["trees"]:
        for left, feature, threshold in zip(
            tree["left_children"], tree["split_indices"], tree["split_conditions"], strict=True
        ):
            if left != -1:  # a leaf keeps its weight in split_conditions
                pairs.add((int(feature), threshold))
    return sorted((feature, np.float32(threshold)) for feature, threshold in pairs)


def around(threshold: np.float32) -> list[float]:
    """The threshold, its float32 and float64 neighbours, and float64 points between them."""
    t = np.float64(threshold)
    below32 = np.float64(np.nextafter(threshold, np.float32(-np.inf)))
    above32 = np.float64(np.nextafter(threshold, np.float32(np.inf)))
    return [
        t,
        below32,
        above32,
        np.nextafter(t, -np.inf),
        np.nextafter(t, np.inf),
        (t + below32) / 2,
        (t + above32) / 2,
        t - (t - below32) / 4,
        t + (above32 - t) / 4,
    ]


@pytest.fixture(scope="module")
def booster(model_dir: Path) -> xgb.Booster:
    return load_booster(model_dir)


@pytest.fixture(scope="module")
def probes(booster: xgb.Booster, prepared: dict[str, Path]) -> np.ndarray:
    """Real validation rows with one feature moved onto and around each split threshold."""
    base = read_labelled_csv(prepared["validation"]).features[:BASE_ROWS]
    blocks = []
    for feature, threshold in split_thresholds(booster):
        for value in around(threshold):
            block = base.copy()
            block[:, feature] = value
            blocks.append(block)
    return np.vstack(blocks)


@pytest.fixture(scope="module")
def reference(booster: xgb.Booster, probes: np.ndarray) -> np.ndarray:
    return booster_probabilities(booster, probes)


def largest_difference(answer: np.ndarray, reference: np.ndarray) -> float:
    assert answer.shape == reference.shape
    return float(np.max(np.abs(answer - reference)))


def test_probes_cover_every_split_with_values_between_float32_neighbours(
    booster: xgb.Booster, probes: np.ndarray
) -> None:
    splits = split_thresholds(booster)
    assert len(splits) > 100
    assert probes.shape == (len(splits) * 9 * BASE_ROWS, booster.num_features())
    # Some probes are float64 values that are not float32 values: the inputs the bug was about.
    assert np.any(probes.astype(np.float32).astype(np.float64) != probes)


def test_daal4py_model_equals_xgboost(booster: xgb.Booster, probes: np.ndarray, reference: np.ndarray) -> None:
    """The path evaluate and batch scoring take."""
    answer = Daal4pyModel.from_booster(booster).probabilities(probes)
    assert largest_difference(answer, reference) <= TOLERANCE


def test_daal4py_float32_path_equals_xgboost(booster: xgb.Booster, probes: np.ndarray, reference: np.ndarray) -> None:
    """The path batch scoring takes: oneDAL's single precision on the float32 values XGBoost compares.
    A branch taken differently moves probabilities far more (up to 0.61 with plain float64, above)."""
    answer = Daal4pyModel.from_booster(booster).float32_probabilities(probes.astype(np.float32))
    assert answer.dtype == np.float32
    assert largest_difference(answer.astype(np.float64), reference) <= 2.5e-7  # 2 float32 ulps near 1


def test_server_predictor_equals_xgboost(model_dir: Path, probes: np.ndarray, reference: np.ndarray) -> None:
    """The server's own oneDAL call, single rows and batches."""
    predictor = Predictor.load(model_dir)
    assert largest_difference(predictor.predict(probes), reference) <= TOLERANCE
    singles = np.array([predictor.predict(probes[row : row + 1])[0] for row in range(0, len(probes), 7)])
    assert largest_difference(singles, reference[::7]) <= TOLERANCE


@pytest.mark.parametrize("encoding", ["lambda-csv", "json-instances"])
def test_http_answers_equal_xgboost(model_dir: Path, probes: np.ndarray, reference: np.ndarray, encoding: str) -> None:
    """Through the HTTP app, with the bytes the Lambda handler sends (csv_body) or JSON vectors."""
    app = create_app(model_dir, exit_on_load_failure=False)
    app.load()
    if encoding == "lambda-csv":
        body, content_type = csv_body(probes.tolist()), "text/csv"
    else:
        body, content_type = json.dumps({"instances": probes.tolist()}).encode(), "application/json"
    response = TestClient(app).post("/invocations", content=body, headers={"content-type": content_type})
    assert response.status_code == 200, response.text
    scores = np.array([p["score"] for p in response.json()["predictions"]])
    assert largest_difference(scores, reference) <= TOLERANCE
