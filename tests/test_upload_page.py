"""The Upload page through Streamlit's AppTest: photos, a bad file, a faceless photo with its
whole-image fallback, a video, the sample photo, "explain this face" and the CSV download."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from conftest import ROOT
from fer_core.faces import compose_scene, write_video


@pytest.fixture
def app_env(monkeypatch, zoo_root, tmp_path):
    monkeypatch.setenv("FER_CHECKPOINTS", str(zoo_root))
    monkeypatch.setenv("FER_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.delenv("FER2013_DIR", raising=False)


def upload_page() -> AppTest:
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=120)
    at.run()
    at.switch_page("pages/upload.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def bars(at: AppTest) -> list:
    return [c for c in at.get("plotly_chart") if (c.key or "").startswith("bars_")]


def test_upload_photos_shows_boxes_bars_and_messages(app_env, findable_faces):
    at = upload_page()
    assert at.title[0].value == "Upload photos"
    assert at.multiselect(key="upload_models").value == ["alpha", "beta"]
    photo, _ = compose_scene(findable_faces[:3], (720, 480), 130, seed=2)
    blank = Image.new("RGB", (320, 200), (120, 130, 140))
    at.file_uploader(key="uploads").set_value(
        [("party.png", png(photo), "image/png"), ("broken.png", b"not a png", "image/png"),
         ("empty.jpg", b"", "image/jpeg"), ("wall.png", png(blank), "image/png")]
    ).run()  # fmt: skip
    assert not at.exception, [e.value for e in at.exception]
    assert [s.value for s in at.subheader] == ["party.png", "broken.png", "empty.jpg", "wall.png"]
    errors = [e.value for e in at.error]
    assert any("broken.png: not an image" in e for e in errors) and any("empty.jpg: empty file" in e for e in errors)
    assert len(bars(at)) == 3  # a probability chart per face
    assert len([m for m in at.markdown if m.value.startswith("### ")]) == 3  # emoji + label per face
    assert "No face found in wall.png." in [w.value for w in at.warning]
    # photo with boxes + one 48x48 crop per face
    assert len(at.get("image")) == 1 + 3
    explain = [b for b in at.button if (b.key or "").startswith("explain_")]
    assert len(explain) == 3
    assert at.get("download_button")[0].label == "Download results (CSV)"

    at.button(key="whole_3").click().run()  # no face: classify the whole image instead
    assert not at.exception
    assert "no face found: classified the whole image as one face" in [i.value for i in at.info]
    assert len(bars(at)) == 4


def test_explain_this_face_opens_the_explain_page_with_the_face(app_env, findable_faces):
    at = upload_page()
    photo, _ = compose_scene(findable_faces[:1], (400, 300), 150)
    at.multiselect(key="upload_models").set_value(["beta"]).run()
    at.file_uploader(key="uploads").set_value(("me.png", png(photo), "image/png")).run()
    button = at.button(key="explain_0_1")
    if (ROOT / "pages" / "explain.py").is_file():
        button.click().run()
        request = at.session_state["explain_request"]
        assert request["source"] == "me.png, face 1" and request["models"] == ["beta"]
        assert request["face"].shape == (48, 48) and request["face"].dtype == np.uint8
        assert at.title[0].value == "Explain"
        assert at.multiselect(key="explain_models").value == ["beta"]  # the models the face was shown with
    else:
        assert button.disabled and button.help == "The Explain page is not built yet"


def test_video_and_sample_photo(app_env, findable_faces, tmp_path):
    at = upload_page()
    boxes = [[(20 + 5 * t, 40, 96, 96)] for t in range(12)]  # the face drifts right
    frames = [np.asarray(compose_scene(findable_faces[:1], (256, 192), 96, b)[0]) for b in boxes]
    video = write_video(tmp_path / "clip.mp4", frames, fps=10).read_bytes()
    at.number_input(key="upload_every").set_value(3).run()
    at.file_uploader(key="uploads").set_value(("clip.mp4", video, "video/mp4")).run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("4 frames analysed (every 3" in c.value and "1 tracked face" in c.value for c in at.caption)
    assert any((c.key or "").startswith("timeline_") for c in at.get("plotly_chart"))
    at.button(key="sample").click().run()
    assert not at.exception
    assert "sample.png" in [s.value for s in at.subheader] and len(bars(at)) >= 3


def test_no_models_says_so(app_env, monkeypatch, tmp_path):
    monkeypatch.setenv("FER_CHECKPOINTS", str(tmp_path / "empty"))
    at = upload_page()
    assert "No checkpoints to run yet" in at.info[0].value
