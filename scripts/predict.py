#!/usr/bin/env python
"""Per-face emotions for photos, folders of photos and video files.

Finds the faces, crops each exactly as the models were trained (48x48 grayscale), runs the chosen
checkpoints and their ensemble (mean probability). Prints one line per face, or writes every face's
probabilities to --out (.csv: one row per face and model, the ensemble included; .json: nested).
For a video, also writes an emotion-over-time plot beside --out (or in the current folder).

    python scripts/predict.py party.jpg holiday/ --models vggnet,lobo_net --out results.csv
    python scripts/predict.py interview.mp4 --every 5 --out interview.json --plot png

Exit status: 0 when every input was analysed, 2 for a usage error (unknown model, missing path) or
when an input could not be read (its reason is printed; the others are still analysed and written).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("paths", nargs="+", metavar="PATH", help="image files, video files (mp4, webm, avi, ...) or folders")
    p.add_argument(
        "--models",
        default=None,
        help="comma-separated checkpoint names (folders of --checkpoints) or .safetensors paths (default: all)",
    )
    p.add_argument(
        "--checkpoints",
        default=None,
        help="the folder of checkpoints that --models names refer to (default: $FER_CHECKPOINTS or checkpoints/)",
    )
    p.add_argument(
        "--detector", default="haar", help="face detector: haar (OpenCV cascade) or whole (image = one face)"
    )
    p.add_argument(
        "--whole-image-if-none", action="store_true", help="when no face is found, classify the whole image instead"
    )
    p.add_argument("--every", type=int, default=1, metavar="N", help="videos: analyse every N-th frame (default 1)")
    p.add_argument("--max-frames", type=int, default=None, metavar="N", help="videos: stop after N analysed frames")
    p.add_argument("--out", default=None, help="write results to this .csv or .json file (default: print them)")
    p.add_argument(
        "--plot",
        choices=("html", "png", "none"),
        default="html",
        help="videos: the emotion-over-time plot's format, written as <name>_<ext>_emotions.<fmt> (default html)",
    )
    p.add_argument("--tta", choices=("none", "flip", "tencrop"), default="none", help="test-time augmentation")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (for logs)")
    return p.parse_args(argv)


def expand(paths: list[str]) -> tuple[list[Path], list[str]]:
    """Files to analyse (folders searched recursively for images and videos), and the paths that do not exist."""
    from fer_core.faces import VIDEO_SUFFIXES

    files, missing = [], []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(
                p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES + VIDEO_SUFFIXES
            )
            files += found
            if not found:
                missing.append(f"{path}: folder has no images or videos")
        elif path.is_file():
            files.append(path)
        else:
            missing.append(f"{path}: no such file or folder")
    return files, missing


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.every < 1:
        print("error: --every must be 1 or more", file=sys.stderr)
        return 2
    if args.out and Path(args.out).suffix.lower() not in (".csv", ".json"):
        print(f"error: --out must end in .csv or .json, not {args.out!r}", file=sys.stderr)
        return 2
    files, missing = expand(args.paths)
    for m in missing:
        print(f"error: {m}", file=sys.stderr)
    if missing:
        return 2

    from tqdm import tqdm

    from fer_core.checkpoint import CheckpointError
    from fer_core.faces import create_detector, is_video
    from fer_core.faces.crop import read_image
    from fer_core.faces.report import save_timeline
    from fer_core.inference import FaceOptions, analyse_image, load_models, predict_video, results_table

    try:
        models = load_models(args.models, root=args.checkpoints)
        detector = create_detector(args.detector)
    except (ValueError, CheckpointError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    opts = FaceOptions(tta=args.tta, whole_image_if_none=args.whole_image_if_none)
    plot_dir = Path(args.out).parent if args.out else Path.cwd()
    try:
        plot_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        print(f"error: cannot write to {plot_dir}: {exc}", file=sys.stderr)
        return 2

    results, videos, failed, lines = [], [], [], []
    bar = tqdm(files, unit="file", disable=args.no_progress or len(files) < 2, file=sys.stderr)
    for path in bar:
        bar.set_postfix_str(path.name[-30:])
        try:
            if is_video(path):
                frames_bar = tqdm(unit="frame", leave=False, disable=args.no_progress, file=sys.stderr, desc=path.name)

                def progress(done: int, total: int | None, frames_bar=frames_bar) -> None:
                    frames_bar.total = total
                    frames_bar.update(done - frames_bar.n)

                video = predict_video(
                    path, models, detector, every=args.every, max_frames=args.max_frames, progress=progress,
                    source=str(path), tta=args.tta, whole_image_if_none=args.whole_image_if_none,
                )  # fmt: skip
                frames_bar.close()
                videos.append(video)
                results += video.frames
                faces = {f.id for fr in video.frames for f in fr.faces}
                line = f"{path}: {len(video.frames)} frames analysed (every {args.every}), {len(faces)} tracked faces"
                if args.plot != "none":
                    plot = save_timeline(
                        video.table(),
                        models[0].classes,
                        plot_dir / f"{path.stem}_{path.suffix[1:]}_emotions.{args.plot}",
                        path.name,
                    )
                    line += f"; emotion-over-time plot: {plot}"
                lines.append(line + "".join(f"\n  note: {n}" for n in video.notes))
            else:
                r = analyse_image(read_image(path, source=str(path)), models, detector, opts)
                results.append(r)
                lines.append(describe(r))
        except (ValueError, OSError) as exc:
            failed.append(f"{path}: {exc}")
            print(f"error: {path}: {exc}", file=sys.stderr)

    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.suffix.lower() == ".csv":
            results_table(results).to_csv(out, index=False)
        else:
            photos = [r.to_dict() for r in results if r.frame is None]
            vids = [
                {
                    "source": v.source,
                    "fps": v.fps,
                    "every": v.every,
                    "notes": v.notes,
                    "frames": [f.to_dict() for f in v.frames],
                }
                for v in videos
            ]
            payload = {"models": [m.name for m in models], "detector": detector.name, "images": photos, "videos": vids}
            out.write_text(json.dumps(payload, indent=1) + "\n")
        print(f"wrote {out}: {sum(len(r.faces) for r in results)} faces from {len(files) - len(failed)} files")
    for line in lines:
        print(line)
    if failed:
        print(f"{len(failed)} of {len(files)} inputs could not be read", file=sys.stderr)
    return 2 if failed else 0


def describe(r) -> str:  # noqa: ANN001 (ImageResult; imported lazily)
    """One photo as text: each face's box, top emotion with its probability, and any flags."""
    out = [f"{r.source}: {len(r.faces)} face{'s' * (len(r.faces) != 1)} ({r.size[0]}x{r.size[1]})"]
    for f in r.faces:
        x, y, w, h = f.box
        flags = f" [{'; '.join(f.flags)}]" if f.flags else ""
        out.append(f"  face {f.id} at x={x} y={y} {w}x{h}: {f.label} {f.confidence:.0%}{flags}")
    out += [f"  note: {n}" for n in r.notes if n != "no face found" or not r.faces]
    return "\n".join(out)


if __name__ == "__main__":
    sys.exit(main())
