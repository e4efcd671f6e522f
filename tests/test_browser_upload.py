"""The Upload page in real Chromium: a person drops a generated group photo and sees the boxes, a row per
face with its crop, label and probability bars, and the CSV button. Screenshots go to ``screenshots/``."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from browser import ROOT, launch, require_browser, running_app, wait_for_app

require_browser()

from playwright.sync_api import sync_playwright  # noqa: E402

from fer_core.faces.report import hex_to_rgb  # noqa: E402

SHOTS = ROOT / "screenshots"


@pytest.fixture(scope="module")
def group_photo(findable_faces, tmp_path_factory):
    """Three mini-FER2013 faces the detector finds, pasted into a 900x560 scene, as a JPEG file."""
    from fer_core.faces import compose_scene

    img, boxes = compose_scene(findable_faces[:3], (900, 560), 160, seed=4)
    path = tmp_path_factory.mktemp("photos") / "group.jpg"
    img.save(path, quality=92)
    return path, boxes


def test_upload_a_photo_and_see_boxes_and_bars(zoo_root, tmp_path_factory, group_photo):
    path, boxes = group_photo
    env = {"FER_CHECKPOINTS": str(zoo_root), "FER_RUNS_DIR": str(tmp_path_factory.mktemp("runs"))}
    SHOTS.mkdir(exist_ok=True)
    with running_app(env) as url, sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page(viewport={"width": 1400, "height": 1800})
        page.goto(f"{url}/upload")
        wait_for_app(page, "Upload photos")
        page.locator("input[type='file']").first.set_input_files(str(path))
        page.get_by_text("group.jpg: 3 faces").first.wait_for(timeout=60_000)  # the boxed photo's caption
        page.wait_for_function("() => document.querySelectorAll('.js-plotly-plot').length >= 3", timeout=60_000)
        wait_for_app(page, "Upload photos")
        assert page.locator("[data-testid='stException']").count() == 0
        # the boxed photo, then a crop per face
        images = page.locator("[data-testid='stImage'] img")
        assert images.count() >= 4
        photo = np.asarray(Image.open(io.BytesIO(images.first.screenshot())).convert("RGB")).astype(int)
        for color in ("#E45756", "#4C78A8", "#54A24B"):  # the three boxes' colours are on the photo as shown
            rgb = np.array(hex_to_rgb(color))
            assert (np.abs(photo - rgb).sum(axis=2) < 40).sum() > 200, color
        assert page.get_by_role("button", name="Explain this face").count() == 3
        assert page.get_by_role("button", name="Download results (CSV)").count() == 1
        # the bars: per face, one trace per model and the ensemble
        traces = page.evaluate("() => [...document.querySelectorAll('.js-plotly-plot')].map(p => p.data.length)")
        assert traces[:3] == [3, 3, 3]
        page.screenshot(path=str(SHOTS / "upload_photo.png"), full_page=True)
        browser.close()
