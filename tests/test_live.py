"""The live pipeline as plain functions: real FER2013 faces pasted on 640x480 frames go through
``LiveProcessor.recv`` (av.VideoFrame in and out); boxes, labels, smoothing, tracking and dropping."""

from __future__ import annotations

import asyncio
import threading
import time

import av
import cv2
import numpy as np
import pandas as pd
import pytest
import torch

from conftest import ROOT
from fer_core.faces.report import COLORS, hex_to_rgb
from fer_core.faces.track import iou
from fer_core.live import EmaSmoother, LatestFrameWorker, LiveConfig, LiveProcessor, default_model, newest_frame

BACKGROUND = 40


@pytest.fixture(scope="module")
def tiny_model():
    """An untrained small VGGNet: the pipeline's mechanics do not depend on accuracy."""
    from fer_core.checkpoint import model_meta
    from fer_core.inference import load_models
    from fer_core.models import create_model

    torch.manual_seed(0)
    model = create_model("vggnet", widths=(8, 16, 16, 16), fc=32).eval()
    return load_models([(model, model_meta(model))])[0]


@pytest.fixture(scope="module")
def faces(mini_splits):
    """Mini-FER2013 faces the Haar detector finds once enlarged, with their labels."""
    from fer_core.faces import create_detector, detectable_faces

    images = torch.cat([s.images for s in mini_splits.values()]).numpy()
    labels = torch.cat([s.labels for s in mini_splits.values()]).numpy()
    picked = detectable_faces(images, create_detector("haar"), limit=6)
    return images[picked], labels[picked]


def scene(faces: list[np.ndarray], boxes: list[tuple[int, int, int]]) -> np.ndarray:
    """A 640x480 RGB frame: each face enlarged to ``side`` px at ``(x, y)`` on a dark background."""
    frame = np.full((480, 640, 3), BACKGROUND, np.uint8)
    for face, (x, y, side) in zip(faces, boxes, strict=True):
        frame[y : y + side, x : x + side] = cv2.resize(face, (side, side), interpolation=cv2.INTER_CUBIC)[..., None]
    return frame


def video_frame(rgb: np.ndarray, pts: int = 0) -> av.VideoFrame:
    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
    frame.pts = pts
    return frame


