"""Turn a finished run into what ships in ``checkpoints/<name>/``.

Shipped: ``model.safetensors`` (+ ``model.json``), ``report.json``, ``probs.npz`` and ``log.csv``;
never the optimizer or resume state. Weights are stored as float16 when that leaves PrivateTest
accuracy unchanged to 0.1 points (checked here, on the real data), else float32. The shipped report
is computed from the shipped file itself, so it is exactly what a user reproduces.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

from .bench import latency_ms
from .checkpoint import load_checkpoint, save_checkpoint
from .data import FaceSet
from .eval import evaluate_model, predict_probs, write_report
from .eval.report import headline


def evaluate_checkpoint(weights: Path, splits: dict[str, FaceSet], folder: Path | None = None) -> dict:
    """Evaluate a checkpoint; writes ``report.json`` and ``probs.npz`` into ``folder`` (default: beside it)."""
    weights = Path(weights)
    model, meta = load_checkpoint(weights)
    report, arrays = evaluate_model(model, splits)
    report.update(model=meta["model"], epochs=meta.get("epochs"), weights=weights.name)
    write_report(folder or weights.parent, report, arrays)
    return report


def export_run(run_dir: Path, dest: Path, splits: dict[str, FaceSet], tolerance: float = 0.001) -> dict:
    """Copy a run's best checkpoint (fp16 if harmless), its report, probabilities and log into ``dest``."""
    run_dir, dest = Path(run_dir), Path(dest)
    model, meta = load_checkpoint(run_dir / "best.safetensors")
    private = splits["PrivateTest"]

    def private_acc(m: torch.nn.Module) -> float:
        return float((predict_probs(m, private.images, amp=False).argmax(1) == private.labels).float().mean())

    fp32_acc = private_acc(model)
    half = load_checkpoint(run_dir / "best.safetensors")[0].half().float()  # what an fp16 file loads as
    fp16_acc = private_acc(half)
    use_fp16 = abs(fp16_acc - fp32_acc) <= tolerance
    meta["fp16_check"] = {"PrivateTest_fp32": fp32_acc, "PrivateTest_fp16": fp16_acc, "shipped_fp16": use_fp16}
    # the report describes the shipped weights exactly: ``half`` is what the fp16 file loads as
    report, arrays = evaluate_model(half if use_fp16 else model, splits)
    report.update(model=meta["model"], epochs=meta.get("epochs"), weights="model.safetensors")
    write_report(dest, report, arrays)
    meta["metrics"] = {**meta.get("metrics", {}), **headline(report)}
    meta["latency_ms"] = round(latency_ms(model), 2)  # one face, batch 1, fp32, all CPU threads
    save_checkpoint(model, dest / "model.safetensors", meta, dtype=torch.float16 if use_fp16 else None)
    shutil.copy2(run_dir / "log.csv", dest / "log.csv")
    return report
