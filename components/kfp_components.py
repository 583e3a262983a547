"""The churn steps as KFP v2 lightweight components: thin wrappers over kubesage.components.steps.

Each body imports kubesage inside the function because KFP ships only the function's source to the
task; the image (or the local interpreter) provides the installed package. `install_kfp_package=False`
keeps tasks from pip-installing anything at start, so they run offline and start fast.
"""

import os

from kfp import dsl
from kfp.dsl import Artifact, ClassificationMetrics, Dataset, Input, Metrics, Model, Output

IMAGE = os.environ.get("KUBESAGE_IMAGE", "kubesage/xgboost-daal4py:latest")


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def preprocess(
    input_data: str,
    seed: int,
    train_fraction: float,
    validation_fraction: float,
    train: Output[Dataset],
    validation: Output[Dataset],
    test: Output[Dataset],
    feature_schema: Output[Artifact],
    baseline: Output[Artifact],
    metrics: Output[Metrics],
    train_shards: int = 1,
) -> None:
    """Raw churn CSV -> seeded train/validation/test splits, the feature schema (JSON) and the drift
    baseline (a folder: Model Monitor's statistics.json and constraints.json of the training split).

    `train_shards` above 1 writes the train split as that many part files (a folder), one per instance of
    a multi-instance training job; the SageMaker compiler sets it from the train task's instance count."""
    from kubesage.components.steps import log_kfp_metrics, preprocess_step

    values = preprocess_step(
        input_data,
        train.path,
        validation.path,
        test.path,
        feature_schema.path,
        seed=seed,
        train_fraction=train_fraction,
        validation_fraction=validation_fraction,
        baseline_dir=baseline.path,
        train_shards=train_shards,
    )
    log_kfp_metrics(metrics, values)


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def train(
    train_data: Input[Dataset],
    validation_data: Input[Dataset],
    feature_schema: Input[Artifact],
    max_depth: int,
    eta: float,
    gamma: float,
    min_child_weight: float,
    subsample: float,
    num_round: int,
    early_stopping_rounds: int,
    seed: int,
    model: Output[Model],
    metrics: Output[Metrics],
) -> None:
    """XGBoost binary:logistic with early stopping; saved as UBJ; daal4py parity checked."""
    from kubesage.components.steps import log_kfp_metrics, train_step
    from kubesage.components.train import TrainParams

    params = TrainParams(
        max_depth=max_depth,
        eta=eta,
        gamma=gamma,
        min_child_weight=min_child_weight,
        subsample=subsample,
        num_round=num_round,
        early_stopping_rounds=early_stopping_rounds,
        seed=seed,
    )
    # On a multi-instance SageMaker training job every host runs this, and they train one model together.
    values = train_step(train_data.path, validation_data.path, feature_schema.path, model.path, params)
    model.metadata["framework"] = "xgboost"
    model.metadata["format"] = "ubj"
    log_kfp_metrics(metrics, values)


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def evaluate(
    test_data: Input[Dataset],
    model: Input[Model],
    decision_threshold: float,
    metrics: Output[Metrics],
    classification_metrics: Output[ClassificationMetrics],
    evaluation: Output[Artifact],
) -> float:
    """Metrics through the daal4py model; returns accuracy for the registration gate."""
    from kubesage.components.steps import evaluate_step, log_kfp_classification, log_kfp_metrics

    result = evaluate_step(test_data.path, model.path, evaluation.path, decision_threshold)
    log_kfp_metrics(metrics, result.metrics)
    log_kfp_classification(classification_metrics, result)
    return result.metrics["accuracy"]


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def register(
    model: Input[Model],
    feature_schema: Input[Artifact],
    evaluation: Input[Artifact],
    test_data: Input[Dataset],
    baseline: Input[Artifact],
    model_name: str,
) -> str:
    """Registers the model (with its feature schema, evaluation and drift baseline) in the MLflow Model
    Registry; returns the new version."""
    from kubesage.components.steps import register_step

    registration = register_step(
        model.path, feature_schema.path, evaluation.path, test_data.path, model_name, baseline_dir=baseline.path
    )
    return registration.version


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def report_not_registered(metric: str, value: float, minimum: float) -> str:
    """The gate's else branch: records why the model was not registered."""
    from kubesage.components.steps import gate_rejected_step

    return gate_rejected_step(metric, value, minimum)


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def drift(
    captures: str,
    model: str,
    start: str,
    end: str,
    last: str,
    drift_report: Output[Artifact],
    metrics: Output[Metrics],
) -> int:
    """Captured traffic against the model's training baseline (`kubesage drift`) in the window [start, end)
    or the `last` 30m/24h/7d before end (or now); returns the number of violations. The artifact is a
    folder: statistics.json, constraint_violations.json, drift.json and report.html."""
    from kubesage.components.steps import drift_step, log_kfp_metrics

    values = drift_step(captures, model, drift_report.path, start=start, end=end, last=last)
    log_kfp_metrics(metrics, values)
    return int(values["drift_violations"])
