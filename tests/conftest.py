"""Fixtures shared by every test suite."""

from __future__ import annotations

import gc
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from kubesage.cli.app import collect_garbage_less_often
from tests.mlflow_globals import mlflow_global_uris_restored
from tests.mlflow_server import MlflowServer
from tests.needs import NEEDS_BY_MARKER, require
from tests.schedule import UnitTimes, cached_seconds, longest_first, store_seconds
from tests.servers import fresh_sqlite_store, migrated_sqlite_template, running_mlflow
from tests.tracked_runs import tracked_runs  # noqa: F401  (imported here, not per module: made once a session)

# The KFP API stand-in's fixtures, defined once for every suite: a fixture imported into several
# modules is one fixture per module, and each started its own stand-in and warm executor (up to six a
# session, about 5 s of CPU each); one per worker now serves every suite that submits runs.
pytest_plugins = ["tests.standins.kfp_fixtures"]

REPO_ROOT = Path(__file__).resolve().parents[1]
# The real seed dataset lives beside the repository (../shared/data), never inside it.
CHURN_CSV = REPO_ROOT.parent / "shared" / "data" / "churn.txt"


_session_tmpdir: str | None = None  # the session's temporary folder (pytest_configure), removed at its end

# Suites whose tests read runs shared by the session, and the fixture naming the runner of each.
SHARED_RUN_SUITES = {"compliance": "case", "conformance": "runner_name"}


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook turns the marks into work units
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Work units for `pytest -n 2 --dist loadgroup` (make test): the tests reading one runner's
    shared runs go to one worker, so each run is made once; any other module to one worker, for its
    module-scoped fixtures. A module that reads another suite's shared run names that suite's unit in
    its own `xdist_group` mark (tests/container/test_kfp_docker.py). On a worker the units are then
    ordered longest first by the last run's times (tests/schedule.py), the order xdist hands them out in
    (`--no-loadscope-reorder`, Makefile). Without xdist the marks do nothing and nothing moves."""
    for item in items:
        if item.get_closest_marker("xdist_group") is None:
            item.add_marker(pytest.mark.xdist_group(_work_unit(item)))
    if _is_xdist_worker(config):  # the order a worker collects is the order units are handed out
        longest_first(items, _group_of, cached_seconds(config))


def _is_xdist_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def _group_of(item: pytest.Item) -> str:
    mark = item.get_closest_marker("xdist_group")
    assert mark is not None  # every item has one by now
    return str(mark.args[0] if mark.args else mark.kwargs["name"])


# Each unit's seconds in this run, summed by the controller (tests/schedule.py); none without xdist.
_UNIT_TIMES = UnitTimes()


def _is_xdist_controller(config: pytest.Config) -> bool:
    return config.getoption("dist", "no") == "loadgroup" and not _is_xdist_worker(config)


@pytest.hookimpl
def pytest_configure(config: pytest.Config) -> None:
    """Every process the session starts (workers, kubesage commands, servers, tasks) keeps its temporary
    files in one folder, removed when the session ends: a process a test kills, or KFP's own launch line
    run by the SageMaker shim on this host (a job's container would be thrown away), leaves its files
    there, not in /tmp for good (a hundred folders a `make test-fast` here). pytest's own base
    temporary folder stays where it was, kept for inspection as pytest keeps it."""
    collect_garbage_less_often()  # as the `kubesage` command does: collecting imports 0.96 s a worker, 0.2 s now
    if _is_xdist_worker(config):
        return
    global _session_tmpdir
    tempfile.gettempdir()  # this process's choice made before TMPDIR changes: pytest's folder stays put
    _session_tmpdir = tempfile.mkdtemp(prefix="kubesage-tests-")
    Path(_session_tmpdir).chmod(0o1777)  # as /tmp: a step the shim runs as an unprivileged user writes there too
    os.environ["TMPDIR"] = _session_tmpdir


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    if _session_tmpdir is not None:
        shutil.rmtree(_session_tmpdir, ignore_errors=True)


_module_running: list[str] = [""]  # the test module whose tests run now


@pytest.hookimpl
def pytest_runtest_logstart(nodeid: str, location: tuple[str, int | None, str]) -> None:
    """Between two test modules, take what the session holds out of the cycle collector's reach.

    A worker holds over a million objects once it has imported the test modules and their libraries
    (MLflow, KFP, the SageMaker SDK, moto's clients), and every full collection a test triggered
    scanned them all again: 17 of them took 6.4 s of a 95 s run of the unit tests, 7.5 s in all with
    the younger generations. Collected first, then frozen here, when the last module's fixtures are
    gone and the next one's not made, what is frozen is what the session keeps (imports, session
    fixtures); what a module's tests create is collected as before. The same run: 3.6 s of collections.
    """
    module = nodeid.split("::", 1)[0]
    if module != _module_running[0]:
        _module_running[0] = module
        gc.collect()
        gc.freeze()


@pytest.hookimpl
def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    _UNIT_TIMES.add(report)


@pytest.hookimpl
def pytest_sessionfinish(session: pytest.Session) -> None:
    if _is_xdist_controller(session.config):
        store_seconds(session.config, _UNIT_TIMES)


def _work_unit(item: pytest.Item) -> str:
    suite = Path(item.path).relative_to(REPO_ROOT / "tests").parts[0]
    callspec = getattr(item, "callspec", None)
    runner = callspec.params.get(SHARED_RUN_SUITES[suite]) if suite in SHARED_RUN_SUITES and callspec else None
    return f"{suite}-{runner}" if runner is not None else item.nodeid.split("::", 1)[0]


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """A test marked `container` or `browser` skips with the reason where its needs are missing
    (fails under `make test`, see tests/needs.py), before any of its fixtures start a server."""
    for marker, missing in NEEDS_BY_MARKER.items():
        if item.get_closest_marker(marker) is not None:
            require(missing())


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def churn_csv() -> Path:
    if not CHURN_CSV.is_file():
        pytest.fail(f"the real churn data is expected at {CHURN_CSV} (../shared/data/churn.txt)")
    return CHURN_CSV


_MLFLOW_CREDENTIALS = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN")
_ENV_AT_START = frozenset(os.environ)


@pytest.fixture(autouse=True)
def _mlflow_global_uris_restored() -> Iterator[None]:
    """MLflow's global URIs as they were before the test (tests/mlflow_globals.py; a module-scoped
    fixture that sets them restores them itself: it runs before this snapshot). The same for MLflow
    credentials a test set in os.environ."""
    with mlflow_global_uris_restored():
        yield
    # Credentials a test put in os.environ itself (MLflow's client reads them there on every request):
    # left set, every later test on the worker would send them, and the runners refuse them.
    for name in _MLFLOW_CREDENTIALS:
        if name not in _ENV_AT_START:
            os.environ.pop(name, None)


@pytest.fixture(scope="session")
def churn(churn_csv: Path) -> pd.DataFrame:
    """The real churn data as read by pandas (raw columns, labels as text)."""
    return pd.read_csv(churn_csv)


@pytest.fixture(scope="session")
def mlflow_sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty, migrated MLflow SQLite store, made once per session and copied by `mlflow_sqlite`."""
    return migrated_sqlite_template(tmp_path_factory.mktemp("mlflow-template"))


