"""The Fine-tune page: in AppTest (launch, refuse bad settings, before/after, user models) and in real
Chromium (launch a 1-epoch job on the mini FER2013, watch its progress, find the new model in the zoo).
Screenshots go to ``screenshots/``."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from browser import ROOT, browser_available, launch, running_app, wait_for_app
from conftest import MINI_FOLDER
from fer_core.jobs import JobRunner

pytestmark = pytest.mark.slow
SHOTS = ROOT / "screenshots"


@pytest.fixture
def env(monkeypatch, tmp_path, zoo_root):
    paths = {
        "FER_CHECKPOINTS": str(zoo_root),
        "FER_JOBS_DIR": str(tmp_path / "jobs"),
        "FER_USER_MODELS": str(tmp_path / "user_models"),
        "FER_RUNS_DIR": str(tmp_path / "runs"),
        "OMP_NUM_THREADS": "1",
    }
    for k, v in paths.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("FER2013_DIR", raising=False)
    monkeypatch.delenv("FER_JOBS_SLOW_BATCH_S", raising=False)
    yield paths
    runner = JobRunner(paths["FER_JOBS_DIR"])
    for job in runner.list():
        if job.state in ("queued", "starting", "running"):
            runner.cancel(job.id, grace_s=3)


def open_finetune() -> AppTest:
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=120)
    at.run()
    at.text_input(key="data_dir").input(str(MINI_FOLDER)).run()
    at.switch_page("pages/finetune.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_page_launches_a_job_and_shows_before_after(env):
    at = open_finetune()
    assert at.title[0].value == "Fine-tune"
    assert "alpha (shipped)" in at.selectbox(key="ft_base").options
    at.text_input(key="ft_name").input("../bad").run()
    at.button(key="ft_launch").click().run()
    assert any("name" in e.value for e in at.error)
    at.text_input(key="ft_name").input("apptest-ft").run()
    at.slider(key="ft_epochs").set_value(1).run()
    at.selectbox(key="ft_batch").select(16).run()
    at.button(key="ft_launch").click().run()
    assert any("apptest-ft started" in s.value for s in at.success), [e.value for e in at.error]
    runner = JobRunner()
    (job,) = runner.list()
    assert runner.wait(job.id, timeout=90).state == "finished"
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert any(s.value.startswith("Before / after: apptest-ft") for s in at.subheader)
    assert [m.label for m in at.metric] == ["Base model accuracy", "Fine-tuned accuracy"]
    assert any("apptest-ft" in m.value for m in at.markdown)  # "Your models"
    at.switch_page("pages/zoo.py").run()
    assert "apptest-ft" in set(at.dataframe[0].value["model"])


def test_page_queues_a_second_job(env, monkeypatch):
    monkeypatch.setenv("FER_JOBS_SLOW_BATCH_S", "0.5")
    at = open_finetune()
    at.selectbox(key="ft_batch").select(16).run()
    for name in ("first", "second"):
        at.text_input(key="ft_name").input(name).run()
        at.button(key="ft_launch").click().run()
    assert any("second is queued" in i.value for i in at.info)
    assert at.button(key=f"cancel_{JobRunner().list()[0].id}")  # the running job has a Cancel button


pytestmark_browser = pytest.mark.skipif(not browser_available(), reason="Chromium or Playwright missing")


@pytestmark_browser
@pytest.mark.browser
def test_finetune_in_the_browser(env):
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(exist_ok=True)
    app_env = {**env, "FER2013_DIR": str(MINI_FOLDER), "FER_JOBS_SLOW_BATCH_S": "2.5"}
    with running_app(app_env) as url, sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        page.goto(f"{url}/finetune")
        wait_for_app(page, "Fine-tune")
        page.get_by_label("Name of the new model").fill("browser-ft")
        page.get_by_label("Name of the new model").press("Enter")
        slider = page.get_by_role("slider").first  # Epochs
        slider.focus()
        slider.press("Home")  # 1 epoch
        page.locator("[data-testid='stSelectbox']").filter(has_text="Batch size").first.click()
        page.get_by_role("option", name="16", exact=True).click()
        page.wait_for_timeout(500)
        page.get_by_role("button", name="Launch").click()
        progress = page.locator("[data-testid='stProgress']").filter(has_text=re.compile(r"batch [12]/2"))
        # live progress from the job process, through the fragment (2.5 s per batch, refreshed every 1.5 s)
        progress.wait_for(timeout=60_000)
        assert "epoch 1/1" in progress.inner_text()
        page.screenshot(path=str(SHOTS / "finetune_progress.png"))
        page.get_by_text("Before / after: browser-ft").wait_for(timeout=90_000)
        # "Your models", from the zoo listing (the fragment's next refresh picks the new model up)
        page.get_by_text("browser-ft (vggnet").wait_for(timeout=30_000)
        assert page.locator("[data-testid='stException']").count() == 0
        assert page.get_by_text("browser-ft (vggnet").count() == 1
        page.get_by_text("Base model accuracy").scroll_into_view_if_needed()
        page.screenshot(path=str(SHOTS / "finetune_done.png"))
        page.get_by_text("browser-ft (vggnet").scroll_into_view_if_needed()
        page.screenshot(path=str(SHOTS / "finetune_user_models.png"))
        page.goto(url)
        wait_for_app(page, settle_ms=2000)
        assert page.locator("[data-testid='stDataFrame']").get_by_text("browser-ft").count() >= 1
        page.screenshot(path=str(SHOTS / "zoo_with_user_model.png"))
        page.goto(f"{url}/training")
        wait_for_app(page, "Training runs", settle_ms=1500)
        page.screenshot(path=str(SHOTS / "training_with_job_run.png"))
        browser.close()
    (job,) = JobRunner(env["FER_JOBS_DIR"]).list()
    assert job.state == "finished" and job.result["model"] == "browser-ft"


def test_training_page_draws_settings_vs_accuracy(env):
    """Two runs (as a sweep leaves them) give the parallel-coordinates view on the Training runs page."""
    import json

    from fer_core.train.loop import LOG_FIELDS

    for opt, acc in (("adamw", 0.4), ("sgd", 0.5)):
        run = Path(env["FER_RUNS_DIR"]) / f"sweep-{opt}"
        run.mkdir(parents=True)
        cfg = {"model": "vggnet", "optimizer": opt, "lr": 0.01, "schedule": "cosine", "batch_size": 64, "epochs": 1}
        (run / "config.json").write_text(json.dumps(cfg))
        (run / "log.csv").write_text(",".join(LOG_FIELDS) + f"\n1,1.9,0.3,1.8,{acc},0.01,1.0,100\n")
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=60)
    at.run()
    at.switch_page("pages/training.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert any(s.value == "Settings vs accuracy" for s in at.subheader)
    (fig,) = [c for c in at.get("plotly_chart") if "parcoords" in c.proto.spec]
    assert json.loads(fig.proto.spec)["data"][0]["type"] == "parcoords"
