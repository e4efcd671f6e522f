"""The evaluation report of a checkpoint under the standard protocol.

PublicTest and PrivateTest, each without TTA, with horizontal-flip TTA and with ten-crop TTA:
metrics (:mod:`.metrics`) in ``report.json`` and per-sample probabilities in ``probs.npz`` (arrays
``<split>_<tta>`` of float16 (N, C), plus ``<split>_labels`` and ``<split>_names``), so the dashboard
can browse predictions and build ensembles without running the models again.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch.nn as nn

from ..checkpoint import atomic_write_bytes, atomic_write_text
from ..data import FaceSet
from ..device import precision_name
from .metrics import classification_metrics
from .predict import predict_probs

TTAS = ("none", "flip", "tencrop")
REPORT_SPLITS = ("PublicTest", "PrivateTest")


def evaluate_model(
    model: nn.Module,
    splits: dict[str, FaceSet],
    ttas: tuple[str, ...] = TTAS,
    batch_size: int = 256,
    amp: bool = False,
) -> tuple[dict, dict[str, np.ndarray]]:
    """Returns ``(report, arrays)``: metrics per split and TTA, and the arrays for ``probs.npz``.

    Float32 by default, whatever the machine trains in, so a report reproduces on every machine:
    bf16 and float32 land up to 7 PrivateTest faces apart (measured on the shipped models), and bf16
    on a CPU without bf16 hardware runs at a twentieth of float32's speed (reproducing bf16 reports
    there took CI past its time limit). The report says its precision."""
    report: dict = {"splits": {}, "precision": precision_name(next(model.parameters()).device, amp)}
    arrays: dict[str, np.ndarray] = {}
    for split in REPORT_SPLITS:
        if split not in splits:
            continue
        data = splits[split]
        arrays[f"{split}_labels"] = data.labels.numpy().astype(np.int8)
        arrays[f"{split}_names"] = np.array(data.names)
        report["splits"][split] = {}
        for tta in ttas:
            t0 = time.perf_counter()
            probs = predict_probs(model, data.images, tta=tta, batch_size=batch_size, amp=amp)
            metrics = classification_metrics(probs.numpy(), data.labels.numpy(), data.classes)
            metrics["seconds"] = round(time.perf_counter() - t0, 2)
            report["splits"][split][tta] = metrics
            arrays[f"{split}_{tta}"] = probs.numpy().astype(np.float16)
    return report, arrays


def write_report(folder: Path, report: dict, arrays: dict[str, np.ndarray]) -> None:
    folder = Path(folder)
    atomic_write_text(folder / "report.json", json.dumps(report, indent=1) + "\n")

    def write_npz(tmp: Path) -> None:
        with open(tmp, "wb") as f:  # a file object, so numpy does not append ".npz" to the temporary name
            np.savez_compressed(f, **arrays)

    atomic_write_bytes(folder / "probs.npz", write_npz)


def load_probs(folder: Path) -> dict[str, np.ndarray]:
    with np.load(Path(folder) / "probs.npz", allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def headline(report: dict) -> dict[str, float]:
    """The numbers tables show: accuracy and macro-F1 per split, single crop and ten-crop."""
    out = {}
    for split, by_tta in report.get("splits", {}).items():
        for tta, m in by_tta.items():
            out[f"{split}_{tta}_acc"] = m["accuracy"]
            out[f"{split}_{tta}_f1"] = m["macro_f1"]
    return out
