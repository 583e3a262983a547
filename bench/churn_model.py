"""The churn model the benchmarks serve and score: the real churn data through preprocess and train.

Shared by bench_scoring.py and load_serving.py (they had identical copies): preprocess splits
../shared/data/churn.txt with seed 42 and writes the feature schema, train fits the booster with
the pipeline's defaults into `<work>/model`. With `decision_threshold`, an evaluation.json carrying
it is written beside the model, as the register step attaches one (what `kubesage score` reads).
"""

from __future__ import annotations

import json
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
CHURN = REPO_ROOT.parent / "shared" / "data" / "churn.txt"


def train_churn_model(work: Path, decision_threshold: float | None = None) -> Path:
    """`<work>/model`: the booster and feature_schema.json (and evaluation.json with a threshold)."""
    from kubesage.churn.features import FeatureSchema
    from kubesage.components.preprocess import preprocess
    from kubesage.components.train import TrainParams, train_from_csv

    prepared = work / "prepared"
    paths = {name: prepared / f"{name}.csv" for name in ("train", "validation", "test")}
    preprocess(str(CHURN), dict(paths), prepared / "feature_schema.json", seed=42)
    model_dir = work / "model"
    train_from_csv(
        paths["train"],
        paths["validation"],
        TrainParams(),
        model_dir,
        FeatureSchema.load(prepared / "feature_schema.json"),
    )
    if decision_threshold is not None:
        (model_dir / "evaluation.json").write_text(
            json.dumps({"binary_classification_metrics": {"decision_threshold": decision_threshold}})
        )
    return model_dir
