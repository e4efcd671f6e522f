#!/usr/bin/env python
"""Train every registered model (or ``--models a,b``) on FER2013 with its registered recipe.

Each model is trained in turn into ``<out>/<model>/`` (select on PublicTest), then its best
checkpoint is evaluated on PublicTest and PrivateTest (no TTA, flip, ten-crop) and a summary table is
written to ``<out>/summary.md`` and ``<out>/summary.csv``. ``--ship DIR`` also exports each evaluated
run to ``DIR/<model>/`` (what ``checkpoints/`` holds).

Under ``torchrun`` the same command trains each model with DistributedDataParallel, one process per
GPU (or CPU process group, with gloo): ``--batch-size`` stays the global batch, only rank 0 logs,
evaluates and writes files, and ``--resume`` continues a run on any number of ranks.

Examples::

    python scripts/train_all.py --data ~/fer2013                       # the whole zoo
    python scripts/train_all.py --models vggnet --epochs 5 --data ~/fer2013
    nohup python scripts/train_all.py --models vggnet --budget-minutes 120 --resume &   # resumable
    torchrun --nproc_per_node=8 scripts/train_all.py --models sotaresemote_l --data ~/fer2013 --resume
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fer_core.data import PRESETS, DataError, load_fer2013, load_notes  # noqa: E402
from fer_core.device import set_threads  # noqa: E402
from fer_core.export import evaluate_checkpoint, export_run  # noqa: E402
from fer_core.models import list_models, model_entry, parse_model_list  # noqa: E402
from fer_core.train import TrainConfig, distributed, run_finished, train  # noqa: E402


def json_object(text: str) -> dict:
    """``--model-args``: a JSON object, refused with the reason otherwise (argparse shows the message)."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not JSON ({exc})") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("must be a JSON object, e.g. '{\"dropout\": 0}'")
    return value


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
    g.add_argument(
        "--model-args",
        type=json_object,
        default={},
        metavar="JSON",
        help="""architecture arguments for every model, e.g. '{"dropout": 0}' (default: the model's own)""",
    )
    r = p.add_argument_group("run")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda, cuda:1 ...")
    r.add_argument("--threads", type=int, default=0, help="CPU threads (0: all cores)")
    r.add_argument("--max-train-samples", type=int, default=0, help="train on a stratified subset (quick runs)")
    r.add_argument("--no-amp", action="store_true", help="float32 throughout: no bf16 autocast (CPU) or AMP (CUDA)")
    r.add_argument("--no-eval", action="store_true", help="skip the final evaluation")
    r.add_argument("--no-progress", action="store_true", help="no progress bars (for logs)")
    d = p.add_argument_group("distributed (under torchrun; see the README's 'Training on many GPUs')")
    d.add_argument("--sync-bn", action="store_true", help="BatchNorm statistics over the global batch (GPUs only)")
    d.add_argument(
        "--dist-timeout-minutes",
        type=float,
        default=distributed.DEFAULT_TIMEOUT_MINUTES,
        help="a rank waiting longer than this on the others fails the job (default: %(default)s)",
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)  # its own lines (budget, per-model summary) reach a `> log` now
    ddp = int(os.environ.get("RANK", -1)) != -1  # started by torchrun: one process per rank
    rank = distributed.setup(args.device, args.dist_timeout_minutes)[0] if ddp else 0
    trained: list[str] = []
    try:
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
        for note in load_notes(splits) if rank == 0 else []:  # stray files, empty classes: said, not hidden
            print(f"note: {note}", file=sys.stderr)
        rows: list[dict] = []
        for name in train_models(args, names, splits, master=rank == 0):
            trained.append(name)
            if not ddp:  # one process: evaluate each model as soon as it is trained
                evaluate(name, args, splits, rows)
    finally:
        distributed.teardown()
    # under torchrun, rank 0 evaluates once every rank has left: no rank waits on it (and times out)
    if ddp and rank == 0:
        set_threads(args.threads)  # the machine's cores are rank 0's now
        for name in trained:
            evaluate(name, args, splits, rows)
    return 0


def train_models(args: argparse.Namespace, names: list[str], splits: dict, master: bool = True) -> Iterator[str]:
    """Train each model in turn (or find its finished run) and yield its name, until the budget is spent."""
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
    stopped_early = False  # the last run stopped on the budget an epoch early: minutes left, but not an epoch
    for name in names:
        remaining = args.budget_minutes - (time.time() - start) / 60 if args.budget_minutes else 0.0
        if distributed.any_rank(args.budget_minutes and (remaining <= 0 or stopped_early)):  # all ranks stop together
            if master:
                print(f"budget spent; {name} not started")
            return
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
            amp=not args.no_amp,
            model_args=args.model_args,
            sync_bn=args.sync_bn,
        )
        run_dir = Path(args.out) / name
        if args.resume and run_finished(run_dir):
            if master:
                print(f"{name}: finished run found in {run_dir}, not training again")
        else:
            train(cfg, splits, resume=args.resume, progress=not args.no_progress)
        yield name
        stopped_early = not run_finished(run_dir)  # the next model's first epoch always runs: it would overrun


def evaluate(name: str, args: argparse.Namespace, splits: dict, rows: list[dict]) -> None:
    """Evaluate (and with ``--ship``, export) a trained run; add its row to the summary files."""
    run_dir = Path(args.out) / name
    finished = run_finished(run_dir)
    if args.no_eval or not (run_dir / "best.safetensors").is_file():
        return
    report = (
        export_run(run_dir, Path(args.ship) / name, splits)
        if args.ship and finished
        else evaluate_checkpoint(run_dir / "best.safetensors", splits)
    )
    rows.append(summary_row(name, report, finished))
    write_summary(Path(args.out), rows)
    print(f"{name}: " + ", ".join(f"{k}={v}" for k, v in rows[-1].items() if k != "model"))


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
