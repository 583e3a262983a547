"""The reference pipeline: customer churn, as in Intel's "XGBoost on SageMaker" module.

preprocess -> train -> evaluate -> gate (accuracy >= min_accuracy) -> register | not registered
"""

from kfp import dsl

from kubesage.components import defaults
from kubesage.components.kfp_components import (
    evaluate,
    preprocess,
    register,
    report_not_registered,
    train,
)

PIPELINE_NAME = "customer-churn"
D = defaults


@dsl.pipeline(
    name=PIPELINE_NAME,
    description="Customer churn: XGBoost trained and served through daal4py, registered when accurate enough.",
)
def customer_churn(
    input_data: str,
    seed: int = D.SEED,
    train_fraction: float = D.TRAIN_FRACTION,
    validation_fraction: float = D.VALIDATION_FRACTION,
    max_depth: int = D.MAX_DEPTH,
    eta: float = D.ETA,
    gamma: float = D.GAMMA,
    min_child_weight: float = D.MIN_CHILD_WEIGHT,
    subsample: float = D.SUBSAMPLE,
    num_round: int = D.NUM_ROUND,
    early_stopping_rounds: int = D.EARLY_STOPPING_ROUNDS,
    decision_threshold: float = D.DECISION_THRESHOLD,
    min_accuracy: float = D.MIN_ACCURACY,
    model_name: str = D.MODEL_NAME,
) -> None:
    prep = preprocess(
        input_data=input_data,
        seed=seed,
        train_fraction=train_fraction,
        validation_fraction=validation_fraction,
    ).set_display_name("Preprocess")
    trained = train(
        train_data=prep.outputs["train"],
        validation_data=prep.outputs["validation"],
        feature_schema=prep.outputs["feature_schema"],
        max_depth=max_depth,
        eta=eta,
        gamma=gamma,
        min_child_weight=min_child_weight,
        subsample=subsample,
        num_round=num_round,
        early_stopping_rounds=early_stopping_rounds,
        seed=seed,
    ).set_display_name("Train")
    evaluated = evaluate(
        test_data=prep.outputs["test"],
        model=trained.outputs["model"],
        decision_threshold=decision_threshold,
    ).set_display_name("Evaluate")
    with dsl.If(evaluated.outputs["Output"] >= min_accuracy, name="accuracy-gate"):
        register(
            model=trained.outputs["model"],
            feature_schema=prep.outputs["feature_schema"],
            evaluation=evaluated.outputs["evaluation"],
            test_data=prep.outputs["test"],
            baseline=prep.outputs["baseline"],
            model_name=model_name,
        ).set_display_name("Register")
    with dsl.Else(name="below-gate"):
        report_not_registered(
            metric="accuracy", value=evaluated.outputs["Output"], minimum=min_accuracy
        ).set_display_name("Not registered")
