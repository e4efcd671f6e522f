"""The Fine-tune page: in AppTest (launch, refuse bad settings, before/after, user models, My faces saved
on the Upload page, Resume of a killed job) and in real Chromium (launch a 1-epoch job on the mini
FER2013, watch its progress, find the new model in the zoo; save a face on the Upload page and see it
counted here). Screenshots go to ``screenshots/``."""

from __future__ import annotations

import io
import os
import re
import signal
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from browser import ROOT, launch, require_browser, running_app, wait_for_app
from conftest import MINI_FOLDER, isolated_app
from fer_core.jobs import JobRunner, JobSpec, face_counts, save_face
from fer_core.jobs.runner import process_alive

pytestmark = pytest.mark.slow
SHOTS = ROOT / "screenshots"


@pytest.fixture
def env(monkeypatch, tmp_path, zoo_root):
    with isolated_app(monkeypatch, tmp_path, zoo_root) as paths:
        yield paths


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
    small = next(w.value for w in at.warning if w.value.startswith("Only "))  # the mini folder's PublicTest
    assert small.startswith("Only 14 faces are in PublicTest")
    assert "Use the full FER2013 folder (3,589 PublicTest faces)" in small
    assert any("apptest-ft" in m.value for m in at.markdown)  # "Your models" (its tab)
    assert any(s.value == "Your models" for s in at.subheader)
    at.switch_page("pages/zoo.py").run()
    assert "apptest-ft" not in set(at.dataframe[0].value["model"])  # not among the shipped checkpoints...
    assert "apptest-ft" in set(at.dataframe[2].value["model"])  # ...but in the table of the user's own


def test_page_queues_a_second_job(env, monkeypatch):
    monkeypatch.setenv("FER_JOBS_SLOW_BATCH_S", "0.5")
    at = open_finetune()
    at.selectbox(key="ft_batch").select(16).run()
    for name in ("first", "second"):
        at.text_input(key="ft_name").input(name).run()
        at.button(key="ft_launch").click().run()
    assert any("second is queued" in i.value for i in at.info)
    assert at.button(key=f"cancel_{JobRunner().list()[0].id}")  # the running job has a Cancel button


def photo_png(faces: np.ndarray) -> bytes:
    from fer_core.faces import compose_scene

    img, _ = compose_scene(list(faces), (640, 400), 140, seed=5)
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def save_faces(per_class: dict[str, int]) -> None:
    """Distinct faces straight into My faces (what the Upload/Webcam buttons do, many times)."""
    files = iter(sorted(MINI_FOLDER.rglob("*.jpg")))
    for label, n in per_class.items():
        for _ in range(n):
            save_face(np.asarray(Image.open(next(files)).convert("L")), label, source="test")


def test_a_face_saved_on_the_upload_page_is_counted_on_the_finetune_page(env, findable_faces):
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=120)
    at.run()
    at.switch_page("pages/upload.py").run()
    at.file_uploader(key="uploads").set_value(("two.png", photo_png(findable_faces[:2]), "image/png")).run()
    assert not at.exception, [e.value for e in at.exception]
    labels = [b for b in at.selectbox if (b.key or "").startswith("myface_") and b.key.endswith("_label")]
    assert len(labels) == 2 and all(b.value in b.options for b in labels)  # preset to the models' label
    labels[0].set_value("surprise").run()
    at.button(key=labels[0].key.replace("_label", "_save")).click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert "Saved as surprise: 1 surprise face in My faces." in [s.value for s in at.success]
    assert face_counts()["surprise"] == 1
    saved = next((Path(env["FER_JOBS_DIR"]) / "my_faces" / "surprise").glob("*.png"))
    assert Image.open(saved).size == (48, 48)
    at.button(key=labels[0].key.replace("_label", "_save")).click().run()  # twice: still one face
    assert face_counts()["surprise"] == 1
    at.text_input(key="data_dir").input(str(MINI_FOLDER)).run()
    at.switch_page("pages/finetune.py").run()
    at.radio(key="ft_data").set_value("my_faces").run()
    assert not at.exception, [e.value for e in at.exception]
    counts = next(d.value for d in at.dataframe if "expression" in d.value.columns).set_index("expression")
    assert counts.loc["surprise", "faces"] == 1 and counts.loc["surprise", "status"] == "needs 4 more"
    assert any("too few faces in surprise (1): at least 5 per class" in w.value for w in at.warning)
    at.text_input(key="ft_name").input("from-my-faces").run()
    at.button(key="ft_launch").click().run()
    assert any("too few faces in surprise (1)" in e.value for e in at.error)  # refused, with the reason
    uploads = Path(env["FER_JOBS_DIR"]) / "uploads"
    assert JobRunner().list() == [] and not (uploads.exists() and any(uploads.iterdir()))  # no snapshot left


