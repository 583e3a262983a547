"""The drift report in a real headless browser (Debian's chromium through Playwright, as the MLflow UI
test): the page renders offline, the drifted feature's card stands out, every feature has its plot.
The screenshot lands in build/ui/drift-report.png; the README's copy is docs/site/img/drift-report.png.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from kubesage.churn.features import FeatureSchema
from kubesage.monitoring.drift import DriftRequest, DriftResult, run_drift
from tests.conftest import REPO_ROOT
from tests.monitoring_data import held_out_rows, model_baseline, write_captures
from tests.needs import CHROMIUM, missing_browser, require

pytestmark = [pytest.mark.browser]
SCREENSHOT = REPO_ROOT / "build" / "ui" / "drift-report.png"


@pytest.fixture(scope="module")
def shifted_report(
    churn: pd.DataFrame, prepared: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> DriftResult:
    work = tmp_path_factory.mktemp("drift-report")
    baseline = model_baseline(prepared, work / "baseline")
    rows = held_out_rows(churn)
    shifted = rows.assign(**{"Day Mins": rows["Day Mins"] + rows["Day Mins"].std()})
    captures = write_captures(shifted, work / "captures", FeatureSchema.load(baseline), ("JSON", "CSV", "BASE64"))
    return run_drift(DriftRequest(str(captures), baseline, work / "out"))


@pytest.fixture(scope="module")
def page() -> Iterator[Any]:
    require(missing_browser())
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        context = browser.new_context(viewport={"width": 1280, "height": 900}, offline=True)  # nothing fetched
        yield context.new_page()
        browser.close()


def test_the_report_shows_the_drifted_feature_and_every_plot(shifted_report: DriftResult, page: Any) -> None:
    page.goto(shifted_report.report.as_uri())
    cards = page.locator(".card")
    assert cards.count() == 19 and page.locator(".card svg").count() == 19
    drifted = page.locator(".card.drifted")
    assert drifted.count() == 1 and drifted.get_attribute("data-feature") == "Day Mins"
    # The drifted card is drawn in red, and its plot holds both series' bars.
    assert drifted.evaluate("e => getComputedStyle(e).borderTopColor") == "rgb(192, 57, 43)"
    assert drifted.locator("rect").count() == 20
    assert "baseline_drift_check" in page.locator("table").first.inner_text()
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=False)
    assert SCREENSHOT.stat().st_size > 10_000
