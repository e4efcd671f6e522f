"""The dashboard in real Chromium, as a person uses it: every page, a click on a confusion-matrix cell,
the ensemble builder. Screenshots go to ``screenshots/`` (ignored by git) for a human to look at."""

from __future__ import annotations

import json
import re

import pytest

from browser import ROOT, launch, require_browser, running_app, wait_for_app
from conftest import MINI_FOLDER

require_browser()

from playwright.sync_api import sync_playwright  # noqa: E402

SHOTS = ROOT / "screenshots"
PAGES = {"": "FER Explorer", "dataset": "Dataset", "compare": "Compare models", "training": "Training runs"}


@pytest.fixture(scope="module")
def page_at(zoo_root, tmp_path_factory):
    """A browser page and the app's URL, with the tiny fixture zoo and the mini FER2013."""
    env = {
        "FER_CHECKPOINTS": str(zoo_root),
        "FER2013_DIR": str(MINI_FOLDER),
        "FER_RUNS_DIR": str(tmp_path_factory.mktemp("runs")),
    }
    SHOTS.mkdir(exist_ok=True)
    with running_app(env) as url, sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        yield page, url
        browser.close()


def no_exception(page) -> None:  # noqa: ANN001
    errors = page.locator("[data-testid='stException']")
    assert errors.count() == 0, errors.first.inner_text()


@pytest.mark.parametrize("path", list(PAGES))
def test_every_page_in_the_browser(page_at, path):
    page, url = page_at
    page.goto(f"{url}/{path}")
    wait_for_app(page, PAGES[path])
    no_exception(page)
    assert page.get_by_text("FER2013 from").count() >= 1  # the sidebar found the dataset
    page.screenshot(path=str(SHOTS / f"page_{path or 'zoo'}.png"))


def _click_cell(page, chart_index: int, row: int, col: int) -> None:  # noqa: ANN001
    plot = page.locator(".js-plotly-plot").nth(chart_index)
    plot.scroll_into_view_if_needed()
    box = plot.locator(".nsewdrag").first.bounding_box()
    page.mouse.click(box["x"] + (col + 0.5) * box["width"] / 7, box["y"] + (row + 0.5) * box["height"] / 7)


def test_click_a_confusion_matrix_cell_shows_its_faces(page_at, zoo_root):
    page, url = page_at
    page.goto(f"{url}/compare")
    wait_for_app(page, "Compare models")
    report = json.loads((zoo_root / "alpha" / "report.json").read_text())
    cm = report["splits"]["PrivateTest"]["none"]["confusion_matrix"]
    row, col = max(((r, c) for r in range(7) for c in range(7)), key=lambda rc: cm[rc[0]][rc[1]])
    classes = report["splits"]["PrivateTest"]["none"]["per_class"]
    true, pred = list(classes)[row], list(classes)[col]
    _click_cell(page, 0, row, col)
    heading = page.get_by_text(f"alpha: true {true}, predicted {pred}")
    heading.wait_for(timeout=30_000)
    assert f"{cm[row][col]} faces" in heading.locator("..").inner_text()
    gallery = page.locator("[data-testid='stImage']")
    assert gallery.count() >= min(cm[row][col], 1)
    heading.scroll_into_view_if_needed()
    page.screenshot(path=str(SHOTS / "compare_cell_click.png"))


def test_ensemble_builder_updates_its_accuracy(page_at, zoo_root):
    page, url = page_at
    page.goto(f"{url}/compare")
    wait_for_app(page, "Compare models")
    metric = page.locator("[data-testid='stMetricValue']").first
    metric.scroll_into_view_if_needed()
    both = metric.inner_text()
    slider = page.get_by_role("slider").last  # the weight of beta, the last member
    slider.focus()
    slider.press("Home")  # weight 0: the ensemble is alpha alone
    alpha = json.loads((zoo_root / "alpha" / "report.json").read_text())["splits"]["PrivateTest"]["none"]["accuracy"]
    expected = f"{alpha:.2%}"
    page.wait_for_function(
        "(want) => [...document.querySelectorAll(\"[data-testid='stMetricValue']\")].some(e => e.innerText === want)",
        arg=expected,
        timeout=30_000,
    )
    assert re.match(r"\d+\.\d\d%", both) and both != expected  # the displayed accuracy really changed
    page.screenshot(path=str(SHOTS / "compare_ensemble.png"))
