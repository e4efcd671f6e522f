#!/usr/bin/env python
"""Compute and store the robustness report of checkpoints: calibration, corruptions, other datasets.

For each checkpoint: temperature scaling fitted on PublicTest, calibration (reliability bins, ECE, NLL
before and after) and accuracy under every corruption at severities 1-5 on PrivateTest, written to
``robustness.json`` beside it (the temperature every page calibrates with is read from there). With
``--cross FOLDER`` (repeatable) also each class-folder dataset, into ``crossdata.json``.

    python scripts/compute_robustness.py --data ~/fer2013                    # every shipped checkpoint
    python scripts/compute_robustness.py --checkpoints deep_emotion,vggnet --threads 1
    python scripts/compute_robustness.py --checkpoints user_models/mine --cross ~/datasets/jaffe
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fer_core.checkpoint import CheckpointError, load_checkpoint  # noqa: E402
from fer_core.data import DataError, load_fer2013  # noqa: E402
from fer_core.device import set_threads  # noqa: E402
from fer_core.eval.calibration import stored_temperature  # noqa: E402
from fer_core.eval.crossdata import FACE_MODES, crossdata_report, load_face_folder, store_crossdata  # noqa: E402
from fer_core.eval.robustness import compute_and_store  # noqa: E402
from fer_core.zoo import checkpoints_root, list_checkpoints  # noqa: E402


def resolve(names: str) -> list[Path]:
    """Checkpoint files from names of the shipped zoo, folders or .safetensors paths (empty: every shipped one)."""
    shipped = {e.name: e for e in list_checkpoints() if e.ok}
    if not names:
        return [e.weights for e in shipped.values()]
    out = []
    for item in (n.strip() for n in names.split(",") if n.strip()):
        path = shipped[item].weights if item in shipped else Path(item)
        out.append(path / "model.safetensors" if path.is_dir() else path)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=None, help="FER2013 folder or fer2013.csv (default: $FER2013_DIR)")
    p.add_argument("--checkpoints", default="", help=f"comma-separated names in {checkpoints_root()}, folders or files")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0: all cores)")
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--amp", action="store_true", help="autocast (bf16 on a CPU with bf16 hardware) instead of float32")
    p.add_argument("--seed", type=int, default=0, help="seed of the random corruptions (noise, rotation direction)")
    p.add_argument("--cross", action="append", default=[], help="a class-folder dataset to evaluate too")
    p.add_argument("--faces", choices=FACE_MODES, default="auto", help="--cross: how images become faces")
    args = p.parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)  # each model's row reaches a `> log` file as it is done
    set_threads(args.threads)
    try:
        weights = resolve(args.checkpoints)
        splits = load_fer2013(args.data)
    except (DataError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not weights:
        print("no checkpoints to evaluate", file=sys.stderr)
        return 2
    print(f"{'model':<24} {'acc':>6} {'T':>5} {'ECE':>6} {'ECE(T)':>7} {'NLL':>6} {'NLL(T)':>7} {'mCA':>6} {'s':>6}")
    for w in weights:
        try:
            r = compute_and_store(w, splits, batch_size=args.batch_size, amp=args.amp, seed=args.seed)
        except (CheckpointError, DataError) as exc:
            print(f"{w}: {exc}", file=sys.stderr)
            continue
        c = r["calibration"]
        print(
            f"{r['model']:<24} {r['clean']['accuracy']:6.4f} {c['temperature']:5.2f} {c['before']['ece']:6.4f} "
            f"{c['after']['ece']:7.4f} {c['before']['nll']:6.4f} {c['after']['nll']:7.4f} "
            f"{r['mean_corruption_accuracy']:6.4f} {r['seconds']:6.1f}"
        )
        for folder in args.cross:
            t0 = time.perf_counter()
            model, meta = load_checkpoint(w)
            data = load_face_folder(folder, faces=args.faces)
            x = crossdata_report(model, data, stored_temperature(meta), batch_size=args.batch_size)
            x["model"] = r["model"]
            store_crossdata(w.parent, x)
            print(
                f"  {x['dataset']}: {x['n']} faces, accuracy {x['accuracy']:.4f} "
                f"({x['accuracy_present_classes']:.4f} among its classes), macro-F1 {x['macro_f1']:.4f}; "
                f"left out: {', '.join(x['classes_left_out']) or 'none'} ({time.perf_counter() - t0:.1f} s)"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
