"""What the local runner's zygote imports for a run: the modules its components import that are safe
to import before forking (runners/local/launcher.py `preload_for`), and the preload request itself."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from kubesage.runners.local.launcher import KUBESAGE_STEPS_PRELOAD, ForkServer, PythonCall, preload_for
from kubesage.runners.registry import load_pipeline


def test_the_churn_steps_get_their_libraries_preloaded(tmp_path: Path) -> None:
    assert preload_for(load_pipeline("customer_churn", tmp_path).spec) == list(KUBESAGE_STEPS_PRELOAD)


def test_components_importing_only_the_standard_library_and_tracking_preload_nothing(tmp_path: Path) -> None:
    spec = load_pipeline("tests.integration.local_pipelines:isolation_pipeline", tmp_path).spec
    assert preload_for(spec) == []


def test_only_fork_safe_libraries_are_preloaded_in_first_use_order(tmp_path: Path) -> None:
    spec = load_pipeline("tests.unit.runners.local.preload_pipelines:imports_pipeline", tmp_path).spec
    assert preload_for(spec) == ["pandas", "sklearn.metrics"]  # not json (stdlib), not torch


def test_the_zygote_imports_what_a_preload_request_names(capfd: pytest.CaptureFixture[str]) -> None:
    """A module that does not exist is the visible trace: the zygote says it could not preload it
    (a task needing it would fail with the real error in its own log). Nothing else is imported or
    opened: with no essentials and no tracking store to warm, the zygote starts in a fraction of a second."""
    with ForkServer(essential=(), warm_tracking_store=False) as server:
        server.preload(["kubesage_preload_probe_missing"])
        deadline = time.monotonic() + 30
        seen = ""
        while "kubesage_preload_probe_missing" not in seen and time.monotonic() < deadline:
            time.sleep(0.05)
            seen += capfd.readouterr().err
    assert "fork server: not preloaded kubesage_preload_probe_missing: ModuleNotFoundError" in seen


# A task's module runs at import, before KFP's executor looks for its function: it prints what it
# inherited from the zygote and exits.
WARM_PROBE = (
    "import sys\n"
    "from mlflow.utils import requirements_utils\n"
    "print('packages mapped:', requirements_utils._MODULES_TO_PACKAGES is not None)\n"
    "print('IPython imported:', 'IPython' in sys.modules)\n"
    "print('kfp.Client imported:', 'kfp.client' in sys.modules)\n"
    "sys.exit(0)\n"
)


def _probe(server: ForkServer, cwd: Path) -> list[str]:
    lines: list[str] = []
    call = PythonCall(source=WARM_PROBE, args=["--executor_input", "{}", "--function_to_execute", "f"])
    assert server.run(call, {"PATH": os.environ.get("PATH", "")}, str(cwd), lines.append) == 0
    return [line.strip() for line in lines if ":" in line and line.split(":")[0] in PROBED]


PROBED = {"packages mapped", "IPython imported", "kfp.Client imported"}


def test_the_zygote_does_mlflows_once_per_process_work_and_imports_kfp_as_a_kfp_task_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without it, each task resolved MLflow's request headers (importing IPython to look for a
    Databricks notebook) and each model-logging task mapped the installed packages (0.8 s of CPU).
    kfp is imported as KFP's launch line has a task import it (`_KFP_RUNTIME=true`): without kfp.Client,
    which a task of a KFP cluster does not have either.
    This zygote is told its tasks' store is named otherwise (as the KFP stand-in's are): it leaves
    the store its environment names alone."""
    store = tmp_path / "mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store}")
    essential = ("kfp.dsl.executor_main", "kubesage.tracking", "mlflow.tracking")
    with ForkServer(essential=essential, warm_tracking_store=False) as server:
        # A fresh process that imports mlflow.tracking has neither; the zygote has the headers' part at once.
        expected = ["packages mapped: False", "IPython imported: True", "kfp.Client imported: False"]
        assert _probe(server, tmp_path) == expected
        server.preload(["mlflow.models"])
        deadline = time.monotonic() + 60
        while (seen := _probe(server, tmp_path))[0] != "packages mapped: True" and time.monotonic() < deadline:
            time.sleep(0.1)
    assert seen == ["packages mapped: True", "IPython imported: True", "kfp.Client imported: False"]
    assert not store.exists()


def test_the_zygote_opens_the_sqlite_store_its_environment_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """(The KFP stand-in's zygotes are told not to, above: a pod's tasks get their store from the IR,
    and the store the run's environment named was a new SQLite file, migrated for nothing, per run.)"""
    store = tmp_path / "mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store}")
    with ForkServer(essential=("kubesage.tracking", "mlflow.tracking")) as server:
        _probe(server, tmp_path)  # served once the essentials and the store are ready
        assert store.exists()


GC_PROBE = (
    "import gc, sys\n"
    "print('collecting:', gc.isenabled(), gc.get_threshold()[0])\n"
    "print('inherited frozen:', gc.get_freeze_count() > 10_000)\n"
    "sys.exit(0)\n"
)


def test_a_task_collects_garbage_as_a_fresh_process_with_the_zygotes_imports_frozen(tmp_path: Path) -> None:
    """The zygote collects nothing while it imports (it only imports and forks) and freezes what it
    holds before each fork: a task's collections then scan only its own objects."""
    lines: list[str] = []
    call = PythonCall(source=GC_PROBE, args=["--executor_input", "{}", "--function_to_execute", "f"])
    with ForkServer(essential=("kfp.dsl.executor_main",), warm_tracking_store=False) as server:
        assert server.run(call, {"PATH": os.environ.get("PATH", "")}, str(tmp_path), lines.append) == 0
    probed = [line.strip() for line in lines if line.startswith(("collecting:", "inherited frozen:"))]
    assert probed == ["collecting: True 700", "inherited frozen: True"]  # 700: Python's default
