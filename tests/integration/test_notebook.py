"""The example notebook (examples/churn_notebook.py, a jupytext percent script) executed as a notebook
with nbclient on a real kernel, so it never rots: it must show a registered model, a comparison of two
runs and a served prediction (issue 28 item 2)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.paths import REPO_ROOT

pytestmark = [pytest.mark.integration, pytest.mark.slow]

NOTEBOOK = REPO_ROOT / "examples" / "churn_notebook.py"


def _text(output: dict[str, Any]) -> str:
    if output.get("output_type") == "stream":
        return str(output["text"])
    return str(output.get("data", {}).get("text/plain", ""))


def test_the_notebook_trains_compares_and_serves(mlflow_sqlite: str, tmp_path: Path) -> None:
    import jupytext
    from nbclient import NotebookClient

    notebook = jupytext.read(NOTEBOOK)
    # The kernel inherits this process's environment (the fixture's fresh MLflow store) and runs in tmp_path.
    NotebookClient(
        notebook, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    outputs = ["".join(_text(o) for o in cell.get("outputs", [])) for cell in code]

    trained, compared, served = outputs[1], outputs[2], outputs[3]
    assert trained.count("succeeded: run ") == 2
    assert "registered versions of customer-churn: 1, 2" in trained  # a fresh store; both pass the gate
    # The comparison: both runs, their max_depth, side by side.
    run_ids = [line.split("run ")[1].split(",")[0] for line in trained.splitlines() if line.startswith("succeeded")]
    for short in run_ids:
        assert short in compared
    assert "params.max_depth" in compared and "metrics.roc_auc" in compared
    # The served prediction: one probability for the one record sent.
    assert served.startswith("served models:/customer-churn/2: ")  # the deeper run's version
    answer = json.loads(served.split(": ", 1)[1])
    (prediction,) = answer["predictions"]
    assert 0.0 <= prediction["score"] <= 1.0
    assert (tmp_path / "build" / "notebook" / "churn.csv").is_file()
