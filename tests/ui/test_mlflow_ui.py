"""The MLflow UI on two real pipeline runs, in a real headless browser (Debian's chromium).

Two runs of the churn pipeline on KFP's local runner, differing in max_depth, tracked in a real
`mlflow server` of their own (tests/tracked_runs.py; what a run holds in the server, the compliance
suite checks on every runner's, tests/compliance/test_runners.py); Playwright drives /usr/bin/chromium
(scripts/install-browser.sh installs it; no browser is downloaded). Screenshots land in build/ui/ for a
person to look at.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from mlflow import MlflowClient

from kubesage.tracking.ui_view import runs_url
from tests.conftest import REPO_ROOT
from tests.mlflow_server import MlflowServer
from tests.needs import CHROMIUM, missing_browser, require
from tests.tracked_runs import SAME_WORKER, TrackedRuns

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(3600), SAME_WORKER]  # two real runs
SCREENSHOTS = REPO_ROOT / "build" / "ui"
TIMEOUT_MS = 120_000


@pytest.fixture(scope="module")
def server(tracked_runs: TrackedRuns) -> MlflowServer:
    return tracked_runs.server


@pytest.fixture(scope="module")
def two_runs(tracked_runs: TrackedRuns) -> list[dict[str, Any]]:
    return tracked_runs.results


@pytest.fixture(scope="module")
def page() -> Iterator[Any]:
    require(missing_browser())
    from playwright.sync_api import sync_playwright

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        # Wide: MLflow's grid draws only the columns in view, and its assistant panel takes a third.
        context = browser.new_context(viewport={"width": 1920, "height": 1200})
        tab = context.new_page()
        tab.set_default_timeout(TIMEOUT_MS)
        yield tab
        browser.close()


@pytest.mark.browser
def test_runs_table_shows_the_runner_and_metric_columns(
    server: MlflowServer, two_runs: list[dict[str, Any]], page: Any
) -> None:
    experiment = MlflowClient(tracking_uri=server.url).get_experiment_by_name("customer-churn")
    assert experiment is not None
    page.goto(runs_url(server.url, experiment.experiment_id))
    grid = page.locator(".ag-root")
    grid.get_by_text("kubesage.runner").first.wait_for()
    for run in two_runs:  # the rows come after the headers: both drawn, for the screenshot and the text
        grid.get_by_text(str(run["metrics"]["roc_auc"])[:6]).first.wait_for()
    page.screenshot(path=str(SCREENSHOTS / "runs-table.png"), full_page=True)
    table = grid.inner_text()  # headers and rows (MLflow 3.17's grid has no separate .ag-body)
    for column in ("kubesage.runner", "roc_auc", "accuracy", "max_depth"):
        assert column in table, table
    assert table.count("local") >= 2, table
    for run in two_runs:  # the table shows full precision
        assert str(run["metrics"]["roc_auc"])[:6] in table, table
        assert str(run["metrics"]["accuracy"])[:6] in table, table


@pytest.mark.browser
def test_compare_view_shows_both_runs_metrics_and_roc_plots(
    server: MlflowServer, two_runs: list[dict[str, Any]], page: Any
) -> None:
    experiment = MlflowClient(tracking_uri=server.url).get_experiment_by_name("customer-churn")
    assert experiment is not None
    ids = [run["mlflow_run_id"] for run in two_runs]
    query = f"runs={json.dumps(ids)}&experiments={json.dumps([experiment.experiment_id])}"
    page.goto(f"{server.url}/#/compare-runs?{query}")
    page.get_by_text("roc_auc").first.wait_for()
    # The artifact lists load after the metrics (and say "No common artifacts" until they have): wait
    # for the plot's name. The parent runs' plots sit at their artifact roots, which is all it lists.
    roc_curve = page.get_by_text("roc_curve.png").first
    roc_curve.wait_for()
    text = page.locator("body").inner_text()
    for run in two_runs:  # the compare view rounds to 3 decimals
        assert str(round(run["metrics"]["roc_auc"], 3)) in text, text
    assert "No common artifacts" not in text
    roc_curve.click()
    # The two runs' PNGs, fetched and shown side by side (each also has a hidden preview copy); loaded
    # (decoded), so the screenshot shows them.
    page.wait_for_function(
        "new Set([...document.querySelectorAll(\"img[src^='blob:']\")]"
        ".filter(img => img.complete && img.naturalWidth > 0).map(img => img.src)).size >= 2"
    )
    assert len({img.get_attribute("src") for img in page.locator("img[src^='blob:']").all()}) >= 2
    page.screenshot(path=str(SCREENSHOTS / "compare-runs.png"), full_page=True)
