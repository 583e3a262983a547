"""Prediction without scikit-learn: daal4py's core alone (kubesage.churn.onedal) and XGBoost without
its scikit-learn layer (kubesage.churn.lean_import), each in a fresh interpreter (what they change is
the process's module table), against daal4py's own `predict_proba` on the real-data model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from kubesage.churn.modelio import load_booster, xgboost_view
from kubesage.components.datasets import read_labelled_csv

HEAVY = ("sklearn", "scipy.stats", "daal4py.sklearn")


def run_python(code: str) -> dict[str, object]:
    """Run `code` in a fresh interpreter; it prints one JSON object as its last line."""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def features(prepared: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("features") / "test.npy"
    np.save(path, xgboost_view(read_labelled_csv(prepared["test"]).features))
    return path


def test_the_core_alone_predicts_what_daal4py_predicts_and_daal4py_imports_whole_after(
    trained_model: Path, features: Path, tmp_path: Path
) -> None:
    answers = tmp_path / "answers.npz"
    seen = run_python(
        f"""
import json, sys
import numpy as np
from kubesage.churn.onedal import GbtClassifier, load_core
load_core()
before = sorted(m for m in {HEAVY!r} + ("daal4py", "daal4py.mb") if m in sys.modules)
from kubesage.churn.modelio import load_booster
booster = load_booster({str(trained_model)!r})
x = np.load({str(features)!r})
ours = GbtClassifier.from_booster(booster)
import daal4py  # the whole package, after the core alone
theirs = daal4py.mb.convert_model(booster)
np.savez({str(answers)!r}, ours64=ours.probabilities(x), theirs64=theirs.predict_proba(x)[:, 1],
         ours32=ours.probabilities(x.astype(np.float32)), theirs32=theirs.predict_proba(x.astype(np.float32))[:, 1])
print(json.dumps({{"before": before, "n_classes": ours.n_classes, "n_features": ours.n_features,
                  "whole": hasattr(daal4py, "sklearn") and hasattr(daal4py.mb, "GBTDAALModel")}}))
"""
    )
    assert seen["before"] == []  # no scikit-learn, SciPy stats or daal4py package modules: only the core
    assert seen["whole"] is True
    assert (seen["n_classes"], seen["n_features"]) == (2, load_booster(trained_model).num_features())
    got = np.load(answers)
    assert len(got["ours64"]) == 600
    np.testing.assert_array_equal(got["ours64"], got["theirs64"])  # the same oneDAL call, bit for bit
    np.testing.assert_array_equal(got["ours32"], got["theirs32"])


def test_xgboost_without_scikit_learn_predicts_the_same_and_scikit_learn_still_imports(
    trained_model: Path, features: Path
) -> None:
    expected = load_booster(trained_model).inplace_predict(np.load(features))
    seen = run_python(
        f"""
import json, sys
import numpy as np
from kubesage.churn.lean_import import import_xgboost_without_scikit_learn
import_xgboost_without_scikit_learn()
from kubesage.churn.modelio import load_booster
probs = load_booster({str(trained_model)!r}).inplace_predict(np.load({str(features)!r}))
loaded = sorted(m for m in {HEAVY!r} if m in sys.modules)
import sklearn.metrics  # unhidden: imports as usual
auc = sklearn.metrics.roc_auc_score([0, 1], [0.2, 0.8])
print(json.dumps({{"loaded": loaded, "probs": probs.tolist(), "sklearn": auc}}))
"""
    )
    assert seen["loaded"] == []
    assert seen["sklearn"] == 1.0
    np.testing.assert_array_equal(np.asarray(seen["probs"], dtype=np.float32), expected)


def test_the_score_command_imports_no_scikit_learn(trained_model: Path, churn_csv: Path, tmp_path: Path) -> None:
    out = tmp_path / "scores.csv"
    seen = run_python(
        f"""
import json, sys
from click.testing import CliRunner
from kubesage.cli import main
result = CliRunner().invoke(main, ["score", "--model", {str(trained_model)!r}, "--input", {str(churn_csv)!r},
                                   "--output", {str(out)!r}, "--threshold", "0.5"])
print(json.dumps({{"exit": result.exit_code, "output": result.output,
                  "loaded": sorted(m for m in {HEAVY!r} if m in sys.modules)}}))
"""
    )
    assert seen["exit"] == 0, seen["output"]
    assert seen["loaded"] == []
    assert len(out.read_text().splitlines()) == 5001


def test_a_server_worker_imports_xgboost_without_scikit_learn() -> None:
    seen = run_python(
        f"""
import json, sys
import kubesage.serving.worker
print(json.dumps({{"xgboost": "xgboost" in sys.modules, "loaded": sorted(m for m in {HEAVY!r} if m in sys.modules)}}))
"""
    )
    assert seen == {"xgboost": True, "loaded": []}


def test_the_serve_command_imports_xgboost_without_scikit_learn(tmp_path: Path) -> None:
    # A model folder that does not exist: the command fails after its imports, before it serves.
    missing = tmp_path / "no-model"
    seen = run_python(
        f"""
import json, sys
from click.testing import CliRunner
from kubesage.cli import main
result = CliRunner().invoke(main, ["serve", "--model-dir", {str(missing)!r}, "--port", "1"])
print(json.dumps({{"exit": result.exit_code, "output": result.output, "xgboost": "xgboost" in sys.modules,
                  "loaded": sorted(m for m in {HEAVY!r} if m in sys.modules)}}))
"""
    )
    assert seen["exit"] != 0 and "no-model" in str(seen["output"]), seen
    assert seen["xgboost"] is True and seen["loaded"] == []


def test_the_image_entry_imports_xgboost_without_scikit_learn() -> None:
    """`python -m kubesage.image` (the image's train and serve commands), run as __main__; without a
    command it exits 2 with its usage, after its imports."""
    seen = run_python(
        f"""
import json, runpy, sys
sys.argv = ["kubesage.image"]
try:
    runpy.run_module("kubesage.image", run_name="__main__")
except SystemExit as exc:
    code = exc.code
print(json.dumps({{"exit": code, "entry": "kubesage.image.entry" in sys.modules, "xgboost": "xgboost" in sys.modules,
                  "loaded": sorted(m for m in {HEAVY!r} if m in sys.modules)}}))
"""
    )
    assert seen == {"exit": 2, "entry": True, "xgboost": True, "loaded": []}


def test_hidden_fails_imports_inside_the_block_only_and_leaves_imported_modules_alone() -> None:
    seen = run_python(
        """
import json, sys
from kubesage.churn.lean_import import hidden
import csv
with hidden("fractions", "csv"):
    try:
        import fractions
        inside = "imported"
    except ImportError as exc:
        inside = "refused" if isinstance(exc, ImportError) else "other"
    still_csv = sys.modules["csv"] is csv
import fractions
print(json.dumps({"inside": inside, "after": fractions.Fraction(1, 2) == 0.5, "csv": still_csv}))
"""
    )
    assert seen == {"inside": "refused", "after": True, "csv": True}
