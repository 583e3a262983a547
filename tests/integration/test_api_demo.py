"""The demo's serving tail on a model registered in MLflow: models:/customer-churn/1 -> serve -> API -> answer.

This is also the test of `bundle_from_model` on a real registered version: the schema and the
decision threshold come from the feature_schema.json and evaluation.json the register step attached.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kubesage.components.evaluate import evaluate_model, write_evaluation
from kubesage.components.register import register_model
from kubesage.deploy.bundle import bundle_from_model
from kubesage.local_api.demo import latest_model, run
from tests.integration.api_helpers import evaluation_path_probability

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_demo_serves_the_registered_model_and_answers_the_first_record(
    mlflow_sqlite: str, trained_model: Path, prepared: dict[str, Path], churn_csv: Path, tmp_path: Path
) -> None:
    evaluation = write_evaluation(evaluate_model(prepared["test"], trained_model, 0.45), tmp_path / "evaluation.json")
    registration = register_model(trained_model, prepared["schema"], evaluation, prepared["test"])
    model = latest_model()
    assert model == registration.model_uri == "models:/customer-churn/1"
    bundle = bundle_from_model(model, tmp_path / "download")
    assert bundle.decision_threshold == 0.45  # from the registered evaluation.json, not from code

    result = run(model, churn_csv)
    (prediction,) = result["predictions"]  # type: ignore[misc]
    assert result["label"] == "True."
    assert prediction["churn"] is True
    expected = evaluation_path_probability(trained_model, result["record"])  # type: ignore[arg-type]
    assert prediction["churn_probability"] == pytest.approx(expected, abs=1e-6)
