"""Faces in the wild: detection on generated and scikit-image photos, training-identical crops, the
``predict`` API, tracking and video files, bad paths, and ``scripts/predict.py``. Hostile and unusual
image files (bombs, truncated, renamed, 16-bit, CMYK, palette, EXIF, animated) are in test_hostile_inputs.py.

Photos are generated in tmp_path from the committed mini FER2013 faces pasted into larger scenes (their
true boxes are known), plus scikit-image's bundled astronaut photo; the models are the tiny ``zoo_root``
checkpoints, so probabilities are not meaningful, only their plumbing is checked.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

import fer_core
from conftest import ROOT
from fer_core.checkpoint import CheckpointError, load_checkpoint
from fer_core.data import eval_views
from fer_core.faces import (
    FixedBoxes,
    IoUTracker,
    compose_scene,
    create_detector,
    crop_face,
    detectable_faces,
    iou,
    list_detectors,
    read_image,
    register_detector,
    write_video,
)
from fer_core.faces.report import draw_boxes, face_probs_figure, save_timeline, timeline_figure
from fer_core.inference import LoadedModel, UnknownModelError, load_models, predict, predict_video, results_table


@pytest.fixture(scope="module")
def faces(mini_splits) -> np.ndarray:
    """All 49 committed mini-FER2013 faces, uint8 (N, 48, 48)."""
    return torch.cat([s.images for s in mini_splits.values()]).numpy()


@pytest.fixture(scope="module")
def findable(faces) -> np.ndarray:
    """The faces Haar finds alone in a plain scene (frontal enough): tests that need hits use these."""
    keep = detectable_faces(faces, create_detector("haar"), face_px=128)
    assert len(keep) >= 30
    return faces[keep]


@pytest.fixture(scope="module")
def models(zoo_root) -> list[LoadedModel]:
    return load_models(["alpha", "beta"], root=zoo_root)


def png(img: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG", **kw)
    return buf.getvalue()


def matched(found_boxes, true_boxes, min_iou: float = 0.5) -> int:
    return sum(any(iou(f, t) >= min_iou for f in found_boxes) for t in true_boxes)


# ---- detection --------------------------------------------------------------------------------------


def test_astronaut_face_is_found_where_it_is(models):
    skimage_data = pytest.importorskip("skimage.data")
    result = predict(skimage_data.astronaut(), models)
    assert len(result.faces) == 1
    x, y, w, h = result.faces[0].box
    # her face spans about x 180-270, y 70-160 in the 512x512 photo
    assert 170 < x + w / 2 < 280 and 60 < y + h / 2 < 170 and 70 < w < 130
    assert result.faces[0].score > 0 and not result.faces[0].flags


@pytest.mark.parametrize("face_px", [64, 128, 256])
def test_pasted_faces_are_found_with_boxes_in_place(findable, models, face_px):
    size = (1280, 720)
    n = 6 if face_px < 256 else 3
    img, boxes = compose_scene(findable[:n], size, face_px, seed=face_px)
    result = predict(png(img), models)
    found = [f.box for f in result.faces]
    assert matched(found, boxes) >= n - 1  # Haar is not perfect at 64 px; at least all but one, boxes in place
    assert len(found) <= n  # no false positives on the plain scene
    assert [f.id for f in result.faces] == list(range(1, len(found) + 1))


def test_detectors_are_pluggable(findable, models):
    assert {"haar", "whole"} <= set(list_detectors())
    with pytest.raises(ValueError, match="available: .*haar"):
        create_detector("nope")

    class TopLeft:
        name, margin = "topleft", 0.0

        def detect(self, gray):
            from fer_core.faces import Detection

            return [Detection(0, 0, 48, 48, 0.5)]

    register_detector("topleft_test", TopLeft)
    with pytest.raises(ValueError, match="already registered"):
        register_detector("topleft_test", TopLeft)
    img, _ = compose_scene([findable[0]], (200, 200), 48, [(0, 0, 48, 48)])
    for det in ("topleft_test", TopLeft()):
        result = predict(img, models, det)
        assert result.detector == "topleft" and result.faces[0].box == (0, 0, 48, 48)
        assert np.array_equal(result.faces[0].crop, findable[0])
    with pytest.raises(TypeError):
        predict(img, models, detector=42)


# ---- preprocessing identical to training --------------------------------------------------------------


def test_the_crop_reaching_the_model_is_the_training_view(faces, zoo_root):
    """A 48x48 face pasted 1:1 and boxed exactly: the crop is the face, bit for bit, and the tensor the
    network receives is ``eval_views``' single centre view of it with the model's own normalisation."""
    model, meta = load_checkpoint(zoo_root / "alpha" / "model.safetensors")
    face = faces[3]
    img, boxes = compose_scene([face], (320, 240), 48, [(101, 57, 48, 48)])
    seen = []
    handle = model.register_forward_pre_hook(lambda m, args: seen.append(args[0].detach().clone()))
    try:
        result = predict(img, [(model, {**meta, "name": "alpha"})], FixedBoxes(boxes))
    finally:
        handle.remove()
    assert np.array_equal(result.faces[0].crop, face)
    cfg = model.default_cfg
    expected = eval_views(torch.from_numpy(face)[None], cfg.input_size, cfg.crop, "none", cfg.mean, cfg.std)[0]
    assert torch.allclose(seen[0].float(), expected, atol=1e-6)
    with torch.no_grad():
        probs = torch.softmax(model(expected), 1)[0].numpy()
    assert np.allclose(result.faces[0].probs["alpha"], probs, atol=1e-5)


def test_detected_crop_looks_like_the_pasted_face(findable):
    """Through Haar and its margin, faces pasted at 3x come back framed the way FER2013 framed them:
    per face the box varies (Haar is no landmark detector), but the typical crop is the face."""
    haar = create_detector("haar")
    sides, corr = [], []
    for start in (0, 6):
        img, boxes = compose_scene(findable[start : start + 6], (960, 480), 144, seed=start)
        gray = np.asarray(img.convert("L"))
        dets = haar.detect(gray)
        for face, box in zip(findable[start : start + 6], boxes, strict=True):
            det = max(dets, key=lambda d: iou(d.box, box))
            crop = crop_face(gray, det.box, haar.margin).astype(float)
            sides.append(det.w * (1 + 2 * haar.margin) / box[2])
            corr.append(np.corrcoef(crop.ravel(), face.astype(float).ravel())[0, 1])
    assert abs(np.median(sides) - 1) < 0.1, sides
    assert np.median(corr) > 0.7, corr


def test_crop_at_the_border_repeats_edge_pixels(faces):
    gray = np.tile(np.arange(100, dtype=np.uint8), (80, 1))
    crop = crop_face(gray, (-20, -20, 60, 60))
    assert crop.shape == (48, 48) and crop.dtype == np.uint8
    assert (crop[:, :10] == 0).all()  # the left edge (value 0) repeated, not black padding mixed in


def test_small_and_blurry_faces_are_flagged(findable, models):
    from PIL import ImageFilter

    img, boxes = compose_scene(
        findable[:3], (600, 300), 120, [(20, 90, 120, 120), (240, 90, 120, 120), (450, 140, 24, 24)]
    )
    blurred = img.copy()
    blurred.paste(img.crop((240, 90, 360, 210)).filter(ImageFilter.GaussianBlur(4)), (240, 90))
    result = predict(blurred, models, FixedBoxes(boxes))
    flags = {f.box: f.flags for f in result.faces}
    assert flags[boxes[0]] == []
    assert any("too blurry" in f for f in flags[boxes[1]])
    assert any("too small" in f for f in flags[boxes[2]])


# ---- the API ----------------------------------------------------------------------------------------


def test_predict_returns_boxes_scores_probabilities_ensemble_and_label(findable, models, zoo_root):
    img, boxes = compose_scene(findable[:2], (640, 480), 150, seed=5)
    result = predict(png(img), models, source="party.png")
    assert result.source == "party.png" and result.models == ["alpha", "beta"] and len(result.faces) == 2
    for f in result.faces:
        assert set(f.probs) == {"alpha", "beta"}
        for p in f.probs.values():
            assert p.shape == (7,) and abs(p.sum() - 1) < 1e-4
        assert np.allclose(f.ensemble, (f.probs["alpha"] + f.probs["beta"]) / 2)
        assert f.label == result.classes[int(f.ensemble.argmax())]
        assert f.crop.shape == (48, 48) and f.crop.dtype == np.uint8
    d = json.loads(json.dumps(result.to_dict()))
    assert d["faces"][0]["ensemble"].keys() == set(result.classes)
    table = results_table([result])
    assert len(table) == 2 * 3 and set(table["model"]) == {"alpha", "beta", "ensemble"}
    assert {"face_id", "x", "y", "w", "h", "score", "label", *result.classes} <= set(table.columns)
    # the same through every way of naming models, and the ensemble of one model is that model
    one = predict(img, [str(zoo_root / "alpha" / "model.safetensors")])
    assert np.allclose(one.faces[0].ensemble, result.faces[0].probs["alpha"], atol=1e-5)
    assert predict(img, str(zoo_root / "beta")).models == ["beta"]
    drawn = draw_boxes(result.image, result.faces)
    assert drawn.size == result.image.size and drawn.tobytes() != result.image.tobytes()
    assert len(face_probs_figure(result.faces[0], result.classes).data) == 3  # two models + the ensemble


def test_fer_core_predict_is_the_function_and_import_stays_cheap():
    assert fer_core.predict is predict
    code = "import sys, fer_core; assert 'torch' not in sys.modules, 'import fer_core loaded torch'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_model_names_are_checked(zoo_root, monkeypatch):
    monkeypatch.setenv("FER_CHECKPOINTS", str(zoo_root))
    assert [m.name for m in load_models()] == ["alpha", "beta"]  # default: every usable checkpoint
    assert [m.name for m in load_models("beta,alpha")] == ["beta", "alpha"]
    with pytest.raises(UnknownModelError, match="unknown model 'gamma'.*available: alpha, beta"):
        load_models(["alpha", "gamma"])
    with pytest.raises(CheckpointError):
        load_models("broken")
    with pytest.raises(UnknownModelError, match="no usable checkpoints"):
        load_models(root=zoo_root / "nowhere")


# ---- tracking and video -----------------------------------------------------------------------------


def test_faces_are_numbered_in_reading_order():
    from fer_core.faces import Detection
    from fer_core.inference import reading_order

    dets = [
        Detection(600, 100, 90, 90),
        Detection(20, 118, 70, 70),
        Detection(300, 95, 100, 100),
        Detection(40, 400, 90, 90),
    ]
    assert [d.x for d in reading_order(dets)] == [20, 300, 600, 40]


def test_tracker_keeps_ids_across_frames():
    tracker = IoUTracker(min_iou=0.3, max_missed=2)
    assert tracker.update([(0, 0, 50, 50), (200, 0, 50, 50)]) == [1, 2]
    assert tracker.update([(205, 3, 50, 50), (5, 2, 50, 50)]) == [2, 1]  # order of boxes does not matter
    assert tracker.update([(10, 4, 50, 50)]) == [1]  # face 2 missed once
    assert tracker.update([(14, 6, 50, 50), (210, 5, 50, 50)]) == [1, 2]  # and comes back with its id
    for _ in range(3):
        tracker.update([])
    assert tracker.update([(14, 6, 50, 50)]) == [3]  # gone too long: a new id, never a reused one


def moving_faces_video(path, faces, frames: int = 20):
    """Two faces walking towards each other, their true boxes per frame."""
    rgb, truth = [], []
    for t in range(frames):
        boxes = [(10 + 4 * t, 40, 96, 96), (300 - 4 * t, 60, 96, 96)]
        img, _ = compose_scene(faces[:2], (416, 224), 96, boxes, seed=7)
        rgb.append(np.asarray(img))
        truth.append(boxes)
    write_video(path, rgb, fps=10)
    return truth


@pytest.mark.parametrize("suffix", ["mp4", "webm", "avi"])
def test_video_faces_are_tracked_with_stable_ids(findable, models, tmp_path, suffix):
    path = tmp_path / f"clip.{suffix}"
    truth = moving_faces_video(path, findable)
    seen = []
    video = predict_video(path, models, every=2, progress=lambda done, total: seen.append((done, total)))
    assert len(video.frames) == 10 and seen[-1] == (10, 10)
    assert [fr.frame for fr in video.frames] == list(range(0, 20, 2))
    assert np.allclose([fr.time_s for fr in video.frames], np.arange(0, 2, 0.2), atol=0.02)
    for fr in video.frames:  # the left face keeps one id, the right face another, in every frame
        assert len(fr.faces) == 2 and fr.image is None
        by_id = {f.id: f.box for f in fr.faces}
        assert iou(by_id[1], truth[fr.frame][0]) > 0.5 and iou(by_id[2], truth[fr.frame][1]) > 0.5
    table = video.table()
    assert len(table) == 10 * 2 * 3 and list(table.columns[:4]) == ["source", "frame", "time_s", "face_id"]
    assert set(video.face_crops()) == {1, 2}
    assert len(timeline_figure(table, models[0].classes).data) == 2 * 7
    assert save_timeline(table, models[0].classes, tmp_path / "t.png").stat().st_size > 1000


def test_video_limits_and_bad_videos(findable, models, tmp_path):
    path = tmp_path / "clip.mp4"
    moving_faces_video(path, findable)
    video = predict_video(path, models, max_frames=3)
    assert len(video.frames) == 3 and "first 3 frames" in video.notes[0]
    bad = tmp_path / "fake.mp4"
    bad.write_bytes(b"this is not a video at all" * 10)
    with pytest.raises(ValueError, match="not a readable video"):
        predict_video(bad, models)
    truncated = tmp_path / "cut.mp4"
    truncated.write_bytes(path.read_bytes()[:600])
    with pytest.raises(ValueError, match="video"):
        predict_video(truncated, models)


# ---- bad input: a clear message or a sensible result ----------------------------------------------------


def test_bad_files_give_clear_messages(models, tmp_path):
    """Files on disk; hostile bytes (bombs, truncated, renamed, odd modes) are in test_hostile_inputs.py."""
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="empty file"):
        predict(empty, models)
    with pytest.raises(ValueError, match="no such file"):
        predict(tmp_path / "missing.jpg", models)


def test_huge_panorama_is_downscaled_for_detection(findable, models):
    img, boxes = compose_scene(findable[:2], (8000, 1200), 300, [(1000, 400, 300, 300), (6500, 500, 300, 300)])
    result = predict(img, models)
    assert any("detected faces on a 1600x240 copy" in n for n in result.notes)
    assert matched([f.box for f in result.faces], boxes) == 2  # boxes back in full-resolution pixels
    assert result.size == (8000, 1200)


def test_thirty_faces_in_one_photo(findable, models):
    img, boxes = compose_scene(findable[:30], (1500, 1000), 128, seed=30)
    result = predict(img, models)
    assert matched([f.box for f in result.faces], boxes) >= 28
    assert sorted(f.id for f in result.faces) == list(range(1, len(result.faces) + 1))
    assert len(results_table([result])) == 3 * len(result.faces)


def test_no_face_found_and_whole_image_fallback(models):
    blank = Image.new("RGB", (300, 200), (120, 130, 140))
    assert predict(blank, models).faces == []
    assert "no face found" in predict(blank, models).notes
    result = predict(blank, models, whole_image_if_none=True)
    assert len(result.faces) == 1 and result.faces[0].box == (50, 0, 200, 200)
    assert "whole image" in result.notes[0] and result.detector == "haar+whole"
    assert read_image(np.zeros((10, 10, 3), np.uint8)).gray.shape == (10, 10)


# ---- the command line -------------------------------------------------------------------------------


def cli(*args: str, zoo=None) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", **({"FER_CHECKPOINTS": str(zoo)} if zoo else {})}
    return subprocess.run(
        [sys.executable, "scripts/predict.py", *args], capture_output=True, text=True, cwd=ROOT, env=env, timeout=300
    )


def test_cli_help_explains_every_option():
    out = cli("--help").stdout
    for opt in ("--models", "--every", "--out", "--detector", "--plot", "--max-frames", "--checkpoints", "--tta"):
        assert opt in out


def test_cli_on_an_image_a_folder_and_a_video(findable, zoo_root, tmp_path):
    import pandas as pd

    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(2):
        compose_scene(findable[2 * i : 2 * i + 2], (640, 480), 140, seed=i)[0].save(folder / f"p{i}.jpg")
    (folder / "notes.txt").write_text("not an image: folders only yield images and videos")
    single = tmp_path / "single.png"
    compose_scene(findable[5:6], (400, 300), 150)[0].save(single)
    moving_faces_video(tmp_path / "clip.webm", findable)
    out = tmp_path / "out" / "results.csv"
    res = cli(str(single), str(folder), str(tmp_path / "clip.webm"), "--every", "4", "--out", str(out), "--plot",
              "png", "--no-progress", zoo=zoo_root)  # fmt: skip
    assert res.returncode == 0, res.stderr
    table = pd.read_csv(out)
    ens = table[table["model"] == "ensemble"]
    assert set(table["model"]) == {"alpha", "beta", "ensemble"}
    assert ens.groupby("source").size().to_dict() == {
        str(single): 1,
        str(folder / "p0.jpg"): 2,
        str(folder / "p1.jpg"): 2,
        str(tmp_path / "clip.webm"): 5 * 2,
    }
    assert sorted(ens[ens["source"].str.endswith("webm")]["face_id"].unique()) == [1, 2]
    assert (tmp_path / "out" / "clip_webm_emotions.png").stat().st_size > 1000
    assert "face 1 at x=" in res.stdout and "2 tracked faces" in res.stdout


def test_cli_json_and_bad_inputs(findable, zoo_root, tmp_path):
    good = tmp_path / "good.png"
    compose_scene(findable[:1], (400, 300), 150)[0].save(good)
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff truncated")
    out = tmp_path / "r.json"
    res = cli(str(good), str(bad), "--models", "alpha", "--out", str(out), zoo=zoo_root)
    assert res.returncode == 2 and "bad.jpg" in res.stderr and "Traceback" not in res.stderr
    payload = json.loads(out.read_text())  # the readable file's results are still written
    assert payload["models"] == ["alpha"] and len(payload["images"][0]["faces"]) == 1
    res = cli(str(good), "--models", "alpha,gamma", zoo=zoo_root)
    assert res.returncode == 2 and "unknown model 'gamma'" in res.stderr and "Traceback" not in res.stderr
    res = cli(str(tmp_path / "missing.jpg"), zoo=zoo_root)
    assert res.returncode == 2 and "no such file" in res.stderr and "Traceback" not in res.stderr
