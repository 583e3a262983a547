"""The task graph of a compiled IR: nested DAGs and the tasks that run an executor."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kubesage.ir.graph import dags, executor_tasks, executors
from kubesage.runners.registry import load_pipeline


@pytest.fixture(scope="module")
def spec(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return load_pipeline("customer_churn", tmp_path_factory.mktemp("ir")).spec


def test_dags_are_the_root_and_every_dag_component(spec: dict[str, Any]) -> None:
    owners = [owner for owner, _ in dags(spec)]
    assert owners[0] == "root"
    assert set(owners[1:]) == {n for n, c in spec["components"].items() if "dag" in c}
    assert "comp-condition-branches-1" in owners


def test_executor_tasks_are_the_container_tasks_at_any_depth(spec: dict[str, Any]) -> None:
    assert set(executor_tasks(spec)) == {"preprocess", "train", "evaluate", "register", "report-not-registered"}
    assert len(executors(spec)) == 5


def test_an_importer_has_no_container(tmp_path: Path) -> None:
    spec = {
        "root": {"dag": {"tasks": {"imp": {"componentRef": {"name": "comp-imp"}}}}},
        "components": {"comp-imp": {"executorLabel": "exec-imp"}},
        "deploymentSpec": {"executors": {"exec-imp": {"importer": {}}}},
    }
    assert executor_tasks(spec) == ["imp"] and executors(spec) == {}
