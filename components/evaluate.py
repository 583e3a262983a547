"""Evaluate: inference through the daal4py-converted model, metrics on probabilities and at a threshold.

Probability metrics (ROC AUC, PR AUC, log loss) use the scores themselves; the seed computed AUC on
rounded predictions, which throws the ranking away.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from sklearn import metrics as skm

from kubesage.churn.modelio import Daal4pyModel, load_booster
from kubesage.components import defaults
from kubesage.components.datasets import read_labelled_csv
from kubesage.errors import ParameterError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

EVALUATION_FILENAME = "evaluation.json"
CURVE_POINTS = 101


@dataclass(frozen=True)
class Evaluation:
    """Everything evaluate measured; `metrics` is flat for MLflow and KFP Metrics."""

    metrics: dict[str, float]
    confusion: list[list[int]]  # rows: actual 0/1, columns: predicted 0/1
    roc_fpr: list[float] = field(default_factory=list)
    roc_tpr: list[float] = field(default_factory=list)
    roc_thresholds: list[float] = field(default_factory=list)
    pr_precision: list[float] = field(default_factory=list)
    pr_recall: list[float] = field(default_factory=list)
    threshold: float = 0.5


def compute_evaluation(labels: np.ndarray, scores: np.ndarray, threshold: float = 0.5) -> Evaluation:
    if not 0.0 < threshold < 1.0:
        raise ParameterError(f"decision_threshold={threshold} must be between 0 and 1")
    predicted = (scores >= threshold).astype(np.int64)
    tn, fp, fn, tp = skm.confusion_matrix(labels, predicted, labels=[0, 1]).ravel()
    values = {
        "accuracy": skm.accuracy_score(labels, predicted),
        "precision": skm.precision_score(labels, predicted, zero_division=0),
        "recall": skm.recall_score(labels, predicted, zero_division=0),
        "f1": skm.f1_score(labels, predicted, zero_division=0),
        "roc_auc": skm.roc_auc_score(labels, scores),
        "pr_auc": skm.average_precision_score(labels, scores),
        "log_loss": skm.log_loss(labels, np.clip(scores, 1e-15, 1 - 1e-15), labels=[0, 1]),
        "true_positive_rate": tp / max(tp + fn, 1),
        "false_positive_rate": fp / max(fp + tn, 1),
    }
    fpr, tpr, roc_thresholds = skm.roc_curve(labels, scores)
    precision, recall, _ = skm.precision_recall_curve(labels, scores)
    roc_idx = _thin(len(fpr))
    pr_idx = _thin(len(precision))
    return Evaluation(
        metrics={k: float(v) for k, v in values.items()},
        confusion=[[int(tn), int(fp)], [int(fn), int(tp)]],
        roc_fpr=[float(fpr[i]) for i in roc_idx],
        roc_tpr=[float(tpr[i]) for i in roc_idx],
        # sklearn's first ROC threshold is +inf; JSON and KFP need finite numbers.
        roc_thresholds=[float(min(roc_thresholds[i], 1.0)) for i in roc_idx],
        pr_precision=[float(precision[i]) for i in pr_idx],
        pr_recall=[float(recall[i]) for i in pr_idx],
        threshold=threshold,
    )


def _thin(n: int) -> list[int]:
    """At most CURVE_POINTS indices, always keeping both ends, so curves stay small in JSON."""
    if n <= CURVE_POINTS:
        return list(range(n))
    return sorted({round(i * (n - 1) / (CURVE_POINTS - 1)) for i in range(CURVE_POINTS)})


def sagemaker_model_quality(evaluation: Evaluation) -> dict[str, Any]:
    """evaluation.json in SageMaker's model-quality format (binary_classification_metrics)."""

    def stat(value: float) -> dict[str, Any]:
        return {"value": value, "standard_deviation": "NaN"}

    m = evaluation.metrics
    (tn, fp), (fn, tp) = evaluation.confusion
    return {
        "binary_classification_metrics": {
            "confusion_matrix": {"0": {"0": tn, "1": fp}, "1": {"0": fn, "1": tp}},
            "accuracy": stat(m["accuracy"]),
            "precision": stat(m["precision"]),
            "recall": stat(m["recall"]),
            "f1": stat(m["f1"]),
            "auc": stat(m["roc_auc"]),
            "pr_auc": stat(m["pr_auc"]),
            "log_loss": stat(m["log_loss"]),
            "true_positive_rate": stat(m["true_positive_rate"]),
            "false_positive_rate": stat(m["false_positive_rate"]),
            "receiver_operating_characteristic_curve": {
                "false_positive_rates": evaluation.roc_fpr,
                "true_positive_rates": evaluation.roc_tpr,
            },
            "precision_recall_curve": {
                "precisions": evaluation.pr_precision,
                "recalls": evaluation.pr_recall,
            },
            "decision_threshold": evaluation.threshold,
        }
    }


