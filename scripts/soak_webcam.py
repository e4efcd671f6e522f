"""Soak test of the live pipeline: N minutes of camera-rate frames through ``LiveProcessor``, and
the process's memory growth (the issue's bar: under 50 MB over 10 minutes).

Frames arrive at ``--fps`` through ``LatestFrameWorker`` (the newest frame is analysed, older ones
dropped, as in the page), with a face that moves, disappears and comes back, so the tracker,
smoother, history and timeline all churn. Resident memory is sampled every ``--every`` seconds
after a warm-up minute (or a tenth of the run, if shorter); the growth is last minus first sample.

    python scripts/soak_webcam.py --minutes 10
    python scripts/soak_webcam.py --minutes 0.2 --model alpha   # quick check
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import av
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmark_webcam import frame_with_face  # noqa: E402

from fer_core.inference import load_models  # noqa: E402
from fer_core.live import LatestFrameWorker, LiveConfig, LiveProcessor, default_model  # noqa: E402
from fer_core.zoo import checkpoints_root, list_checkpoints, zoo_table  # noqa: E402


def rss_mb() -> float:
    """Current resident memory (Linux /proc; falls back to the peak from getrusage elsewhere)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--model", default="", help="checkpoint name (default: the page's default)")
    parser.add_argument("--root", type=Path, default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--every", type=float, default=10.0, help="seconds between memory samples")
    parser.add_argument("--limit-mb", type=float, default=50.0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    root = args.root or checkpoints_root()
    entries = [e for e in list_checkpoints(root) if e.ok]
    name = args.model or default_model(zoo_table(entries))
    if not name:
        sys.exit(f"no usable checkpoints in {root}")
    processor = LiveProcessor(load_models(name, root=root)[0], "haar", LiveConfig())
    worker = LatestFrameWorker(processor.recv, on_drop=processor.drop)
    base = frame_with_face()
    empty = np.full_like(base, 40)
    total, warm = args.minutes * 60, min(60.0, args.minutes * 6)
    start = time.perf_counter()
    samples: list[tuple[float, float]] = []
    i, next_sample = 0, warm
    while (now := time.perf_counter() - start) < total:
        shift = int(20 * np.sin(i / 45))
        rgb = empty if (i // 150) % 5 == 4 else np.roll(base, shift, axis=1)  # the face leaves every 5th 5 s
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
        frame.pts = i
        worker.submit(frame)
        worker.handled.clear()  # the page would show it; keep nothing
        i += 1
        if now >= next_sample:
            samples.append((now, rss_mb()))
            next_sample += args.every
            s = processor.stats()
            print(
                f"{now:6.0f} s  rss {samples[-1][1]:7.1f} MB  analysed {s.frames}  dropped {s.dropped}  "
                f"{s.fps:4.1f} fps  {s.latency_ms:5.1f} ms",
                flush=True,
            )
        time.sleep(max(0.0, (i / args.fps) - (time.perf_counter() - start)))
    worker.close()
    samples.append((time.perf_counter() - start, rss_mb()))
    growth = samples[-1][1] - samples[0][1]
    s = processor.stats()
    print(
        f"\nmodel {name}: {i} frames offered, {s.frames} analysed, {s.dropped} dropped; "
        f"timeline {len(processor.timeline())} rows; memory growth {growth:+.1f} MB after warm-up "
        f"(limit {args.limit_mb:.0f} MB)"
    )
    sys.exit(0 if growth < args.limit_mb else 1)


if __name__ == "__main__":
    main()
