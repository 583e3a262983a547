"""What the local runner's zygote imports for a run: the modules its components import that are safe
to import before forking (runners/local/launcher.py `preload_for`), and the preload request itself."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from kubesage.runners.local.launcher import KUBESAGE_STEPS_PRELOAD, ForkServer, preload_for
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
    (a task needing it would fail with the real error in its own log)."""
    with ForkServer(essential=()) as server:
        server.preload(["kubesage_preload_probe_missing"])
        deadline = time.monotonic() + 30
        seen = ""
        while "kubesage_preload_probe_missing" not in seen and time.monotonic() < deadline:
            time.sleep(0.05)
            seen += capfd.readouterr().err
    assert "fork server: not preloaded kubesage_preload_probe_missing: ModuleNotFoundError" in seen
