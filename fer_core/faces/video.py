"""Reading video files (mp4, webm, avi, mov, mkv) frame by frame through PyAV, and writing short ones.

PyAV bundles FFmpeg in its wheel (streamlit-webrtc already depends on it), so no system codec is
needed. Every frame must be decoded (inter-frame codecs), but only every ``every``-th is handed on.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..data.images import MAX_PIXELS

VIDEO_SUFFIXES = (".mp4", ".webm", ".avi", ".mov", ".mkv", ".m4v")


def is_video(path: str | Path) -> bool:
    return Path(str(path)).suffix.lower() in VIDEO_SUFFIXES


@dataclass(frozen=True)
class VideoInfo:
    fps: float
    frames: int | None  # None when the container does not say
    duration_s: float | None
    width: int
    height: int


def _open(path: str | Path | Any) -> Any:
    import av

    try:
        container = av.open(str(path) if isinstance(path, str | Path) else path)
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise ValueError(f"not a readable video ({exc})") from None
    if not container.streams.video:
        container.close()
        raise ValueError("the file has no video stream")
    return container


def video_info(path: str | Path) -> VideoInfo:
    """Frame rate, frame count, duration and size, from the container's header."""
    with _open(path) as container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate or stream.guessed_rate or 25)
        duration = float(stream.duration * stream.time_base) if stream.duration and stream.time_base else None
        if duration is None and container.duration:
            duration = container.duration / 1_000_000
        frames = stream.frames or (round(duration * fps) if duration else None)
        return VideoInfo(fps, frames, duration, stream.codec_context.width, stream.codec_context.height)


def iter_frames(
    path: str | Path, every: int = 1, max_frames: int | None = None
) -> Iterator[tuple[int, float, Image.Image]]:
    """``(frame index, time in s, RGB frame)`` for every ``every``-th frame, at most ``max_frames`` of them.

    A file that stops decoding part-way (truncated download) ends the iteration there rather than
    failing, so the frames before the damage are still analysed. Frames larger than photos may be
    (``MAX_PIXELS``) are refused with ``ValueError``, whatever the header said: a few MB of video can
    otherwise ask for gigabytes per decoded frame.
    """
    import av

    if every < 1:
        raise ValueError(f"every must be >= 1, not {every}")
    with _open(path) as container:
        stream = container.streams.video[0]
        _check_frame_size(stream.codec_context.width, stream.codec_context.height)
        stream.thread_type = "AUTO"
        fps = float(stream.average_rate or stream.guessed_rate or 25)
        handed = 0
        try:
            for index, frame in enumerate(container.decode(stream)):
                _check_frame_size(frame.width, frame.height)
                if index % every:
                    continue
                t = float(frame.time) if frame.time is not None else index / fps
                yield index, t, frame.to_image()
                handed += 1
                if max_frames is not None and handed >= max_frames:
                    return
        except av.error.FFmpegError:
            if handed == 0:
                raise ValueError("not a readable video (no frame could be decoded)") from None


def _check_frame_size(width: int, height: int) -> None:
    if width * height > MAX_PIXELS:
        raise ValueError(f"video frames too large ({width}x{height} pixels, limit {MAX_PIXELS:,})")


def write_video(path: str | Path, frames: list[np.ndarray], fps: int = 10, codec: str | None = None) -> Path:
    """Write RGB uint8 frames (H, W, 3) to ``path``; the codec follows the suffix (mp4: h264, webm: vp9, avi: mjpeg)."""
    import av

    path = Path(path)
    codec = codec or {".webm": "libvpx-vp9", ".avi": "mjpeg", ".mkv": "libx264"}.get(path.suffix.lower(), "libx264")
    h, w = frames[0].shape[:2]
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height = w - w % 2, h - h % 2
        stream.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
        for rgb in frames:
            frame = av.VideoFrame.from_ndarray(
                np.ascontiguousarray(rgb[: stream.height, : stream.width]), format="rgb24"
            )
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
