"""My faces in real Chromium, as a person collects fine-tuning data: drop a photo on the Upload page, label
one of its faces and save it, then find it counted (and shown) on the Fine-tune page under "My captured
faces". Screenshots go to ``screenshots/``."""

from __future__ import annotations

import pytest

from browser import ROOT, launch, require_browser, running_app, wait_for_app
from conftest import MINI_FOLDER

require_browser()

from playwright.sync_api import sync_playwright  # noqa: E402

SHOTS = ROOT / "screenshots"


@pytest.fixture(scope="module")
def two_faces_photo(findable_faces, tmp_path_factory):
    """Two mini-FER2013 faces the detector finds, pasted into a 900x520 scene, as a JPEG file."""
    from fer_core.faces import compose_scene

    img, _ = compose_scene(list(findable_faces[:2]), (900, 520), 170, seed=7)
    path = tmp_path_factory.mktemp("photos") / "two.jpg"
    img.save(path, quality=92)
    return path


def test_save_a_face_on_upload_and_see_it_counted_on_finetune(zoo_root, tmp_path, two_faces_photo):
    jobs = tmp_path / "jobs"
    env = {
        "FER_CHECKPOINTS": str(zoo_root),
        "FER_JOBS_DIR": str(jobs),
        "FER_USER_MODELS": str(tmp_path / "user_models"),
        "FER_RUNS_DIR": str(tmp_path / "runs"),
        "FER2013_DIR": str(MINI_FOLDER),
        "OMP_NUM_THREADS": "1",
    }
    SHOTS.mkdir(exist_ok=True)
    with running_app(env) as url, sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page(viewport={"width": 1400, "height": 1400})
        page.goto(f"{url}/upload")
        wait_for_app(page, "Upload photos")
        page.locator("input[type='file']").first.set_input_files(str(two_faces_photo))
        page.get_by_text("two.jpg: 2 faces").first.wait_for(timeout=60_000)
        wait_for_app(page, "Upload photos")
        pickers = page.locator("[data-testid='stSelectbox']").filter(has_text="Expression (for My faces)")
        assert pickers.count() == 2  # one per face, preset to the models' label
        pickers.first.click()
        page.get_by_role("option", name="surprise", exact=True).click()
        wait_for_app(page, "Upload photos")
        page.get_by_role("button", name="Save to My faces").first.click()
        saved = page.get_by_text("Saved as surprise: 1 surprise face in My faces.")
        saved.wait_for(timeout=30_000)
        assert page.locator("[data-testid='stException']").count() == 0
        saved.scroll_into_view_if_needed()
        page.screenshot(path=str(SHOTS / "upload_save_to_my_faces.png"))
        assert len(list((jobs / "my_faces" / "surprise").glob("*.png"))) == 1  # on disk, where the jobs live

        page.goto(f"{url}/finetune")
        wait_for_app(page, "Fine-tune")
        page.get_by_text("My captured faces (saved on the Upload and Webcam pages)").click()
        page.get_by_text("too few faces in surprise (1): at least 5 per class").wait_for(timeout=30_000)
        wait_for_app(page, "Fine-tune", settle_ms=1500)
        page.get_by_text("Manage my faces").click()
        page.get_by_test_id("stExpanderDetails").get_by_text("surprise (1)").wait_for(timeout=10_000)
        gallery = page.locator("[data-testid='stExpander'] [data-testid='stImage'] img")
        assert gallery.count() == 1
        page.wait_for_function(
            "() => [...document.querySelectorAll(\"[data-testid='stExpander'] [data-testid='stImage'] img\")]"
            ".every(i => i.complete && i.naturalWidth === 48)",  # the saved 48x48 crop itself
            timeout=10_000,
        )
        assert page.get_by_role("button", name="Delete all surprise faces").count() == 1
        assert page.locator("[data-testid='stException']").count() == 0
        page.get_by_text("Manage my faces").scroll_into_view_if_needed()
        page.wait_for_timeout(500)  # the expander's opening animation
        page.screenshot(path=str(SHOTS / "finetune_my_faces.png"))
        # the counts table says the same (the grid's cells are in its accessibility tree)
        table = page.locator("[data-testid='stDataFrame']").first
        table.get_by_text("needs 4 more").wait_for(state="attached", timeout=10_000)
        browser.close()