def test_finetune_on_my_captured_faces_from_the_page(env):
    save_faces({"happy": 6, "sad": 5, "angry": 2})
    at = open_finetune()
    at.text_input(key="ft_name").input("bad name!").run()
    at.button(key="ft_launch").click().run()
    assert at.error and not JobRunner().list()
    at.radio(key="ft_data").set_value("my_faces").run()
    assert not at.error  # the launch's message is gone with the choice it was about
    assert any("too few faces in angry (2)" in w.value for w in at.warning)
    at.button(key="mf_delall_angry").click().run()  # "Manage my faces": drop the expression with too few
    assert face_counts()["angry"] == 0 and not at.exception
    assert any("11 faces of 2 expressions: ready to fine-tune." in s.value for s in at.success)
    happy = [b for b in at.button if (b.key or "").startswith("mf_del_happy_")]
    assert len(happy) == 6
    happy[0].click().run()  # one face
    assert face_counts()["happy"] == 5
    at.text_input(key="ft_name").input("faces-ft").run()
    at.slider(key="ft_epochs").set_value(1).run()
    at.selectbox(key="ft_batch").select(16).run()
    at.button(key="ft_launch").click().run()
    assert any("faces-ft started" in s.value for s in at.success), [e.value for e in at.error]
    (job,) = JobRunner().list()
    assert job.spec.data == "my_faces"
    assert Path(job.spec.data_path).parent == Path(env["FER_JOBS_DIR"]) / "uploads"  # a snapshot, not My faces
    assert JobRunner().wait(job.id, timeout=90).state == "finished"
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert any(c.value.startswith("On held-out 20% of your faces (2 faces)") for c in at.caption)
    assert any("Only 2 faces were held out: one face moves the accuracy by 50 points" in w.value for w in at.warning)
    at.switch_page("pages/finetune.py").run()  # "Your models" says what the accuracy was measured on
    assert any("on 2 held-out faces" in m.value for m in at.markdown), [m.value for m in at.markdown]


def test_a_killed_job_is_resumed_from_the_page(env, zoo_root, monkeypatch):
    monkeypatch.setenv("FER_JOBS_SLOW_BATCH_S", "0.3")
    runner = JobRunner()
    base = str(zoo_root / "alpha" / "model.safetensors")
    job = runner.submit(
        JobSpec(name="killed", base=base, epochs=2, batch_size=4, threads=1, data_path=str(MINI_FOLDER))
    )
    deadline = time.time() + 60
    while len(runner.get(job.id).progress.get("history", [])) < 1 and time.time() < deadline:
        time.sleep(0.1)
    job = runner.get(job.id)
    os.killpg(job.pid, signal.SIGKILL)
    while process_alive(job.pid, job.pid_start):
        time.sleep(0.1)
    monkeypatch.delenv("FER_JOBS_SLOW_BATCH_S")
    at = open_finetune()
    assert any(c.value.startswith("**killed** failed: the job's process ended") for c in at.caption)
    button = at.button(key=f"retry_{job.id}")
    assert button.label == "Resume"
    button.click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("killed resumes from its last finished epoch" in m.value for m in [*at.success, *at.info])
    job = JobRunner().wait(job.id, timeout=90)
    assert job.state == "finished" and job.retries == 1
    assert "resuming from resume.pt: 1 of 2 epochs already done" in job.log_tail(60)


@pytest.mark.browser
def test_finetune_in_the_browser(env):
    require_browser(module=False)
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(exist_ok=True)
    app_env = {**env, "FER2013_DIR": str(MINI_FOLDER), "FER_JOBS_SLOW_BATCH_S": "6"}
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
        # live progress from the job process, through the fragment (6 s per batch, refreshed every 1.5 s)
        progress.wait_for(timeout=60_000)
        assert "epoch 1/1" in progress.inner_text()
        page.screenshot(path=str(SHOTS / "finetune_progress.png"))
        # the live loss/accuracy curves of the batches so far
        chart = page.locator("[data-testid='stPlotlyChart'] .js-plotly-plot").first
        chart.wait_for(timeout=30_000)
        assert page.get_by_text("browser-ft: ").first.is_visible()  # drawn while the job still runs
        chart.scroll_into_view_if_needed()
        page.screenshot(path=str(SHOTS / "finetune_live_curves.png"))
        page.get_by_text("Before / after: browser-ft").wait_for(timeout=90_000)
        wait_for_app(page, "Fine-tune", settle_ms=2000)
        assert page.locator("[data-testid='stException']").count() == 0
        page.get_by_text("Base model accuracy").scroll_into_view_if_needed()
        page.screenshot(path=str(SHOTS / "finetune_done.png"))
        # "Your models": the page's full rerun when the job ended lists the new model, heading and all.
        # The live jobs panel is the page's last element, so nothing drawn after it can go missing
        main = "document.querySelector(\"[data-testid='stMain'] [data-testid='stVerticalBlock']\")"
        assert "Before / after: browser-ft" in page.evaluate(f"() => {main}.lastElementChild.innerText")
        page.get_by_role("tab", name="Your models").click()
        page.get_by_role("heading", name="Your models").wait_for(timeout=10_000)
        page.get_by_text("browser-ft (vggnet").wait_for(timeout=30_000)
        assert page.get_by_text("browser-ft (vggnet").count() == 1
        page.get_by_role("heading", name="Your models").scroll_into_view_if_needed()
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
