"""Pytest fixtures for the KFP API stand-in (tests/standins/kfp_api.py).

tests/conftest.py registers this module as a plugin, so every suite shares one definition of each
(importing them into a module would make that module its own stand-in). A test that injects `Faults`
uses `kfp_faults_reset`, so that the next test, of any suite, meets none.

The stand-in proves the client protocol, parameters, tracking hand-off and failure handling of the
kfp runner; not Argo, KFP's driver/launcher, scheduling or a cluster's pods. `kfp_docker_standin` also
runs each task in its IR image (Docker), as a pod runs its container spec.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.standins.kfp_api import DockerPods, Faults, KfpStandin


@pytest.fixture(scope="session")
def kfp_standin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KfpStandin]:
    """The KFP v2beta1 API stand-in on 127.0.0.1 (one per session); runs execute with kfp.local.

    Tests that inject `Faults` reset them when done (see `kfp_faults_reset`)."""
    standin = KfpStandin(tmp_path_factory.mktemp("kfp-standin")).start()
    try:
        yield standin
    finally:
        standin.stop()


@pytest.fixture(scope="session")
def kfp_docker_standin(tmp_path_factory: pytest.TempPathFactory, churn_csv: Path) -> Iterator[KfpStandin]:
    """A stand-in whose runs execute each task in the image its IR names, with kfp.local's DockerRunner
    (`DockerPods`): the host's network, so a tracking server on this machine's loopback is reachable from
    the containers; the churn data's folder mounted read-only at the same path. Needs the Docker engine
    (tests using it are marked `container`)."""
    pods = DockerPods(network_mode="host", read_only_mounts=(churn_csv.parent,))
    standin = KfpStandin(tmp_path_factory.mktemp("kfp-docker-standin"), pods=pods).start()
    try:
        yield standin
    finally:
        standin.stop()


@pytest.fixture(scope="session")
def kfp_runner_options(kfp_standin: KfpStandin) -> dict[str, Any]:
    """Options for `get_runner("kfp", options)` (or `--option NAME=VALUE`) pointing at the stand-in.

    The runs' tasks need MLFLOW_TRACKING_URI to be a server (the runner refuses SQLite: pods cannot
    share a file), e.g. the integration suite's `mlflow_server` fixture.
    """
    return {"host": kfp_standin.url, "poll_seconds": 0.5, "timeout_seconds": 900.0}


@pytest.fixture
def kfp_faults_reset(kfp_standin: KfpStandin) -> Iterator[KfpStandin]:
    """The stand-in, with its faults cleared after the test (so no other test meets them)."""
    try:
        yield kfp_standin
    finally:
        kfp_standin.faults = Faults()
