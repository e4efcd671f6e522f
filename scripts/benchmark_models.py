#!/usr/bin/env python
"""Measure every registered model (or ``--models a,b``) on this machine's CPU; print a Markdown table.

Columns: parameters, compute per face (GMAC, one forward pass), checkpoint size as fp16 and fp32
safetensors (what :func:`fer_core.checkpoint.save_checkpoint` writes), training images/s (bf16
autocast, channels_last, batch 64, the model's recipe optimizer, timed after warm-up steps; the model
step only, without the batch augmentation of the real loop), inference latency for one face (batch 1,
median of ``--latency-runs``) and inference throughput at batch 256.

Run it on an otherwise idle machine: anything else on the CPU distorts every column but the first three.

Examples::

    python scripts/benchmark_models.py --out table.md
    python scripts/benchmark_models.py --models aer_cnn,deep_emotion --steps 2 --latency-runs 5
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fer_core.checkpoint import model_meta, save_checkpoint  # noqa: E402
from fer_core.device import autocast, hardware_name, precision_name, set_threads  # noqa: E402
from fer_core.models import create_model, get_recipe, parse_model_list, split_output  # noqa: E402
from fer_core.train.optim import build_optimizer  # noqa: E402

COLUMNS = [
    "model",
    "params (M)",
    "GMAC/face",
    "input",
    "ckpt fp16 (MB)",
    "ckpt fp32 (MB)",
    "train img/s",
    "latency b1 (ms)",
    "infer img/s",
]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="", help="comma-separated model names (default: all registered)")
    p.add_argument("--steps", type=int, default=10, help="timed training steps and batch-256 passes (default 10)")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps before each measurement (default 2)")
    p.add_argument("--latency-runs", type=int, default=50, help="batch-1 passes for the median latency (default 50)")
    p.add_argument("--train-batch", type=int, default=64)
    p.add_argument("--infer-batch", type=int, default=256)
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0: all cores)")
    p.add_argument("--no-amp", action="store_true", help="float32 even where the CPU does bf16 in hardware")
    p.add_argument("--out", default=None, help="also write the Markdown table to this file")
    return p.parse_args(argv)


def gmac_per_face(model: torch.nn.Module, size: int) -> float:
    model.eval()
    with FlopCounterMode(display=False) as counter:  # not under no_grad: its module tracker needs autograd
        model(torch.zeros(1, 1, size, size))
    return counter.get_total_flops() / 2e9


def checkpoint_mb(model: torch.nn.Module, dtype: torch.dtype | None) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.safetensors"
        save_checkpoint(model, path, model_meta(model), dtype=dtype)
        return path.stat().st_size / 1e6


def train_images_per_s(name: str, model: torch.nn.Module, size: int, args: argparse.Namespace) -> float:
    recipe = get_recipe(name)
    opt = build_optimizer(model, recipe.optimizer, recipe.lr, recipe.weight_decay)
    x = torch.randn(args.train_batch, 1, size, size).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 7, (args.train_batch,))
    dev = torch.device("cpu")
    model.train()

    def step() -> None:
        with autocast(dev, not args.no_amp):
            logits, aux = split_output(model(x))
        loss = F.cross_entropy(logits.float(), y, label_smoothing=recipe.label_smoothing)
        for weight, aux_logits in aux.values():
            loss = loss + weight * F.cross_entropy(aux_logits.float(), y)
        loss = loss + model.regularization_loss()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(args.warmup):
        step()
    t0 = time.perf_counter()
    for _ in range(args.steps):
        step()
    return args.steps * args.train_batch / (time.perf_counter() - t0)


@torch.no_grad()
def inference(model: torch.nn.Module, size: int, args: argparse.Namespace) -> tuple[float, float]:
    """(median batch-1 latency in ms, batch-``infer_batch`` images/s)."""
    model.eval()
    dev = torch.device("cpu")

    def run(x: torch.Tensor) -> None:
        with autocast(dev, not args.no_amp):
            model(x)

    one = torch.randn(1, 1, size, size).contiguous(memory_format=torch.channels_last)
    for _ in range(args.warmup):
        run(one)
    times = []
    for _ in range(args.latency_runs):
        t0 = time.perf_counter()
        run(one)
        times.append(time.perf_counter() - t0)
    big = torch.randn(args.infer_batch, 1, size, size).contiguous(memory_format=torch.channels_last)
    run(big)
    t0 = time.perf_counter()
    for _ in range(args.steps):
        run(big)
    return 1000 * statistics.median(times), args.steps * args.infer_batch / (time.perf_counter() - t0)


def _cell(name: str, column: str, fn: Callable[[], str]) -> str:
    """One measurement; a failure is reported on stderr and shown as "failed" rather than ending the table."""
    try:
        return fn()
    except Exception as exc:  # noqa: BLE001 (any failure of one model's measurement)
        print(f"{name}: {column} failed: {type(exc).__name__}: {str(exc).strip()[:300]}", file=sys.stderr)
        return "failed"


def measure(name: str, args: argparse.Namespace) -> dict[str, str]:
    torch.manual_seed(0)
    model = create_model(name)
    size = model.default_cfg.input_size
    row = {
        "model": name,
        "params (M)": f"{sum(p.numel() for p in model.parameters()) / 1e6:.3f}",
        "input": f"{size}x{size}",
        "GMAC/face": _cell(name, "GMAC", lambda: f"{gmac_per_face(model, size):.3f}"),
        "ckpt fp16 (MB)": _cell(name, "fp16 checkpoint", lambda: f"{checkpoint_mb(model, torch.float16):.1f}"),
        "ckpt fp32 (MB)": _cell(name, "fp32 checkpoint", lambda: f"{checkpoint_mb(model, None):.1f}"),
    }
    model = model.to(memory_format=torch.channels_last)
    row["train img/s"] = _cell(name, "training", lambda: f"{train_images_per_s(name, model, size, args):.1f}")
    inferred = _cell(name, "inference", lambda: "{:.2f}|{:.1f}".format(*inference(model, size, args)))
    row["latency b1 (ms)"], row["infer img/s"] = inferred.split("|") if inferred != "failed" else (inferred,) * 2
    return row


def markdown(rows: list[dict[str, str]], header: str) -> str:
    lines = [header, "", "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(r[c] for c in COLUMNS) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        names = parse_model_list(args.models)
    except KeyError as exc:
        print(f"error: {exc.args[0]}", file=sys.stderr)
        return 2
    threads = set_threads(args.threads)
    precision = precision_name(torch.device("cpu"), not args.no_amp)
    header = (
        f"Measured on {hardware_name(torch.device('cpu'))}, torch {torch.__version__}, {threads} threads, "
        f"{precision}, channels_last; train batch {args.train_batch} ({args.steps} steps after {args.warmup} "
        f"warm-up), latency median of {args.latency_runs}, throughput batch {args.infer_batch}."
    )
    rows = []
    for name in names:
        rows.append(measure(name, args))
        print(" | ".join(f"{c}={rows[-1][c]}" for c in COLUMNS), file=sys.stderr, flush=True)
    table = markdown(rows, header)
    print(table)
    if args.out:
        Path(args.out).write_text(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
