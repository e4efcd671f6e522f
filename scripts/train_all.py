#!/usr/bin/env python
"""Train every registered model (or ``--models a,b``) on FER2013 with its registered recipe.

Each model is trained in turn into ``<out>/<model>/`` (select on PublicTest), then its best
checkpoint is evaluated on PublicTest and PrivateTest (no TTA, flip, ten-crop) and a summary table is
written to ``<out>/summary.md`` and ``<out>/summary.csv``. ``--ship DIR`` also exports each evaluated
run to ``DIR/<model>/`` (what ``checkpoints/`` holds).

Examples::

    python scripts/train_all.py --data ~/fer2013                       # the whole zoo
    python scripts/train_all.py --models vggnet --epochs 5 --data ~/fer2013
    nohup python scripts/train_all.py --models vggnet --budget-minutes 120 --resume &   # resumable
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fer_core.data import PRESETS, DataError, load_fer2013  # noqa: E402
from fer_core.export import evaluate_checkpoint, export_run  # noqa: E402
from fer_core.models import list_models, model_entry, parse_model_list  # noqa: E402
from fer_core.train import TrainConfig, run_finished, train  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--models",
        default="",
        help="comma-separated model names (default: every registered model: " + ", ".join(list_models()) + ")",
    )
    p.add_argument("--data", default=None, help="FER2013 folder (Kaggle layout) or fer2013.csv; default: $FER2013_DIR")
    p.add_argument("--out", default="runs", help="folder for run folders and the summary (default: runs)")
    p.add_argument("--ship", default=None, metavar="DIR", help="also export each evaluated model to DIR/<model>/")
    p.add_argument("--resume", action="store_true", help="continue runs found in --out; skip finished ones")
    p.add_argument(
        "--budget-minutes",
        type=float,
        default=0.0,
        help="wall-clock budget for the whole command; training stops at an epoch boundary (0: none)",
    )
    g = p.add_argument_group("recipe overrides (default: each model's registered recipe)")
    g.add_argument("--epochs", type=int)
    g.add_argument("--batch-size", type=int)
    g.add_argument("--lr", type=float)
    g.add_argument("--weight-decay", type=float)
    g.add_argument("--optimizer", choices=["adamw", "adam", "sgd"])
    g.add_argument("--schedule", choices=["cosine", "onecycle", "plateau", "constant"])
    g.add_argument("--augment", choices=sorted(PRESETS))
    g.add_argument("--label-smoothing", type=float)
    g.add_argument("--ema-decay", type=float, help="EMA of weights, e.g. 0.999 (0: off)")
    g.add_argument("--early-stop-patience", type=int, help="epochs without PublicTest gain (0: off)")
    r = p.add_argument_group("run")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda, cuda:1 ...")
    r.add_argument("--threads", type=int, default=0, help="CPU threads (0: all cores)")
    r.add_argument("--max-train-samples", type=int, default=0, help="train on a stratified subset (quick runs)")
    r.add_argument("--no-eval", action="store_true", help="skip the final evaluation")
    r.add_argument("--no-progress", action="store_true", help="no progress bars (for logs)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        names = parse_model_list(args.models)
    except KeyError as exc:
        print(f"error: {exc.args[0]}", file=sys.stderr)
        return 2
    try:
        splits = load_fer2013(args.data)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    overrides = {
        k: getattr(args, k)
        for k in (
            "epochs",
            "batch_size",
            "lr",
            "weight_decay",
            "optimizer",
            "schedule",
            "augment",
            "label_smoothing",
            "ema_decay",
            "early_stop_patience",
        )
    }
    start = time.time()
    rows = []
    for name in names:
        remaining = args.budget_minutes - (time.time() - start) / 60 if args.budget_minutes else 0.0
        if args.budget_minutes and remaining <= 0:
            print(f"budget spent; {name} not started")
            break
        cfg = TrainConfig.from_recipe(
            name,
            **overrides,
            data=args.data,
            out=args.out,
            budget_minutes=remaining,
            seed=args.seed,
            device=args.device,
            threads=args.threads,
            max_train_samples=args.max_train_samples,
        )
        run_dir = Path(args.out) / name
        if args.resume and run_finished(run_dir):
            print(f"{name}: finished run found in {run_dir}, not training again")
        else:
            train(cfg, splits, resume=args.resume, progress=not args.no_progress)
        finished = run_finished(run_dir)
        if args.no_eval or not (run_dir / "best.safetensors").is_file():
            continue
        report = (
            export_run(run_dir, Path(args.ship) / name, splits)
            if args.ship and finished
            else evaluate_checkpoint(run_dir / "best.safetensors", splits)
        )
        rows.append(summary_row(name, report, finished))
        write_summary(Path(args.out), rows)
        print(f"{name}: " + ", ".join(f"{k}={v}" for k, v in rows[-1].items() if k != "model"))
    return 0


def summary_row(name: str, report: dict, finished: bool) -> dict:
    s = report["splits"]
    pct = lambda split, tta: round(100 * s[split][tta]["accuracy"], 2)  # noqa: E731
    return {
        "model": name,
        "epochs": report.get("epochs"),
        "finished": finished,
        "PublicTest": pct("PublicTest", "none"),
        "PublicTest_tencrop": pct("PublicTest", "tencrop"),
        "PrivateTest": pct("PrivateTest", "none"),
        "PrivateTest_flip": pct("PrivateTest", "flip"),
        "PrivateTest_tencrop": pct("PrivateTest", "tencrop"),
        "PrivateTest_macroF1": round(100 * s["PrivateTest"]["none"]["macro_f1"], 2),
        "published": model_entry(name).published,
    }


def write_summary(out: Path, rows: list[dict]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "summary.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    lines += ["| " + " | ".join(str(v) for v in r.values()) + " |" for r in rows]
    (out / "summary.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
