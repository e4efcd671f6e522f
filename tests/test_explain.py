"""Explanations: every method on every model, a toy model whose evidence we know, faithfulness on a
trained checkpoint, rendering, and the Explain page (AppTest and real Chromium)."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
import torch.nn as nn

from conftest import MINI_FOLDER, ROOT
from fer_core.checkpoint import load_checkpoint
from fer_core.data import CLASSES
from fer_core.demo import load_demo
from fer_core.explain import (
    METHODS,
    class_atlas,
    deletion_score,
    explain_face,
    explainable,
    feature_maps,
    model_input,
    own_attention,
)
from fer_core.explain.attribution import attribute
from fer_core.explain.render import attention_image, face_pixels, mosaic, overlay
from fer_core.models import FERModel, InputConfig, create_model, list_models
from fer_core.zoo import list_checkpoints

FAST = {"ig_steps": 4, "smoothgrad_samples": 2, "occlusion_window": 16}


@pytest.mark.parametrize("name", [m for m in list_models() if not m.startswith("lobo_net_2conv")])
def test_every_method_gives_a_finite_map_of_the_input_shape(name, mini_splits):
    torch.manual_seed(0)
    model = explainable(create_model(name))
    x = model_input(model, mini_splits["PrivateTest"].images[0])
    for method in METHODS:
        a = attribute(model, x, target=3, method=method, **FAST)
        assert a.shape == x.shape[-2:], method
        assert torch.isfinite(a).all(), method


class TopLeft(FERModel):
    """A toy model that only looks at the top-left quadrant of the face."""

    default_cfg = InputConfig(input_size=48, crop=1.0)

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 24 * 24, 7)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.conv(x))[..., :24, :24].flatten(1))


@pytest.mark.parametrize("method", ["saliency", "integrated_gradients", "smoothgrad", "occlusion", "guided_backprop"])
def test_attribution_mass_sits_where_the_model_looks(method, mini_splits):
    torch.manual_seed(0)
    model = explainable(TopLeft())
    x = model_input(model, mini_splits["Training"].images[5])
    a = attribute(model, x, target=2, method=method, ig_steps=16, smoothgrad_samples=4).abs()
    # 3x3 convolutions see one pixel past the quadrant's edge; an 8x8 occlusion patch touching that
    # pixel spreads its score over the whole patch, up to 8 pixels further
    edge = 32 if method == "occlusion" else 26
    inside = a[:edge, :edge].sum()
    assert inside / a.sum() > 0.98


def test_deletion_is_faithful_for_a_faithful_map(mini_splits):
    torch.manual_seed(0)
    model = explainable(TopLeft())
    x = model_input(model, mini_splits["Training"].images[5])
    target = int(model(x).argmax())
    good = attribute(model, x, target, "occlusion")
    d = deletion_score(model, x, good, target)
    assert len(d.curve) == 21 and d.fractions[-1] == 1.0
    reverse = deletion_score(model, x, -good, target)  # least important first: the worst possible order
    assert d.auc < reverse.auc


@pytest.fixture(scope="module")
def trained():
    shipped = {e.name: e for e in list_checkpoints() if e.ok}
    if "vggnet" not in shipped:
        pytest.skip("no trained vggnet checkpoint shipped")
    return explainable(load_checkpoint(shipped["vggnet"].weights)[0])


def test_gradcam_beats_the_random_baseline_on_a_trained_model(trained):
    demo = load_demo()
    ratios = []
    for i in range(0, len(demo), 15):
        x = model_input(trained, demo.images[i])
        target = int(demo.labels[i])
        if int(trained(x).argmax()) != target:
            continue
        d = deletion_score(trained, x, attribute(trained, x, target, "gradcam"), target)
        ratios.append(d.auc / d.random_auc)
    assert len(ratios) >= 5
    assert float(np.mean(ratios)) < 1.0


def test_explain_face_and_targets(mini_splits):
    model = explainable(create_model("vggnet", widths=(8, 16, 16, 16), fc=32))
    face = mini_splits["PrivateTest"].images[0]
    ex = explain_face(model, face, ["saliency", "gradcam"], target="true", true_label=4, **{"ig_steps": 4})
    assert ex.target == 4 and set(ex.maps) == set(ex.deletion) == {"saliency", "gradcam"}
    assert torch.allclose(ex.probs.sum(), torch.tensor(1.0))
    assert explain_face(model, face, [], target=2).target == 2
    with pytest.raises(ValueError, match="no known true label"):
        explain_face(model, face, [], target="true")


def test_feature_maps_attention_atlas_and_rendering(mini_splits):
    torch.manual_seed(0)
    model = explainable(create_model("aer_cnn"))
    x = model_input(model, mini_splits["PrivateTest"].images[0])
    maps = feature_maps(model, x, top=8)
    assert maps and all(m.shape[0] <= 8 for m in maps.values())
    first = next(iter(maps.values()))
    assert (first.mean((1, 2))[:-1] >= first.mean((1, 2))[1:]).all()  # most active first
    attention = own_attention(model, x)
    assert attention and all(v.min() >= 0 and v.max() <= 1 for v in attention.values())
    seen = face_pixels(x, model.default_cfg.mean, model.default_cfg.std)
    assert np.array_equal(seen, mini_splits["PrivateTest"].images[0].numpy())  # exactly what the model saw
    for key, value in attention.items():
        assert attention_image(key, value[0], seen).size == (192, 192)
    assert overlay(seen, np.random.randn(48, 48), signed=True).mode == "RGB"
    assert mosaic(first).size[0] == 8 * 48
    atlas, counts = class_atlas(explainable(TopLeft()), mini_splits["Training"], per_class=2)
    assert atlas.shape == (7, 48, 48) and sum(counts) >= 1
    assert atlas.max() <= 1.0 + 1e-6


# ---- the page ---------------------------------------------------------------------------------------


@pytest.fixture
def app_env(monkeypatch, zoo_root, tmp_path):
    monkeypatch.setenv("FER_CHECKPOINTS", str(zoo_root))
    monkeypatch.setenv("FER_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.delenv("FER2013_DIR", raising=False)


def test_explain_page_in_apptest(app_env):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=300)
    at.run()
    at.switch_page("pages/explain.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.multiselect(key="explain_models").value == ["alpha", "beta"]
    captions = [img.caption for el in at.get("image") for img in el.proto.imgs]
    assert sum("deletion AUC" in c for c in captions) == 6  # 2 models x 3 default methods
    assert any("Lower is more faithful" in c.value for c in at.caption)  # how to read it is on the page
    assert at.selectbox(key="explain_target").options[:2] == ["predicted", "true"]  # a dataset face has one
    at.selectbox(key="explain_target").select("surprise").run()
    assert any("explaining surprise" in s.value for s in at.subheader)

    def atlas_captions() -> list[str]:
        return [i.caption for el in at.get("image") for i in el.proto.imgs if i.caption.endswith(" faces)")]

    at.number_input(key="atlas_n").set_value(2).run()
    at.button(key="atlas_go").click().run()
    assert len(atlas_captions()) == 7 and not at.exception
    at.selectbox(key="explain_target").select("happy").run()  # another interaction: the atlas stays
    assert len(atlas_captions()) == 7
    at.number_input(key="atlas_n").set_value(3).run()  # built for 2 faces per class: gone
    assert atlas_captions() == []
    at.selectbox(key="explain_target").select("true").run()
    at.session_state["explain_request"] = {
        "face": np.full((48, 48), 128, np.uint8),
        "source": "a grey face",
        "models": ["beta"],
    }
    at.run()  # the radio now offers the face another page sent
    assert at.radio(key="face_source").options[-1] == "From another page"
    at.radio(key="face_source").set_value("From another page").run()
    assert not at.exception
    assert at.multiselect(key="explain_models").value == ["beta"]  # the models it was sent with
    assert "true" not in at.selectbox(key="explain_target").options  # a face without a label...
    assert at.selectbox(key="explain_target").value == "predicted"  # ...so "true" falls back to the prediction
    at.multiselect(key="explain_models").set_value(["alpha"]).run()  # once: the user's choice then stays
    assert at.multiselect(key="explain_models").value == ["alpha"]
    assert any("a grey face" in c for el in at.get("image") for c in [i.caption for i in el.proto.imgs])


def test_explain_page_says_plainly_when_an_upload_is_not_an_image(app_env):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=300)
    at.run()
    at.switch_page("pages/explain.py").run()
    at.radio(key="face_source").set_value("Upload a face").run()
    at.file_uploader(key="face_upload").set_value(("notes.jpg", b"meeting notes, not a photo", "image/jpeg")).run()
    assert not at.exception
    assert [e.value for e in at.error] == ["notes.jpg: not an image (expected JPEG, PNG, GIF, WebP, BMP or TIFF)"]


def test_explain_page_in_chromium(zoo_root, tmp_path):
    from browser import ROOT as ROOT_
    from browser import launch, require_browser, running_app, wait_for_app

    require_browser(module=False)
    from playwright.sync_api import sync_playwright

    env = {"FER_CHECKPOINTS": str(zoo_root), "FER2013_DIR": str(MINI_FOLDER), "FER_RUNS_DIR": str(tmp_path)}
    (ROOT_ / "screenshots").mkdir(exist_ok=True)
    with running_app(env) as url, sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page(viewport={"width": 1400, "height": 2000})
        page.goto(f"{url}/explain")
        wait_for_app(page, "Explain", timeout=120_000)
        page.get_by_text("Class atlas").wait_for(timeout=120_000)
        scores = page.get_by_text(re.compile(r"deletion AUC \d\.\d+ \(random"))
        for _ in range(120):  # on a loaded machine the second model's maps can arrive after the atlas header
            if scores.count() == 6:
                break
            page.wait_for_timeout(500)
        assert scores.count() == 6
        assert page.locator("[data-testid='stException']").count() == 0
        page.screenshot(path=str(ROOT_ / "screenshots" / "explain.png"))
        browser.close()
    assert CLASSES  # the page labels classes in the fer2013.csv order
