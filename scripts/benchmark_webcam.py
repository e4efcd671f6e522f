"""Per-frame latency of the live webcam pipeline (``fer_core.live``) for every checkpoint of the zoo.

One FER2013 demo face (220 px) on a 640x480 frame, through ``LiveProcessor.recv``: av.VideoFrame
decode, mirror, Haar detection on a 320 px copy, training-identical crop, the model, smoothing,
drawing and re-encoding to an av.VideoFrame: everything the page's worker thread does per frame.
Prints a Markdown table (median and p95 ms, frames per second) for the README.

    python scripts/benchmark_webcam.py --threads 2 --repeat 300
    python scripts/benchmark_webcam.py --repeat 3 --warmup 1       # a quick check that it runs
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import av
import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fer_core.demo import load_demo  # noqa: E402
from fer_core.faces import create_detector, detectable_faces  # noqa: E402
from fer_core.inference import load_models  # noqa: E402
from fer_core.live import LiveConfig, LiveProcessor  # noqa: E402
from fer_core.zoo import checkpoints_root, list_checkpoints  # noqa: E402


def frame_with_face(side: int = 220) -> np.ndarray:
    """A 640x480 RGB frame with one demo face the Haar detector finds."""
    faces = load_demo().images.numpy()
    face = faces[detectable_faces(faces, create_detector("haar"), limit=1)[0]]
    frame = np.full((480, 640, 3), 40, np.uint8)
    frame[130 : 130 + side, 210 : 210 + side] = cv2.resize(face, (side, side), interpolation=cv2.INTER_CUBIC)[..., None]
    return frame


def measure(name: str, root: Path, frame: np.ndarray, repeat: int, warmup: int, overlay: str) -> dict[str, float]:
    processor = LiveProcessor(load_models(name, root=root)[0], "haar", LiveConfig(mirror=False, overlay=overlay))
    video = av.VideoFrame.from_ndarray(frame, format="rgb24")
    for _ in range(warmup):
        processor.recv(video)
    times, faces = [], 0
    for _ in range(repeat):
        start = time.perf_counter()
        processor.recv(video)
        times.append((time.perf_counter() - start) * 1000)
        faces += len(processor.latest().faces)
    t = np.array(times)
    return {"median": float(np.median(t)), "p95": float(np.percentile(t, 95)), "faces": faces / repeat}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=None, help="checkpoints folder (default: FER_CHECKPOINTS)")
    parser.add_argument("--models", default="", help="comma-separated names (default: every usable checkpoint)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (the target is 2 cores)")
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--overlay", default="none", choices=["none", "gradcam", "attention"])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(1)
    root = args.root or checkpoints_root()
    names = [n for n in args.models.split(",") if n] or [e.name for e in list_checkpoints(root) if e.ok]
    if not names:
        sys.exit(f"no usable checkpoints in {root}")
    frame = frame_with_face()
    print(
        f"640x480, one face, overlay {args.overlay}, {args.threads} torch threads, "
        f"{platform.processor() or platform.machine()}"
    )
    print("\n| model | median ms/frame | p95 ms | frames/s (median) | face found |\n|---|---|---|---|---|")
    for name in names:
        r = measure(name, root, frame, args.repeat, args.warmup, args.overlay)
        print(
            f"| {name} | {r['median']:.1f} | {r['p95']:.1f} | {1000 / r['median']:.0f} | {r['faces']:.0%} |", flush=True
        )


if __name__ == "__main__":
    main()
