#!/usr/bin/env python
"""Evaluate a checkpoint on FER2013 PublicTest and PrivateTest (no TTA, flip TTA, ten-crop TTA).

Writes ``report.json`` (accuracy, top-2, macro-F1, per-class precision/recall/F1, confusion
matrices) and ``probs.npz`` (per-sample class probabilities) next to the checkpoint, or into --out.

    python scripts/evaluate.py --checkpoint checkpoints/vggnet/model.safetensors --data ~/fer2013
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fer_core.checkpoint import CheckpointError  # noqa: E402
from fer_core.data import DataError, load_fer2013  # noqa: E402
from fer_core.export import evaluate_checkpoint  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True, help="a .safetensors checkpoint written by FER Explorer")
    p.add_argument("--data", default=None, help="FER2013 folder or fer2013.csv (default: $FER2013_DIR)")
    p.add_argument("--out", default=None, help="folder for report.json and probs.npz (default: the checkpoint's)")
    args = p.parse_args(argv)
    try:
        splits = load_fer2013(args.data)
        report = evaluate_checkpoint(Path(args.checkpoint), splits, Path(args.out) if args.out else None)
    except (DataError, CheckpointError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{'split':<12} {'tta':<8} {'acc':>7} {'top2':>7} {'macroF1':>8}")
    for split, by_tta in report["splits"].items():
        for tta, m in by_tta.items():
            print(f"{split:<12} {tta:<8} {m['accuracy']:7.4f} {m['top2_accuracy']:7.4f} {m['macro_f1']:8.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
