"""The Robustness page: in AppTest (reports side by side, a model without one and its Compute button, the
corruption gallery, calibrated probabilities, another dataset evaluated as a background job) and in real
Chromium on the shipped checkpoints. Screenshots go to ``screenshots/``."""

from __future__ import annotations

import re
import shutil

import pytest
from streamlit.testing.v1 import AppTest

from browser import ROOT, launch, require_browser, running_app, wait_for_app
from conftest import FIXTURES, MINI_FOLDER, isolated_app
from fer_core.eval.robustness import compute_and_store, load_robustness
from fer_core.jobs import JobRunner

SHOTS = ROOT / "screenshots"


@pytest.fixture
def env(monkeypatch, tmp_path, zoo_root, mini_splits):
    """A zoo where alpha has a robustness report and beta has none; isolated jobs folder."""
    root = tmp_path / "checkpoints"
    shutil.copytree(zoo_root, root)
    compute_and_store(root / "alpha" / "model.safetensors", mini_splits, batch_size=16)
    with isolated_app(monkeypatch, tmp_path, root):
        yield root


def open_page(data_dir: str | None = None) -> AppTest:
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=120)
    at.run()
    if data_dir is not None:
        at.text_input(key="data_dir").input(data_dir).run()
    at.switch_page("pages/robustness.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def chart_keys(at: AppTest) -> list[str]:
    return [c.key or "" for c in at.get("plotly_chart")]


def gallery_text(at: AppTest) -> str:
    return " ".join(c.value for c in at.caption if re.search(r"[✓✗] .*%", c.value))


def test_report_side_by_side_and_a_model_without_one(env):
    at = open_page()
    assert at.title[0].value == "Robustness"
    assert at.multiselect(key="rb_models").value == ["alpha"]  # the models with a report
    keys = chart_keys(at)
    assert "rb_reliability_alpha" in keys and "rb_heatmap" in keys and "rb_curves" in keys
    summary = at.dataframe[0].value  # the headline numbers, a row per model
    stored = load_robustness(env / "alpha")
    assert summary.loc["alpha", "temperature"] == pytest.approx(stored["calibration"]["temperature"])
    assert "✓ alpha" in gallery_text(at) or "✗ alpha" in gallery_text(at)
    at.multiselect(key="rb_models").set_value(["alpha", "beta"]).run()
    assert not at.exception
    assert any("**beta** has no robustness report yet" in i.value for i in at.info)
    button = at.button(key="rb_compute_beta")
    assert button.disabled  # no FER2013 in the sidebar: nothing to compute it on
    assert "beta" in gallery_text(at)  # the gallery runs every chosen model, report or not


def test_a_report_for_re_shipped_weights_is_called_stale(env):
    """alpha re-shipped with other tensors beside its old report: the page says so, offers to recompute it,
    and calibrated probabilities stop using its temperature."""
    import torch

    from fer_core.checkpoint import load_checkpoint, save_checkpoint

    weights = env / "alpha" / "model.safetensors"
    model, meta = load_checkpoint(weights)
    with torch.no_grad():
        next(model.parameters()).mul_(1.5)
    save_checkpoint(model, weights, meta)
    at = open_page()
    assert any("**alpha** has a robustness report made for other weights" in w.value for w in at.warning)
    assert at.button(key="rb_compute_alpha")
    assert any("alpha: this report was made for other weights" in c.value for c in at.caption)


def test_compute_button_runs_a_job_and_the_report_appears(env):
    at = open_page(str(MINI_FOLDER))
    at.multiselect(key="rb_models").set_value(["beta"]).run()
    at.button(key="rb_compute_beta").click().run()
    assert any("robustness-beta" in s.value for s in at.success), [e.value for e in at.error]
    runner = JobRunner()
    (job,) = runner.list()
    assert runner.wait(job.id, timeout=240).state == "finished", runner.get(job.id).log_tail()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert "rb_reliability_beta" in chart_keys(at)
    assert not any("has no robustness report" in i.value for i in at.info)


def test_calibrated_probabilities_change_the_gallery(env):
    at = open_page()
    at.slider(key="rb_severity").set_value(1).run()
    plain = gallery_text(at)
    at.toggle(key="calibrated").set_value(True).run()
    assert not at.exception
    assert gallery_text(at) != plain  # the stored temperature rescales every probability
    assert [line.split(":")[1].split()[0] for line in plain.split("alpha")[1:]] == [
        line.split(":")[1].split()[0] for line in gallery_text(at).split("alpha")[1:]
    ]  # the same predicted classes


def test_another_dataset_as_a_background_job(env):
    at = open_page()
    at.text_input(key="rb_folder").input(str(FIXTURES / "crossdata_mini"))
    at.multiselect(key="rb_cross_models").set_value(["alpha"])
    at.button[-1].click().run()  # the form's submit button
    assert not at.exception and any("crossdata-crossdata_mini-alpha" in s.value for s in at.success)
    runner = JobRunner()
    (job,) = runner.list()
    assert runner.wait(job.id, timeout=120).state == "finished", runner.get(job.id).log_tail()
    at.run()
    table = next(d.value for d in at.dataframe if "classes left out" in d.value)
    row = table[table["dataset"] == "crossdata_mini"].iloc[0]
    assert row["classes left out"] == "disgust" and row["faces"] == 14
    assert any("has no disgust faces" in c.value for c in at.caption)
    assert any("no face found in 1 photos" in c.value for c in at.caption)


def test_a_wrong_dataset_folder_is_said_beside_the_form_once(env):
    at = open_page()
    at.text_input(key="rb_folder").input("/nonexistent/jaffe")
    at.button[-1].click().run()  # the form's submit button
    assert not at.exception
    order = [type(e).__name__ + ":" + str(getattr(e, "key", None) or getattr(e, "value", "")) for e in at.main]
    submit = next(i for i, e in enumerate(order) if e.startswith("Button:FormSubmitter:rb_cross_form"))
    assert order[submit + 1] == "Error:dataset folder '/nonexistent/jaffe' does not exist"  # right under the form
    at.slider(key="rb_severity").set_value(2).run()  # the next interaction clears it
    assert not at.error


def test_cancelling_a_job_is_said_under_the_jobs(env):
    from fer_core.jobs import JobSpec

    runner = JobRunner()  # a first job, so the page's one waits in the queue
    alpha = str(env / "alpha" / "model.safetensors")
    runner.submit(JobSpec(name="first", kind="robustness", base=alpha, data_path=str(MINI_FOLDER), register=False))
    at = open_page(str(MINI_FOLDER))
    at.multiselect(key="rb_models").set_value(["beta"]).run()
    at.button(key="rb_compute_beta").click().run()
    job = next(j for j in runner.list() if j.spec.name == "robustness-beta")
    at.button(key=f"rb_cancel_{job.id}").click().run()
    assert not at.exception, [e.value for e in at.exception]
    order = [type(e).__name__ + ":" + str(getattr(e, "value", "")) for e in at.main]
    jobs = order.index("Subheader:Evaluation jobs")
    (said,) = [i for i, e in enumerate(order) if e == "Warning:robustness-beta: cancelled."]
    assert said > jobs  # beside the job, not 3,000 px above it
    at.slider(key="rb_severity").set_value(2).run()
    assert not any("cancelled" in w.value for w in at.warning)  # said once


def test_page_without_any_report(env):
    (env / "alpha" / "robustness.json").unlink()
    at = open_page()
    assert any("None of the chosen models has a robustness report" in i.value for i in at.info)
    assert not at.exception


# ---- real Chromium ---------------------------------------------------------------------------------------------
@pytest.mark.browser
@pytest.mark.slow
def test_page_in_the_browser_on_the_shipped_checkpoints(tmp_path):
    require_browser(module=False)
    from playwright.sync_api import sync_playwright

    from fer_core.zoo import list_checkpoints

    shipped = [e.name for e in list_checkpoints() if e.ok and (e.folder / "robustness.json").is_file()]
    if not shipped:
        pytest.skip("no shipped robustness report")
    SHOTS.mkdir(exist_ok=True)
    env = {"FER_JOBS_DIR": str(tmp_path / "jobs"), "FER_USER_MODELS": str(tmp_path / "user_models")}
    with running_app(env | {"FER2013_DIR": ""}) as url, sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{url}/robustness")
        wait_for_app(page, "Robustness")
        errors = page.locator("[data-testid='stException']")
        assert errors.count() == 0, errors.first.inner_text()
        chosen = shipped[:4]
        # a reliability diagram per model, the heat map, the severity curves
        page.wait_for_function(
            "(n) => document.querySelectorAll('.js-plotly-plot .main-svg').length >= n", arg=len(chosen) + 2
        )
        for name in chosen:  # its reliability diagram's title (plotly draws titles after the svg exists)
            page.locator(".gtitle", has_text=name).first.wait_for(timeout=30_000)
        page.screenshot(path=str(SHOTS / "robustness.png"))  # the app scrolls inside: one shot per section
        page.get_by_role("heading", name="Corruptions").evaluate("e => e.scrollIntoView({block: 'start'})")
        page.wait_for_timeout(300)
        page.screenshot(path=str(SHOTS / "robustness_corruptions.png"))
        gallery = page.get_by_text("One face under every corruption")
        gallery.evaluate("e => e.scrollIntoView({block: 'start'})")
        captions = page.locator("[data-testid='stCaptionContainer']").filter(has_text=re.compile("[✓✗] .*%"))
        captions.nth(10).wait_for(timeout=60_000)  # the gallery's 11 captions (clean + 10 corruptions) are drawn
        before = captions.all_inner_texts()
        assert len(before) == 11 and all(name in before[0] for name in chosen)
        page.screenshot(path=str(SHOTS / "robustness_gallery.png"))
        page.get_by_test_id("stSidebarUserContent").get_by_text(
            "Calibrated probabilities"
        ).click()  # the toggle: every probability rescaled
        page.wait_for_function(
            "(old) => { const c = [...document.querySelectorAll(\"[data-testid='stCaptionContainer']\")]"
            ".map(e => e.innerText).filter(t => /[✓✗] .*%/.test(t));"
            " return c.length === 11 && c.join('|') !== old; }",
            arg="|".join(before),
            timeout=60_000,
        )
        gallery.evaluate("e => e.scrollIntoView({block: 'start'})")
        page.screenshot(path=str(SHOTS / "robustness_gallery_calibrated.png"))
        browser.close()


@pytest.mark.parametrize("page", ["pages/compare.py", "pages/explain.py", "pages/upload.py", "pages/zoo.py"])
def test_calibrated_toggle_on_every_page(env, page):
    at = open_page()
    at.toggle(key="calibrated").set_value(True).run()
    at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.toggle(key="calibrated").value  # the choice follows the user from page to page
