#!/usr/bin/env python
"""Face detection rate and end-to-end latency of ``fer_core.predict`` on realistic photos.

- Detection rate: the FER2013 demo faces pasted into 1280x720 scenes at several sizes, on a plain
  gradient and on scikit-image's bundled photos (coffee, rocket, chelsea) as cluttered backgrounds;
  a face counts as found when a box overlaps it with IoU >= 0.4; boxes elsewhere are false positives.
  Plus scikit-image's astronaut photo (one real face).
- Latency of ``predict`` per image, from encoded JPEG bytes to probabilities (decode, grayscale,
  detection, crop, every model, ensemble), for 640x480 and 1920x1080 photos with one face, and the
  astronaut (512x512).

Prints a Markdown table (for the README) and writes the numbers to --out as JSON.

    python scripts/benchmark_faces.py                      # the zoo's checkpoints, full measurement
    python scripts/benchmark_faces.py --repeat 3 --faces 40  # quick check
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fer_core.demo import load_demo  # noqa: E402
from fer_core.device import set_threads  # noqa: E402
from fer_core.faces import compose_scene, create_detector, detectable_faces, iou  # noqa: E402
from fer_core.faces.scene import grid_boxes  # noqa: E402
from fer_core.inference import load_models, predict  # noqa: E402

SIZES = (48, 64, 96, 128, 192, 256)
SCENE = (1280, 720)


def backgrounds() -> dict[str, np.ndarray | None]:
    """Plain gradient (None) and scikit-image's bundled photos, resized to the scene."""
    out: dict[str, np.ndarray | None] = {"plain": None}
    try:
        import skimage.data
    except ImportError:
        print("scikit-image missing: cluttered backgrounds skipped", file=sys.stderr)
        return out
    for name in ("coffee", "rocket", "chelsea"):
        out[name] = np.asarray(Image.fromarray(getattr(skimage.data, name)()).convert("RGB").resize(SCENE))
    return out


def detection_rates(faces: np.ndarray, max_per_scene: int = 24) -> list[dict]:
    detector = create_detector("haar")
    rows = []
    for bg_name, bg in backgrounds().items():
        for px in SIZES:
            # a grid cell of 1.5 face sides each way, so boxes never touch
            per_scene = min(max_per_scene, int(SCENE[0] // (1.5 * px)) * int(SCENE[1] // (1.5 * px)))
            found = total = fp = scenes = 0
            for start in range(0, len(faces), per_scene):
                chunk = faces[start : start + per_scene]
                boxes = grid_boxes(len(chunk), *SCENE, px)
                img, boxes = compose_scene(chunk, SCENE, px, boxes, seed=start)
                if bg is not None:
                    arr, scene = bg.copy(), np.asarray(img)
                    mask = np.zeros(scene.shape[:2], bool)
                    for x, y, w, h in boxes:
                        mask[y : y + h, x : x + w] = True
                    arr[mask] = scene[mask]
                    img = Image.fromarray(arr)
                dets = detector.detect(np.asarray(img.convert("L")))
                hits = [any(iou(d.box, b) >= 0.4 for d in dets) for b in boxes]
                found += sum(hits)
                total += len(boxes)
                fp += sum(all(iou(d.box, b) < 0.4 for b in boxes) for d in dets)
                scenes += 1
            rows.append({"background": bg_name, "face_px": px, "faces": total, "found": found, "false_pos": fp,
                         "scenes": scenes, "rate": found / total})  # fmt: skip
    return rows


def jpeg(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.convert("RGB").save(buf, "JPEG", quality=90)
    return buf.getvalue()


def latency(models: list, face: np.ndarray, repeat: int) -> list[dict]:
    photos = {}
    for w, h in ((640, 480), (1920, 1080)):
        px = h // 3  # a face a third of the frame high: a portrait or a webcam
        img, _ = compose_scene([face], (w, h), px, [((w - px) // 2, (h - px) // 3, px, px)], seed=1)
        photos[f"{w}x{h}, one face"] = jpeg(img)
    try:
        import skimage.data

        photos["astronaut 512x512"] = jpeg(Image.fromarray(skimage.data.astronaut()))
    except ImportError:
        pass
    detector = create_detector("haar")
    rows = []
    for name, data in photos.items():
        predict(data, models, detector)  # warm-up
        times, n_faces = [], 0
        for _ in range(repeat):
            t = time.perf_counter()
            n_faces = len(predict(data, models, detector).faces)
            times.append(1000 * (time.perf_counter() - t))
        rows.append({"photo": name, "faces": n_faces, "median_ms": statistics.median(times),
                     "p90_ms": float(np.percentile(times, 90)), "repeat": repeat})  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default=None, help="comma-separated checkpoints (default: all of $FER_CHECKPOINTS)")
    p.add_argument("--repeat", type=int, default=30, help="predict() calls per latency figure (default 30)")
    p.add_argument("--faces", type=int, default=None, help="use only the first N demo faces for detection rates")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1: one core, like a laptop app)")
    p.add_argument("--out", default=None, help="write the numbers as JSON here")
    args = p.parse_args(argv)
    set_threads(args.threads)
    try:
        models = load_models(args.models)
        model_note = ", ".join(m.name for m in models)
    except ValueError as exc:
        from fer_core.models import create_model

        print(f"note: {exc}; timing an untrained vggnet instead", file=sys.stderr)
        models, model_note = [create_model("vggnet").eval()], "untrained vggnet (no checkpoints)"
    faces = load_demo().images.numpy()[: args.faces]
    t0 = time.perf_counter()
    det = detection_rates(faces)
    lat = latency(models, faces[detectable_faces(faces, create_detector("haar"), limit=1)[0]], args.repeat)
    import torch

    hardware = f"{platform.processor() or platform.machine()}, torch threads {torch.get_num_threads()}"
    print(f"Models: {model_note}. Hardware: {hardware}. {len(faces)} demo faces; {time.perf_counter() - t0:.0f} s.\n")
    print("| background | " + " | ".join(f"{px} px" for px in SIZES) + " | false positives |")
    print("|---|" + "---|" * (len(SIZES) + 1))
    for bg in dict.fromkeys(r["background"] for r in det):
        part = [r for r in det if r["background"] == bg]
        rates = " | ".join(f"{100 * r['rate']:.0f}%" for r in part)
        print(f"| {bg} | {rates} | {sum(r['false_pos'] for r in part)} in {sum(r['scenes'] for r in part)} scenes |")
    print("\n| photo | faces found | median ms | p90 ms |\n|---|---|---|---|")
    for r in lat:
        print(f"| {r['photo']} | {r['faces']} | {r['median_ms']:.1f} | {r['p90_ms']:.1f} |")
    if args.out:
        Path(args.out).write_text(json.dumps({"models": model_note, "hardware": hardware, "detection": det,
                                              "latency": lat}, indent=1) + "\n")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
