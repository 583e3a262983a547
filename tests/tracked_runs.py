"""Two runs of the churn pipeline on KFP's local runner, tracked in a real `mlflow server` of their own
(an empty store: the UI's tables show these runs only), made once for tests/ui/test_mlflow_ui.py (the
MLflow UI on them, in a browser), which does not write to the server. What a run tracked over HTTP must
hold is the compliance suite's (tests/compliance/test_runners.py), on every runner's run. A module that
reads these runs too carries `SAME_WORKER`, so under xdist one worker makes them (a session fixture is
made once per worker).

The runs go through the Python API in the test process, as `kubesage run` would make them from their
working directory (tests/sdk_runs.py): ~6 s of CPU less each than the command.

tests/conftest.py imports the fixture: a fixture imported into each test module would be a separate
definition there, made once per module.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.mlflow_server import MlflowServer, start_mlflow_server
from tests.sdk_runs import run_in_workdir

SAME_WORKER = pytest.mark.xdist_group("tracked-churn-runs")
# The runs differ in max_depth: the UI compares them.
MAX_DEPTHS = (3, 6)


@dataclass(frozen=True)
class TrackedRuns:
    server: MlflowServer
    results: list[dict[str, Any]]  # each run's `to_dict()` (`kubesage run --output json`), in MAX_DEPTHS' order


def _run(server: MlflowServer, churn_csv: Path, workdir: Path, max_depth: int) -> dict[str, Any]:
    params = {"input_data": str(churn_csv), "max_depth": str(max_depth)}
    return run_in_workdir("customer_churn", workdir, server.url, params)


@pytest.fixture(scope="session")
def tracked_runs(
    churn_csv: Path, mlflow_sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TrackedRuns]:
    """The two runs and their server (its store a copy of the session's migrated template)."""
    root = tmp_path_factory.mktemp("tracked-runs-mlflow")
    server = start_mlflow_server(root, timeout=600, store_template=mlflow_sqlite_template)  # slow on a busy CI box
    try:
        workdir = tmp_path_factory.mktemp("tracked-runs")
        yield TrackedRuns(server, [_run(server, churn_csv, workdir, depth) for depth in MAX_DEPTHS])
    finally:
        server.kill()  # its store is thrown away