def _track_into(uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run the test in `tmp_path`, tracking into `uri`, with no pipeline run's hand-off inherited."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    for name in ("KUBESAGE_MLFLOW_PARENT_RUN_ID", "KUBESAGE_MLFLOW_EXPERIMENT_ID", "KUBESAGE_FAILURE_DIR"):
        monkeypatch.delenv(name, raising=False)
    return uri


@pytest.fixture
def mlflow_sqlite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mlflow_sqlite_template: Path) -> str:
    """An empty SQLite MLflow store in a temporary working directory (a copy of the session's template)."""
    return _track_into(fresh_sqlite_store(mlflow_sqlite_template, tmp_path / "mlflow.db"), tmp_path, monkeypatch)


@pytest.fixture
def mlflow_sqlite_unopened(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Like `mlflow_sqlite`, but the store's file does not exist yet: for tests asserting that
    nothing opened (so created) it."""
    return _track_into(f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path, monkeypatch)


@pytest.fixture(scope="session")
def shared_mlflow(tmp_path_factory: pytest.TempPathFactory, mlflow_sqlite_template: Path) -> Iterator[MlflowServer]:
    """One real `mlflow server` for the whole session (starting one took ~27 s on the loaded 2-core
    machine), its store a copy of the migrated template: the compliance and integration suites track
    into it. Their tests assert on the runs and model versions they made, never on the store being empty."""
    yield from running_mlflow(tmp_path_factory.mktemp("shared-mlflow"), mlflow_sqlite_template)


@pytest.fixture(scope="session")
def prepared(churn_csv: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The real churn data through preprocess: train/validation/test CSVs and the feature schema."""
    from kubesage.components.preprocess import preprocess

    out = tmp_path_factory.mktemp("prepared")
    paths = {name: out / f"{name}.csv" for name in ("train", "validation", "test")}
    preprocess(str(churn_csv), dict(paths), out / "feature_schema.json", seed=42, baseline_dir=out / "baseline")
    return {**paths, "schema": out / "feature_schema.json", "dir": out, "baseline": out / "baseline"}


@pytest.fixture(scope="session")
def trained_model(prepared: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model directory (xgboost-model.ubj + feature_schema.json) trained on the real churn data."""
    from kubesage.churn.features import FeatureSchema
    from kubesage.components.train import TrainParams, train_from_csv

    model_dir = tmp_path_factory.mktemp("model")
    train_from_csv(
        prepared["train"], prepared["validation"], TrainParams(), model_dir, FeatureSchema.load(prepared["schema"])
    )
    return model_dir


@pytest.fixture(scope="session")
def model_dir(trained_model: Path) -> Path:
    """The model directory servers load: the suite's trained churn model."""
    return trained_model
