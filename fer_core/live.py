"""Live emotions on camera frames: the per-frame pipeline behind the Webcam page and its scripts.

:class:`LiveProcessor` takes an ``av.VideoFrame`` and returns one with every face boxed, labelled
(an emoji drawn with OpenCV, since no emoji font can be assumed, the class name, the smoothed
probability and a small bar) and optionally a Grad-CAM or attention heat map on the face. Per frame:

1. mirror (optional), grayscale, detect on a downscaled copy (Haar costs ~4x less at 320 px wide
   than at 640, and a webcam face is far larger than the cascade's 20 px minimum);
2. crop each face exactly as training did (:func:`fer_core.faces.crop_face`) and classify all of them
   in one batch through the evaluation path (:func:`fer_core.inference.classify_faces`);
3. follow faces across frames (:class:`fer_core.faces.IoUTracker`) and smooth each face's
   probabilities with an exponential moving average (:class:`EmaSmoother`), so labels do not flicker;
4. draw, measure latency and FPS, and publish a :class:`LiveResult` for the page.

Threads and dropping frames. streamlit-webrtc calls :meth:`LiveProcessor.recv_queued` from its own
worker thread with every frame that arrived since the previous call; we analyse only the newest and
count the rest as dropped (:func:`newest_frame`), so a pipeline slower than the camera shows the
present, never a growing backlog. Scripts without streamlit-webrtc get the same behaviour from
:class:`LatestFrameWorker`: a one-slot mailbox (a new frame replaces one not yet picked up) in front
of a worker thread. Results cross to the page through a lock-protected snapshot (:meth:`stats`,
:meth:`latest`) and bounded deques (recent probabilities, session timeline), so memory stays flat
however long the stream runs, and the page itself does no work beyond drawing charts.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import cv2
import numpy as np
import pandas as pd
import torch

from .data.faceset import CLASSES
from .faces.crop import crop_face
from .faces.detect import Detection, FaceDetector, resolve_detector
from .faces.report import CLASS_COLORS, face_color, hex_to_rgb
from .faces.track import IoUTracker
from .inference import LoadedModel, classify_faces, reading_order

OVERLAYS = ("none", "gradcam", "attention")
LIVE_S = 2.0  # a stream whose last analysed frame is older than this has stopped (or lost the face)


@dataclass(frozen=True)
class LiveConfig:
    """What a user can change while the stream runs (replaced atomically under the processor's lock)."""

    smoothing: float = 0.6  # EMA weight of the past: 0 shows every frame raw, 0.9 reacts in about a second
    overlay: str = "none"  # "none", "gradcam" (last conv layer) or "attention" (the model's own map)
    mirror: bool = True  # flip horizontally first, so the picture moves like a mirror and text reads right
    max_faces: int = 6  # the largest faces are kept: each one costs a crop and a batch row
    detect_width: int = 320  # detection runs on a copy this wide (0: full size)
    history_s: float = 20.0  # seconds of the main face's probabilities kept for the live chart
    timeline_every_s: float = 0.5  # a timeline row per face at most this often (bounded memory)
    overlay_opacity: float = 0.45
    calibrated: bool = False  # temperature-scaled probabilities (the model's stored temperature)

    def __post_init__(self) -> None:
        if not 0.0 <= self.smoothing < 1.0:
            raise ValueError(f"smoothing must be in [0, 1), not {self.smoothing}")
        if self.overlay not in OVERLAYS:
            raise ValueError(f"overlay must be one of {', '.join(OVERLAYS)}, not {self.overlay!r}")


@dataclass
class LiveFace:
    """One face in one analysed frame: ``probs`` smoothed over time, ``raw`` this frame's alone."""

    id: int
    box: tuple[int, int, int, int]  # x, y, w, h in the (mirrored, if asked) frame
    probs: np.ndarray
    raw: np.ndarray
    label: str
    crop: np.ndarray  # uint8 48x48: what the model received

    @property
    def confidence(self) -> float:
        return float(self.probs.max())


@dataclass
class LiveResult:
    """What one analysed frame produced, for the page."""

    index: int  # analysed frames so far, this one included
    time_s: float  # seconds since the processor started
    faces: list[LiveFace]
    latency_ms: float  # the whole pipeline for this frame: decode, detect, classify, draw, encode


@dataclass
class LiveStats:
    """A consistent snapshot of the counters, taken under the lock."""

    frames: int  # analysed
    dropped: int  # arrived but skipped because a newer frame was waiting
    fps: float  # analysed frames per second over the last couple of seconds
    latency_ms: float  # mean over the last frames
    latency_p95_ms: float
    faces: int  # in the newest analysed frame
    model: str
    since_last_s: float | None  # seconds since the last analysed frame (None: none yet)


class EmaSmoother:
    """Exponential moving average of class probabilities per tracked face id.

    ``p <- smoothing * p + (1 - smoothing) * new``: the label changes only once the new expression
    has lasted a few frames, which removes the frame-to-frame flicker of a single-frame classifier.
    Faces not seen in an update are forgotten, so a new person who takes an old id never inherits a
    stale average.
    """

    def __init__(self, smoothing: float) -> None:
        self.smoothing = smoothing
        self._state: dict[int, np.ndarray] = {}

    def update(self, ids: Sequence[int], probs: np.ndarray) -> np.ndarray:
        out = np.empty_like(probs, dtype=np.float32)
        state: dict[int, np.ndarray] = {}
        for i, face_id in enumerate(ids):
            previous = self._state.get(face_id)
            p = probs[i].astype(np.float32)
            if previous is not None and self.smoothing > 0:
                p = self.smoothing * previous + (1 - self.smoothing) * p
            out[i] = state[face_id] = p
        self._state = state
        return out


def newest_frame(frames: Sequence[Any]) -> tuple[Any, int]:
    """The frame to analyse and how many to drop: always the newest, never a backlog."""
    if not frames:
        raise ValueError("no frames")
    return frames[-1], len(frames) - 1


class LiveProcessor:
    """Detect, classify, smooth and draw faces on video frames; thread-safe.

    ``recv`` (one ``av.VideoFrame`` in, one out) is the plain per-frame callback; ``recv_queued`` is
    what streamlit-webrtc calls with every frame queued since the last call (newest analysed, the
    rest dropped). ``configure`` may be called from the page's thread at any time.
    """

    def __init__(
        self,
        model: LoadedModel,
        detector: str | FaceDetector | None = None,
        config: LiveConfig | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.model = model
        self.detector = resolve_detector(detector)
        self.classes = tuple(model.classes) or CLASSES
        self._config = config or LiveConfig()
        self._clock = clock
        self._t0 = clock()
        self._lock = threading.Lock()  # guards config, counters, deques and the latest result
        self._work = threading.Lock()  # one frame through the pipeline at a time (tracker, smoother, model)
        self._tracker = IoUTracker(min_iou=0.3, max_missed=5)
        self._smoother = EmaSmoother(self._config.smoothing)
        self._explainer: torch.nn.Module | None = None  # a private float copy with hooks for Grad-CAM
        self._frames = 0
        self._dropped = 0
        self._done_at: deque[float] = deque(maxlen=64)  # finish times, for the FPS
        self._latency: deque[float] = deque(maxlen=64)
        self._latest: LiveResult | None = None
        self._last_face: tuple[float, LiveFace, LiveResult] | None = None  # (finish time, main face, its frame)
        self._history: deque[tuple[float, np.ndarray]] = deque()  # (time, probs) of the main face
        self._timeline: deque[dict[str, Any]] = deque(maxlen=20_000)  # ~3 h at 2 rows/s: bounded memory
        self._timeline_last: dict[int, float] = {}
        self._main_labels: dict[str, int] = {}  # label of the main face per analysed frame, over the session

    # ---- configuration -----------------------------------------------------------------------------
    @property
    def config(self) -> LiveConfig:
        with self._lock:
            return self._config

    def configure(self, **changes: Any) -> LiveConfig:
        """Change settings between frames (validated; the next frame uses them)."""
        with self._lock:
            self._config = replace(self._config, **changes)
            self._smoother.smoothing = self._config.smoothing
            return self._config

    # ---- the callbacks -----------------------------------------------------------------------------
    def recv(self, frame: Any) -> Any:
        """The whole pipeline on one ``av.VideoFrame``; returns the annotated frame (same timestamps)."""
        import av

        start = self._clock()
        rgb = frame.to_ndarray(format="rgb24")
        out, result = self.process(rgb, start=start)
        new = av.VideoFrame.from_ndarray(out, format="rgb24")
        new.pts = frame.pts
        if frame.time_base is not None:
            new.time_base = frame.time_base
        self._finish(result, start)
        return new

    async def recv_queued(self, frames: list[Any]) -> list[Any]:
        """streamlit-webrtc's queued callback: analyse the newest frame, count the others as dropped."""
        frame, dropped = newest_frame(frames)
        if dropped:
            with self._lock:
                self._dropped += dropped
        return [self.recv(frame)]

    def drop(self, n: int = 1) -> None:
        """Count frames skipped by a caller's own dropping (:class:`LatestFrameWorker`)."""
        with self._lock:
            self._dropped += n

    # ---- the pipeline ------------------------------------------------------------------------------
    def process(self, rgb: np.ndarray, start: float | None = None) -> tuple[np.ndarray, LiveResult]:
        """Analyse and draw one RGB frame (H, W, 3) uint8; returns the drawn copy and the result.

        Latency is finished by the caller (:meth:`recv` adds decoding and encoding); a caller that
        uses ``process`` directly gets it measured from ``start`` (default: now) to the end of drawing.
        """
        start = self._clock() if start is None else start
        cfg = self.config
        with self._work:
            if cfg.mirror:
                rgb = rgb[:, ::-1]
            rgb = np.ascontiguousarray(rgb)
            gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
            detections = self._detect(gray, cfg)
            boxes = [d.box for d in detections]
            ids = self._tracker.update(boxes)
            faces: list[LiveFace] = []
            if detections:
                crops = np.stack([crop_face(gray, b, self.detector.margin) for b in boxes])
                raw = classify_faces(crops, [self.model], calibrated=cfg.calibrated)[self.model.name]
                smooth = self._smoother.update(ids, raw)
                for i, (face_id, box) in enumerate(zip(ids, boxes, strict=True)):
                    label = self.classes[int(smooth[i].argmax())]
                    faces.append(LiveFace(face_id, box, smooth[i], raw[i], label, crops[i]))
            else:
                self._smoother.update([], np.zeros((0, len(self.classes)), np.float32))
            out = rgb.copy()
            if cfg.overlay != "none":
                for face in faces:
                    self._draw_overlay(out, face, cfg)
            for face in faces:
                draw_face(out, face, self.classes)
        with self._lock:
            self._frames += 1
            index = self._frames
        result = LiveResult(index, start - self._t0, faces, (self._clock() - start) * 1000)
        return out, result

    def _detect(self, gray: np.ndarray, cfg: LiveConfig) -> list[Detection]:
        h, w = gray.shape
        factor = w / cfg.detect_width if cfg.detect_width and w > cfg.detect_width else 1.0
        small = (
            cv2.resize(gray, (round(w / factor), round(h / factor)), interpolation=cv2.INTER_AREA)
            if factor > 1
            else gray
        )
        found = [d.scaled(factor) if factor > 1 else d for d in self.detector.detect(small)]
        found = sorted(found, key=lambda d: d.w * d.h, reverse=True)[: cfg.max_faces]
        return reading_order(found)

    def _draw_overlay(self, out: np.ndarray, face: LiveFace, cfg: LiveConfig) -> None:
        heat = self.heat_map(face.crop, cfg.overlay, int(face.probs.argmax()))
        if heat is None:
            return
        x, y, w, h = face.box
        x0, y0, x1, y1 = max(0, x), max(0, y), min(out.shape[1], x + w), min(out.shape[0], y + h)
        if x1 <= x0 or y1 <= y0:
            return
        m = cv2.resize(heat, (w, h), interpolation=cv2.INTER_LINEAR)[y0 - y : y1 - y, x0 - x : x1 - x]
        color = cv2.applyColorMap((np.clip(m, 0, 1) * 255).astype(np.uint8), cv2.COLORMAP_INFERNO)[..., ::-1]
        region = out[y0:y1, x0:x1]
        alpha = cfg.overlay_opacity * np.clip(m, 0.15, 1.0)[..., None]
        out[y0:y1, x0:x1] = (region * (1 - alpha) + color * alpha).astype(np.uint8)

    def heat_map(self, crop: np.ndarray, kind: str, target: int) -> np.ndarray | None:
        """A map in [0, 1] over the model's input for one face: Grad-CAM, or the model's own attention
        (None when the model has none). Grad-CAM runs on a private float32 copy, because Captum adds
        hooks to the model it explains and the shared, cached instance must stay untouched."""
        from .explain import attribute, explainable, model_input, own_attention

        if self._explainer is None:
            self._explainer = explainable(self.model.model)  # a deep copy
        model = self._explainer
        x = model_input(model, torch.as_tensor(crop))
        if kind == "gradcam":
            m = attribute(model, x, target, "gradcam").clamp_min(0)
        else:
            with torch.no_grad():
                maps = [v for k, v in own_attention(model, x).items() if "warp" not in k]
            if not maps:
                return None
            m = maps[0].reshape(-1, *maps[0].shape[-2:])[0]
        m = m.numpy().astype(np.float32)
        top = float(m.max())
        return m / top if top > 0 else m

    def _finish(self, result: LiveResult, start: float) -> None:
        """Close the frame's books: latency, FPS, and the page's history and timeline."""
        now = self._clock()
        result.latency_ms = (now - start) * 1000
        cfg = self.config
        with self._lock:
            self._latency.append(result.latency_ms)
            self._done_at.append(now)
            self._latest = result
            if result.faces:
                self._last_face = (now, result.faces[0], result)
                self._history.append((result.time_s, result.faces[0].probs))
                label = result.faces[0].label
                self._main_labels[label] = self._main_labels.get(label, 0) + 1
            while self._history and self._history[0][0] < result.time_s - cfg.history_s:
                self._history.popleft()
            for face in result.faces:
                if result.time_s - self._timeline_last.get(face.id, -1e9) >= cfg.timeline_every_s:
                    self._timeline_last[face.id] = result.time_s
                    row = {"time_s": round(result.time_s, 2), "face_id": face.id, "label": face.label}
                    row |= {c: round(float(p), 4) for c, p in zip(self.classes, face.probs, strict=True)}
                    self._timeline.append(row)
            if len(self._timeline_last) > 256:  # ids are never reused: forget long-gone faces
                recent = {r["face_id"] for r in list(self._timeline)[-64:]}
                self._timeline_last = {k: v for k, v in self._timeline_last.items() if k in recent}

    def finish(self, result: LiveResult, start: float) -> None:
        """Record a frame analysed through :meth:`process` (scripts that skip ``av``)."""
        self._finish(result, start)

    # ---- what the page reads -----------------------------------------------------------------------
    def stats(self) -> LiveStats:
        with self._lock:
            done = list(self._done_at)
            lat = np.array(self._latency) if self._latency else np.zeros(1)
            latest = self._latest
            frames, dropped = self._frames, self._dropped
        window = [t for t in done if t >= done[-1] - 2.0] if done else []
        fps = (len(window) - 1) / (window[-1] - window[0]) if len(window) > 1 and window[-1] > window[0] else 0.0
        return LiveStats(
            frames=frames,
            dropped=dropped,
            fps=fps,
            latency_ms=float(lat.mean()),
            latency_p95_ms=float(np.percentile(lat, 95)),
            faces=len(latest.faces) if latest else 0,
            model=self.model.name,
            since_last_s=(self._clock() - done[-1]) if done else None,
        )

    def latest(self) -> LiveResult | None:
        with self._lock:
            return self._latest

    def main_face(self, max_age_s: float = LIVE_S) -> tuple[LiveFace, LiveResult] | None:
        """The main face of the newest frame that had one, if that frame finished within ``max_age_s``.

        Why not ``latest().faces[0]``: a detector misses a moving face for a frame now and then, and a
        "Save" or "Explain" clicked on such a frame should take the face the user just saw, not say
        there is none. Older than ``max_age_s`` (default: the page's test of a live stream) the face is gone,
        and this says so.
        """
        with self._lock:
            last = self._last_face
        if last is None or self._clock() - last[0] > max_age_s:
            return None
        return last[1], last[2]

    def label_counts(self) -> dict[str, int]:
        """How many analysed frames gave the main face each label, over the whole session."""
        with self._lock:
            return dict(sorted(self._main_labels.items(), key=lambda kv: -kv[1]))

    def history(self) -> pd.DataFrame:
        """The main face's smoothed probabilities over the last ``history_s`` seconds (time_s + a column per class)."""
        with self._lock:
            rows = list(self._history)
        if not rows:
            return pd.DataFrame(columns=["time_s", *self.classes])
        table = pd.DataFrame(np.stack([p for _, p in rows]), columns=list(self.classes))
        table.insert(0, "time_s", [t for t, _ in rows])
        return table

    def timeline(self) -> pd.DataFrame:
        """The session so far: a row per face every ``timeline_every_s`` seconds (time, id, label, probabilities)."""
        with self._lock:
            rows = list(self._timeline)
        return pd.DataFrame(rows, columns=["time_s", "face_id", "label", *self.classes])


class LatestFrameWorker:
    """Run a processor on a thread, always on the newest frame: for callers without streamlit-webrtc.

    ``submit(frame)`` never blocks: the frame goes into a one-slot mailbox, replacing (and counting as
    dropped) a frame the worker has not picked up yet. The worker analyses whatever is in the mailbox
    when it becomes free, so the delay between a frame's arrival and its result is at most one
    pipeline run plus the run in progress, however slow the pipeline is.
    """

    def __init__(self, handle: Callable[[Any], Any], on_drop: Callable[[int], None] | None = None) -> None:
        self._handle = handle
        self._on_drop = on_drop
        self._cond = threading.Condition()
        self._pending: Any = None
        self._has_pending = False
        self._stopped = False
        self.submitted = 0
        self.dropped = 0
        self.handled: list[Any] = []  # what ``handle`` returned, newest last (callers may clear it)
        self._thread = threading.Thread(target=self._run, name="fer-live-worker", daemon=True)
        self._thread.start()

    def submit(self, frame: Any) -> None:
        with self._cond:
            self.submitted += 1
            if self._has_pending:
                self.dropped += 1
                if self._on_drop is not None:
                    self._on_drop(1)
            self._pending, self._has_pending = frame, True
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._has_pending and not self._stopped:
                    self._cond.wait()
                if self._stopped and not self._has_pending:
                    return
                frame, self._pending, self._has_pending = self._pending, None, False
            result = self._handle(frame)
            with self._cond:
                self.handled.append(result)
                self._cond.notify_all()

    def close(self, timeout: float = 10.0) -> None:
        """Finish the frame in the mailbox, then stop the thread."""
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        self._thread.join(timeout)


# ---- drawing -------------------------------------------------------------------------------------
def draw_face(out: np.ndarray, face: LiveFace, classes: Sequence[str]) -> None:
    """Box in the face's colour, then above it: a drawn emoji, "label 87%", and a probability bar."""
    x, y, w, h = face.box
    color = hex_to_rgb(face_color(face.id))
    thick = max(2, round(max(out.shape[:2]) / 320))
    cv2.rectangle(out, (x, y), (x + w, y + h), color, thick, cv2.LINE_AA)
    scale = max(0.45, min(1.0, w / 220))
    text = f"{face.label} {face.confidence:.0%}"
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    icon = th + base + 6
    bar_h = max(4, round(icon / 4))
    tag_h = icon + bar_h + 4
    top = y - tag_h - thick if y - tag_h - thick >= 0 else min(out.shape[0] - tag_h, y + h + thick)
    width = max(w, icon + tw + 12)
    cv2.rectangle(out, (x, top), (x + width, top + tag_h), color, -1)
    draw_emoji(out, face.label, (x + 2 + icon // 2, top + 2 + icon // 2), icon // 2 - 1)
    cv2.putText(
        out, text, (x + icon + 6, top + 2 + th + 2), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA
    )
    # probability bar: one segment per class, its length the class's probability, in the class colour
    left, bar_top, span = x + 2, top + icon + 2, width - 4
    for c, p in zip(classes, face.probs, strict=True):
        seg = round(float(p) * span)
        if seg > 0:
            class_rgb = hex_to_rgb(CLASS_COLORS.get(c, "#888888"))
            cv2.rectangle(out, (left, bar_top), (left + seg, bar_top + bar_h), class_rgb, -1)
            left += seg


def draw_emoji(out: np.ndarray, label: str, center: tuple[int, int], r: int) -> None:
    """A small face for ``label`` (OpenCV cannot render emoji glyphs and no emoji font is guaranteed)."""
    if r < 4:
        return
    cx, cy = center
    ink = (40, 30, 20)
    cv2.circle(out, center, r, (250, 200, 40) if label != "angry" else (240, 110, 60), -1, cv2.LINE_AA)
    eye_y, eye_dx = cy - r // 3, r // 3
    for sx in (-1, 1):
        cv2.circle(out, (cx + sx * eye_dx, eye_y), max(1, r // 7), ink, -1, cv2.LINE_AA)
    mouth_y, mw = cy + r // 3, r // 2
    t = max(1, r // 8)
    if label == "happy":
        cv2.ellipse(out, (cx, cy + r // 8), (mw, mw), 0, 20, 160, ink, t, cv2.LINE_AA)
    elif label in ("sad", "disgust"):
        cv2.ellipse(out, (cx, mouth_y + r // 3), (mw, r // 3), 0, 200, 340, ink, t, cv2.LINE_AA)
    elif label in ("surprise", "fear"):
        cv2.ellipse(out, (cx, mouth_y), (max(1, r // 4), max(1, r // 3)), 0, 0, 360, ink, t, cv2.LINE_AA)
    else:  # neutral, angry
        cv2.line(out, (cx - mw, mouth_y), (cx + mw, mouth_y), ink, t, cv2.LINE_AA)
    if label in ("angry", "disgust"):
        for sx in (-1, 1):
            cv2.line(
                out,
                (cx + sx * (eye_dx + r // 4), eye_y - r // 3),
                (cx + sx * r // 8, eye_y - r // 6),
                ink,
                t,
                cv2.LINE_AA,
            )


# ---- choosing the model --------------------------------------------------------------------------
def default_model(table: pd.DataFrame, slack: float = 2.0) -> str | None:
    """The live default: the fastest checkpoint among those within ``slack`` points of the best accuracy.

    ``table`` is :func:`fer_core.zoo.zoo_table`'s. Accuracy is PrivateTest (else PublicTest) single
    crop; speed is the checkpoint's measured ``CPU ms/face`` (else its file size, a fair proxy for
    these CNNs). Checkpoints without any accuracy still work: then the fastest wins. None: no usable
    checkpoint.
    """
    if table.empty or "status" not in table:
        return None
    ok = table[table["status"] == "ok"].copy()
    if ok.empty:
        return None
    acc = pd.Series(np.nan, index=ok.index, dtype=float)
    for col in ("PrivateTest acc", "PublicTest acc"):  # PrivateTest first; PublicTest fills its gaps
        if col in ok:
            acc = acc.fillna(pd.to_numeric(ok[col], errors="coerce"))
    if acc.notna().any():
        ok = ok[acc >= acc.max() - slack]
    speed = pd.to_numeric(ok.get("CPU ms/face", pd.Series(np.nan, index=ok.index)), errors="coerce")
    size = pd.to_numeric(ok.get("size (MB)", pd.Series(np.nan, index=ok.index)), errors="coerce")
    order = ok.assign(_speed=speed.fillna(np.inf), _size=size.fillna(np.inf)).sort_values(["_speed", "_size", "model"])
    return str(order["model"].iloc[0])


__all__ = [
    "OVERLAYS",
    "EmaSmoother",
    "LatestFrameWorker",
    "LiveConfig",
    "LiveFace",
    "LiveProcessor",
    "LiveResult",
    "LiveStats",
    "default_model",
    "draw_emoji",
    "draw_face",
    "newest_frame",
]
