"""Evaluate: metrics on probabilities and at the threshold, SageMaker's evaluation.json, plots."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from kubesage.components.evaluate import (
    compute_evaluation,
    evaluate_model,
    plot_confusion,
    plot_roc,
    read_metric,
    sagemaker_model_quality,
    write_evaluation,
)
from kubesage.errors import ParameterError

LABELS = np.array([0, 0, 0, 0, 1, 1, 1, 1])
SCORES = np.array([0.1, 0.2, 0.6, 0.3, 0.8, 0.4, 0.9, 0.7])


def test_threshold_metrics_by_hand() -> None:
    evaluation = compute_evaluation(LABELS, SCORES, threshold=0.5)
    # predicted: 0 0 1 0 | 1 0 1 1 -> TN 3, FP 1, FN 1, TP 3
    assert evaluation.confusion == [[3, 1], [1, 3]]
    m = evaluation.metrics
    assert m["accuracy"] == pytest.approx(0.75)
    assert m["precision"] == pytest.approx(0.75)
    assert m["recall"] == pytest.approx(0.75)
    assert m["f1"] == pytest.approx(0.75)


def test_auc_uses_probabilities_not_rounded_labels() -> None:
    evaluation = compute_evaluation(LABELS, SCORES)
    # 16 positive/negative pairs, 15 ranked correctly (only 0.6 > 0.4 is wrong): AUC 15/16.
    assert evaluation.metrics["roc_auc"] == pytest.approx(15 / 16)
    rounded = compute_evaluation(LABELS, SCORES.round())
    assert rounded.metrics["roc_auc"] == pytest.approx(0.75)  # what the seed reported
    expected_log_loss = -np.mean(LABELS * np.log(SCORES) + (1 - LABELS) * np.log(1 - SCORES))
    assert evaluation.metrics["log_loss"] == pytest.approx(expected_log_loss)


def test_threshold_moves_the_confusion_matrix() -> None:
    assert compute_evaluation(LABELS, SCORES, threshold=0.39).confusion == [[3, 1], [0, 4]]


def test_threshold_must_be_a_probability() -> None:
    with pytest.raises(ParameterError, match="decision_threshold=1.5"):
        compute_evaluation(LABELS, SCORES, threshold=1.5)


def test_evaluation_json_is_sagemaker_model_quality(tmp_path: Path) -> None:
    evaluation = compute_evaluation(LABELS, SCORES)
    path = write_evaluation(evaluation, tmp_path / "evaluation.json")
    data = json.loads(path.read_text())["binary_classification_metrics"]
    assert data["accuracy"] == {"value": 0.75, "standard_deviation": "NaN"}
    assert data["auc"]["value"] == pytest.approx(15 / 16)
    assert data["confusion_matrix"] == {"0": {"0": 3, "1": 1}, "1": {"0": 1, "1": 3}}
    curve = data["receiver_operating_characteristic_curve"]
    assert curve["false_positive_rates"][0] == 0.0 and curve["true_positive_rates"][-1] == 1.0
    assert read_metric(path, "accuracy") == 0.75
    assert read_metric(tmp_path, "roc_auc") == pytest.approx(15 / 16)
    assert sagemaker_model_quality(evaluation)["binary_classification_metrics"]["decision_threshold"] == 0.5


def test_curves_are_thinned_and_finite() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 5000)
    evaluation = compute_evaluation(labels, rng.random(5000))
    assert len(evaluation.roc_fpr) <= 101 and len(evaluation.pr_precision) <= 101
    assert all(np.isfinite(evaluation.roc_thresholds))


def test_plots_are_png(tmp_path: Path) -> None:
    evaluation = compute_evaluation(LABELS, SCORES)
    for path in (plot_roc(evaluation, tmp_path / "roc.png"), plot_confusion(evaluation, tmp_path / "cm.png")):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_real_model_on_the_test_split(trained_model: Path, prepared: dict[str, Path]) -> None:
    evaluation = evaluate_model(prepared["test"], trained_model)
    assert evaluation.metrics["roc_auc"] >= 0.95
    assert evaluation.metrics["accuracy"] >= 0.85
    assert sum(map(sum, evaluation.confusion)) == 600
