#!/usr/bin/env python
"""Time the full robustness report of one checkpoint on FER2013 (prints seconds; writes nothing).

Calibration (PublicTest + PrivateTest) and every corruption at five severities on PrivateTest, batched,
bf16 autocast on the CPU, exactly what ``scripts/compute_robustness.py`` stores.

    python scripts/benchmark_robustness.py --checkpoint deep_emotion --threads 1 --data ~/fer2013
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fer_core.checkpoint import load_checkpoint  # noqa: E402
from fer_core.data import load_fer2013  # noqa: E402
from fer_core.device import hardware_name, set_threads  # noqa: E402
from fer_core.eval.robustness import robustness_report  # noqa: E402
from fer_core.zoo import list_checkpoints  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", default="deep_emotion", help="a shipped checkpoint's name or a .safetensors path")
    p.add_argument("--data", default=None, help="FER2013 folder or fer2013.csv (default: $FER2013_DIR)")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0: all cores)")
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--amp", action="store_true", help="autocast (bf16 on a CPU with bf16 hardware) instead of float32")
    args = p.parse_args()
    threads = set_threads(args.threads)
    shipped = {e.name: e.weights for e in list_checkpoints() if e.ok}
    weights = shipped.get(args.checkpoint, Path(args.checkpoint))
    t0 = time.perf_counter()
    splits = load_fer2013(args.data)
    load_s = time.perf_counter() - t0
    model, _ = load_checkpoint(weights)
    t0 = time.perf_counter()
    report = robustness_report(model, splits, batch_size=args.batch_size, amp=args.amp)
    seconds = time.perf_counter() - t0
    cells = sum(len(r["accuracy"]) for r in report["corruptions"].values())
    faces = len(splits["PublicTest"]) + len(splits["PrivateTest"]) * (1 + cells)
    print(f"checkpoint: {weights}")
    print(f"hardware: {hardware_name(torch.device('cpu'))}, torch threads {threads}, load average {os.getloadavg()}")
    print(f"data load (decode cache): {load_s:.1f} s")
    print(
        f"full robustness report: {seconds:.1f} s ({faces:,} faces through the model, {faces / seconds:.0f} faces/s; "
        f"{len(report['corruptions'])} corruptions x 5 severities)"
    )
    print(
        f"clean accuracy {report['clean']['accuracy']:.4f}, mean corruption accuracy "
        f"{report['mean_corruption_accuracy']:.4f}, T {report['calibration']['temperature']:.3f}"
    )
    print(f"seconds: {seconds:.1f}")


if __name__ == "__main__":
    main()