def test_boxes_labels_and_bars_are_drawn_on_two_faces(tiny_model, faces):
    images, _ = faces
    placed = [(60, 150, 180), (380, 130, 200)]
    rgb = scene([images[0], images[1]], placed)
    proc = LiveProcessor(tiny_model, config=LiveConfig(mirror=False))
    out = proc.recv(video_frame(rgb, pts=1234))
    assert isinstance(out, av.VideoFrame) and (out.width, out.height) == (640, 480) and out.pts == 1234
    drawn = out.to_ndarray(format="rgb24")
    result = proc.latest()
    assert result is not None and len(result.faces) == 2
    for face, (x, y, side) in zip(result.faces, placed, strict=True):  # reading order: left face first
        assert iou(face.box, (x, y, side, side)) > 0.4
        assert face.label in tiny_model.classes and face.label == tiny_model.classes[int(face.probs.argmax())]
        assert face.probs.sum() == pytest.approx(1.0, abs=1e-4)
        assert face.crop.shape == (48, 48) and face.crop.dtype == np.uint8
        color = np.array(hex_to_rgb(COLORS[face.id - 1]))
        bx, by, bw, bh = face.box
        edge = drawn[by + bh // 4 : by + 3 * bh // 4, bx - 1 : bx + 2].reshape(-1, 3).astype(int)
        assert (np.abs(edge - color).sum(axis=1) < 30).mean() > 0.8  # the box's left side in the face colour
        tag = drawn[max(0, by - 40) : by, bx : bx + bw].reshape(-1, 3).astype(int)
        assert (np.abs(tag - color).sum(axis=1) < 30).sum() > 200  # the label tag above the box
    assert (drawn[:40, :40] == BACKGROUND).all()  # nothing drawn away from the faces
    assert (rgb == scene([images[0], images[1]], placed)).all()  # the input is not modified


def test_no_face_gives_the_frame_back_unchanged(tiny_model):
    rgb = np.full((480, 640, 3), BACKGROUND, np.uint8)
    proc = LiveProcessor(tiny_model, config=LiveConfig(mirror=False))
    out = proc.recv(video_frame(rgb)).to_ndarray(format="rgb24")
    assert (out == rgb).all() and proc.latest().faces == [] and proc.stats().frames == 1


def test_mirror_flips_before_detection(tiny_model, faces):
    rgb = scene([faces[0][0][:, ::-1]], [(60, 150, 180)])  # flipped here, so the mirror shows the known face
    proc = LiveProcessor(tiny_model, config=LiveConfig(mirror=True))
    proc.recv(video_frame(rgb))
    (face,) = proc.latest().faces
    assert iou(face.box, (640 - 60 - 180, 150, 180, 180)) > 0.4


def test_ema_smoothing_holds_the_label_through_a_one_frame_blip():
    steady, blip = np.eye(7, dtype=np.float32)[[3]], np.eye(7, dtype=np.float32)[[4]]
    smoother = EmaSmoother(0.6)
    for _ in range(5):
        smoother.update([1], steady)
    p = smoother.update([1], blip)
    assert p[0].argmax() == 3 and p[0, 4] == pytest.approx(0.4)  # one odd frame does not flip the label
    for _ in range(3):
        p = smoother.update([1], blip)
    assert p[0].argmax() == 4  # a lasting change does
    assert smoother.update([2], steady)[0].argmax() == 3  # a new id starts fresh; id 1 is forgotten
    assert EmaSmoother(0.0).update([1], blip)[0].argmax() == 4  # 0 = no smoothing


def test_processor_smooths_per_tracked_face(tiny_model, faces):
    images, _ = faces
    proc = LiveProcessor(tiny_model, config=LiveConfig(mirror=False, smoothing=0.8))
    a, b = scene([images[0]], [(200, 120, 200)]), scene([images[2]], [(204, 124, 200)])  # same place, other face
    proc.recv(video_frame(a))
    first = proc.latest().faces[0]
    np.testing.assert_allclose(first.probs, first.raw, atol=1e-6)  # nothing to average yet
    proc.recv(video_frame(b))
    second = proc.latest().faces[0]
    assert second.id == first.id  # the tracker keeps the id of an overlapping box
    np.testing.assert_allclose(second.probs, 0.8 * first.probs + 0.2 * second.raw, atol=1e-5)
    proc.configure(smoothing=0.0)
    proc.recv(video_frame(b))
    np.testing.assert_allclose(proc.latest().faces[0].probs, proc.latest().faces[0].raw, atol=1e-6)
    with pytest.raises(ValueError, match="smoothing"):
        proc.configure(smoothing=1.0)


def test_queued_frames_newest_is_analysed_and_the_rest_dropped(tiny_model, faces):
    proc = LiveProcessor(tiny_model, config=LiveConfig(mirror=False))
    empty = np.full((480, 640, 3), BACKGROUND, np.uint8)
    newest = scene([faces[0][0]], [(200, 120, 200)])
    frames = [video_frame(empty, 1), video_frame(empty, 2), video_frame(newest, 3)]
    out = asyncio.run(proc.recv_queued(frames))
    assert len(out) == 1 and out[0].pts == 3
    stats = proc.stats()
    assert (stats.frames, stats.dropped, stats.faces) == (1, 2, 1)
    assert newest_frame([7]) == (7, 0)
    with pytest.raises(ValueError):
        newest_frame([])


def test_latest_frame_worker_never_builds_a_backlog():
    """A 40 ms pipeline fed at ~400 frames/s: every run takes the newest frame, the others are dropped."""
    seen: list[tuple[int, int]] = []
    lock = threading.Lock()
    worker: LatestFrameWorker

    def handle(i: int) -> int:
        with lock:
            seen.append((i, worker.submitted))  # which frame, and how many had arrived when it started
        time.sleep(0.04)
        return i

    dropped: list[int] = []
    worker = LatestFrameWorker(handle, on_drop=dropped.append)
    for i in range(1, 201):
        worker.submit(i)
        time.sleep(0.0025)
    worker.close()
    assert worker.submitted == 200
    assert len(worker.handled) + worker.dropped == 200 and sum(dropped) == worker.dropped
    assert worker.dropped > 100  # the pipeline is ~16x slower than the frames arrive
    assert worker.handled[-1] == 200  # the last frame is never lost
    assert worker.handled == sorted(worker.handled)
    lag = [arrived - i for i, arrived in seen]
    assert max(lag) <= 1  # each run starts on the newest frame (one may land while the lock changes hands)


def test_stats_history_and_timeline_are_bounded(tiny_model, faces):
    now = [0.0]
    proc = LiveProcessor(tiny_model, config=LiveConfig(mirror=False, history_s=1.0), clock=lambda: now[0])
    frame = video_frame(scene([faces[0][0]], [(200, 120, 200)]))
    for _ in range(30):  # 3 s at 10 frames/s
        proc.recv(frame)
        now[0] += 0.1
    stats = proc.stats()
    assert stats.frames == 30 and stats.fps == pytest.approx(10, rel=0.01) and stats.dropped == 0
    history = proc.history()
    assert list(history.columns) == ["time_s", *tiny_model.classes] and 10 <= len(history) <= 11  # last second only
    timeline = proc.timeline()
    assert len(timeline) == 6 and timeline["label"].isin(tiny_model.classes).all()  # a row per 0.5 s
    assert sum(proc.label_counts().values()) == 30


def test_main_face_survives_a_missed_frame_but_not_two_seconds_without_faces(tiny_model, faces):
    """ "Save to My faces" / "Explain" take the face the user just saw, even if the newest frame missed it."""
    now = [0.0]
    proc = LiveProcessor(tiny_model, config=LiveConfig(mirror=False), clock=lambda: now[0])
    assert proc.main_face() is None  # nothing analysed yet
    proc.recv(video_frame(scene([faces[0][0]], [(200, 120, 200)])))
    now[0] += 0.1
    proc.recv(video_frame(np.full((480, 640, 3), BACKGROUND, np.uint8)))  # the detector misses the face
    assert proc.latest().faces == []
    face, frame = proc.main_face()
    assert frame.index == 1 and face.crop.shape == (48, 48) and iou(face.box, (200, 120, 200, 200)) > 0.4
    now[0] += 2.0
    assert proc.main_face() is None  # two seconds with no face: the user has gone


def test_gradcam_overlay_colours_the_face(tiny_model, faces):
    rgb = scene([faces[0][0]], [(200, 120, 200)])
    plain = LiveProcessor(tiny_model, config=LiveConfig(mirror=False)).recv(video_frame(rgb))
    heat = LiveProcessor(tiny_model, config=LiveConfig(mirror=False, overlay="gradcam")).recv(video_frame(rgb))
    a, b = plain.to_ndarray(format="rgb24").astype(int), heat.to_ndarray(format="rgb24").astype(int)
    inside = np.abs(a - b)[140:300, 220:380]
    assert inside.mean() > 3  # the heat map tints the face
    sat = b[140:300, 220:380].max(axis=2) - b[140:300, 220:380].min(axis=2)
    assert sat.mean() > 5  # the gray face became coloured
    assert (a[:40, :40] == b[:40, :40]).all()


def test_default_model_is_the_fastest_accurate_one():
    table = pd.DataFrame(
        {
            "model": ["big", "fast", "bad", "broken", "noacc"],
            "status": ["ok", "ok", "ok", "broken: x", "ok"],
            "PrivateTest acc": [72.0, 70.5, 55.0, 80.0, None],
            "CPU ms/face": [9.0, 1.2, 0.5, 0.1, 0.2],
            "size (MB)": [50, 5, 1, 1, 1],
        }
    )
    assert default_model(table) == "fast"  # within 2 points of the best, and fastest
    assert default_model(table, slack=0.5) == "big"
    no_numbers = pd.DataFrame({"model": ["b", "a"], "status": ["ok", "ok"], "size (MB)": [3.0, 9.0]})
    assert default_model(no_numbers) == "b"  # tiny or unevaluated checkpoints still get a default
    assert default_model(pd.DataFrame()) is None


VGGNET = ROOT / "checkpoints" / "vggnet" / "model.safetensors"


@pytest.mark.skipif(not VGGNET.is_file(), reason="needs the shipped, trained checkpoints/vggnet")
def test_trained_vggnet_labels_a_happy_face_happy_on_most_frames(mini_splits):
    from fer_core.data import CLASSES
    from fer_core.faces import create_detector, detectable_faces
    from fer_core.inference import load_models

    model = load_models(str(VGGNET))[0]
    images = torch.cat([s.images for s in mini_splits.values()]).numpy()
    labels = torch.cat([s.labels for s in mini_splits.values()]).numpy()
    happy = images[labels == CLASSES.index("happy")]
    happy = happy[detectable_faces(happy, create_detector("haar"))]
    if not len(happy):
        pytest.skip("no detectable happy face in the mini set")
    proc = LiveProcessor(model, config=LiveConfig(mirror=False))
    rng = np.random.default_rng(0)
    for i in range(20):  # the face drifts a little and the sensor is noisy, as on a webcam
        rgb = scene([happy[0]], [(200 + i, 120 + i // 2, 200)]).astype(np.int16) + rng.integers(-6, 7, (480, 640, 3))
        proc.recv(video_frame(np.clip(rgb, 0, 255).astype(np.uint8)))
    counts = proc.label_counts()
    assert counts.get("happy", 0) >= 0.8 * sum(counts.values()), counts