def evaluate_model(
    test_csv: str | Path, model_dir: str | Path, threshold: float = defaults.DECISION_THRESHOLD
) -> Evaluation:
    test = read_labelled_csv(test_csv)
    model = Daal4pyModel.from_booster(load_booster(model_dir))
    return compute_evaluation(test.labels, model.probabilities(test.features), threshold)


def write_evaluation(evaluation: Evaluation, path: str | Path) -> Path:
    target = Path(path)
    if target.is_dir():
        target = target / EVALUATION_FILENAME
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(sagemaker_model_quality(evaluation), indent=2), encoding="utf-8")
    return target


def read_metric(evaluation_json: str | Path, name: str) -> float:
    """One metric's value from an evaluation.json (as SageMaker's JsonGet would read it)."""
    source = Path(evaluation_json)
    if source.is_dir():
        source = source / EVALUATION_FILENAME
    data = json.loads(source.read_text(encoding="utf-8"))["binary_classification_metrics"]
    key = "auc" if name == "roc_auc" else name
    value = float(data[key]["value"])
    if math.isnan(value):
        raise ValueError(f"metric {name} is NaN in {source}")
    return value


def _figure(size: float) -> Figure:
    """A matplotlib Figure that draws with Agg into a file: no pyplot, so no backend or figure
    list of the caller's is touched (a notebook keeps its own), and pyplot's import is not paid."""
    from matplotlib.figure import Figure

    return Figure(figsize=(size, size), dpi=100)


def plot_roc(evaluation: Evaluation, path: str | Path) -> Path:
    fig = _figure(4.5)
    ax = fig.subplots()
    ax.plot(evaluation.roc_fpr, evaluation.roc_tpr, label=f"AUC {evaluation.metrics['roc_auc']:.3f}")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=0.8)
    ax.set(xlabel="False positive rate", ylabel="True positive rate", title="ROC curve")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    return Path(path)


def plot_confusion(evaluation: Evaluation, path: str | Path) -> Path:
    matrix = np.asarray(evaluation.confusion)
    fig = _figure(4)
    ax = fig.subplots()
    ax.imshow(matrix, cmap="Blues", vmin=0)
    names = [["true negatives", "false positives"], ["false negatives", "true positives"]]
    for (row, col), count in np.ndenumerate(matrix):
        # White on the dark cells, black on the light ones: readable on every shade of the map.
        colour = "white" if count > matrix.max() / 2 else "black"
        ax.text(col, row, f"{count}\n{names[row][col]}", ha="center", va="center", color=colour, fontsize=11)
    ax.set_xticks([0, 1], labels=["False", "True"])
    ax.set_yticks([0, 1], labels=["False", "True"])
    ax.set(xlabel="Predicted", ylabel="Actual", title=f"Confusion matrix @ {evaluation.threshold:g}")
    fig.tight_layout()
    fig.savefig(path)
    return Path(path)
