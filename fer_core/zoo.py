"""The checkpoints a user can explore: every ``<root>/<name>/model.safetensors`` with its report.

A broken checkpoint (unreadable or truncated file, unknown architecture, weights that do not fit the
architecture, a stray pickle) is listed with its error instead of taking the listing down, and is never
offered for loading, so every other model still works. Pickled files are never opened.
"""

from __future__ import annotations

import copy
import functools
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from .checkpoint import CheckpointError, inspect_checkpoint

# weights files of other tools, often pickles: listed as broken, never opened
PICKLE_SUFFIXES = (".pt", ".pth", ".pkl", ".pickle", ".bin", ".ckpt", ".joblib", ".tar")
DEFAULT_ROOT = Path(__file__).resolve().parent.parent / "checkpoints"


def checkpoints_root() -> Path:
    return Path(os.environ.get("FER_CHECKPOINTS", DEFAULT_ROOT))


def user_models_root() -> Path:
    """Models made by fine-tuning jobs (``FER_USER_MODELS``, default ``user_models/``): kept apart from
    the shipped ``checkpoints/`` so a user's model can never overwrite a shipped one."""
    return Path(os.environ.get("FER_USER_MODELS", DEFAULT_ROOT.parent / "user_models"))


@dataclass
class ZooEntry:
    name: str
    folder: Path
    meta: dict[str, Any] | None = None
    report: dict[str, Any] | None = None
    error: str | None = None
    origin: str = "shipped"  # "shipped" (checkpoints/) or "user" (user_models/, made by a fine-tuning job)

    @property
    def weights(self) -> Path:
        return self.folder / "model.safetensors"

    @property
    def ok(self) -> bool:
        return self.error is None


def list_zoo(root: str | Path | None = None, user_root: str | Path | None = None) -> list[ZooEntry]:
    """Shipped checkpoints, then the user's models (``origin="user"``), as pages list them."""
    user_root = Path(user_root) if user_root is not None else user_models_root()
    return list_checkpoints(root) + list_checkpoints(user_root, origin="user")


def list_checkpoints(root: str | Path | None = None, origin: str = "shipped") -> list[ZooEntry]:
    root = Path(root) if root is not None else checkpoints_root()
    entries = []
    for folder in sorted(p for p in root.glob("*") if p.is_dir()) if root.is_dir() else []:
        entry = ZooEntry(folder.name, folder, origin=origin)
        if not entry.weights.is_file():
            others = sorted(p.name for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES)
            if not others:
                continue
            entry.error = f"{folder}: no model.safetensors (found {', '.join(others)}; pickled files are never loaded)"
        else:
            entry.meta, entry.error = _inspect(entry.weights)
            report = folder / "report.json"
            if report.is_file():
                try:
                    entry.report = json.loads(report.read_text())
                except (OSError, json.JSONDecodeError) as exc:
                    entry.error = entry.error or f"{report}: unreadable report ({exc})"
        entries.append(entry)
    return entries


def _inspect(weights: Path) -> tuple[dict[str, Any] | None, str | None]:
    """``(meta, None)`` for a checkpoint that will load, ``(None, reason)`` otherwise (see
    :func:`fer_core.checkpoint.inspect_checkpoint`); cached per file version, since ``load_models`` lists
    the zoo on every call."""
    stat = weights.stat()
    meta, error = _inspect_version(str(weights), stat.st_mtime_ns, stat.st_size)
    return copy.deepcopy(meta), error


@functools.lru_cache(maxsize=256)
def _inspect_version(weights: str, mtime_ns: int, size: int) -> tuple[dict[str, Any] | None, str | None]:
    try:
        return inspect_checkpoint(weights), None
    except CheckpointError as exc:
        return None, str(exc)


def parameter_count(weights: Path) -> int:
    """Parameters in a checkpoint, read from the tensor shapes (BN running statistics excluded)."""
    from safetensors import safe_open

    total = 0
    with safe_open(str(weights), framework="pt") as f:
        for k in f.keys():  # noqa: SIM118 (safe_open is not a dict)
            if not k.endswith(("running_mean", "running_var", "num_batches_tracked")):
                total += math.prod(f.get_slice(k).get_shape())
    return total


def zoo_table(entries: list[ZooEntry]) -> pd.DataFrame:
    """One row per checkpoint, the numbers the Model zoo page and MODEL_ZOO.md show."""
    from .models import model_entry

    rows = []
    for e in entries:
        row: dict[str, Any] = {"model": e.name, "origin": e.origin, "status": "ok" if e.ok else f"broken: {e.error}"}
        if e.ok and e.meta is not None:
            meta, splits = e.meta, (e.report or {}).get("splits", {})
            try:
                published = model_entry(meta["model"]).published
            except KeyError:
                published = ""
            cfg = meta.get("train_config", {})
            row.update(
                {
                    "architecture": meta["model"],
                    "params (M)": round(parameter_count(e.weights) / 1e6, 2),
                    "size (MB)": round(e.weights.stat().st_size / 1e6, 1),
                    "best epoch": meta.get("epochs"),  # the checkpoint is the epoch selected on PublicTest
                    "train hours": round(meta.get("wall_time_s", 0) / 3600, 2),  # up to that epoch
                    "hardware": meta.get("hardware", ""),
                    "CPU ms/face": meta.get("latency_ms"),
                }
            )
            for split in ("PublicTest", "PrivateTest"):
                m = splits.get(split, {})
                row[f"{split} acc"] = round(100 * m["none"]["accuracy"], 2) if "none" in m else None
                row[f"{split} ten-crop"] = round(100 * m["tencrop"]["accuracy"], 2) if "tencrop" in m else None
                row[f"{split} macro-F1"] = round(100 * m["none"]["macro_f1"], 2) if "none" in m else None
            n = [splits.get(split, {}).get("none", {}).get("n") for split in ("PublicTest", "PrivateTest")]
            row["test faces"] = " / ".join(f"{k:,}" for k in n) if all(n) else None  # a fine-tune's folder may be small
            row["published"] = published
            row["recipe"] = (
                f"{cfg.get('optimizer')} lr {cfg.get('lr')}, {cfg.get('schedule')} schedule, "
                f"batch {cfg.get('batch_size')}, augmentation '{cfg.get('augment')}'"
            )
        rows.append(row)
    return pd.DataFrame(rows)


# The project's accuracy targets (PrivateTest, single crop unless stated), shown beside each result.
TARGETS: dict[str, str] = {
    "lobo_net": ">= 64%",
    "aer_cnn": ">= 63%",
    "msff_cnn": ">= 63%",
    "drf_msam": ">= 63%",
    "deep_emotion": ">= 66%",
    "vggnet": ">= 71%; >= 72.5% ten-crop",
    "sotaresemote_s": ">= 70%",
    "ensemble": ">= 74%",
}

# the columns in %, shown with two decimals alike on the page and in MODEL_ZOO.md (58.60, not 58.6 beside 60.01)
PERCENT_COLUMNS = [f"{s} {m}" for s in ("PublicTest", "PrivateTest") for m in ("acc", "ten-crop", "macro-F1")]
ZOO_COLUMNS = [
    "model",
    "params (M)",
    "size (MB)",
    "best epoch",
    "train hours",
    "CPU ms/face",
    "PublicTest acc",
    "PrivateTest acc",
    "PrivateTest ten-crop",
    "PrivateTest macro-F1",
    "target",
    "published",
]


def ensemble_summary(entries: list[ZooEntry], tta: str = "none") -> dict[str, Any] | None:
    """The zoo's ensemble: members chosen greedily on PublicTest, accuracy on both splits."""
    from .compare import align, ensemble, greedy_ensemble, load_predictions

    usable = [e for e in entries if e.ok and e.report and (e.folder / "probs.npz").is_file()]
    if len(usable) < 2:
        return None
    val = dict(
        zip(
            [e.name for e in usable],
            align([load_predictions(e.folder, "PublicTest", tta) for e in usable]),
            strict=True,
        )
    )
    members = greedy_ensemble(val)
    test = align([load_predictions(e.folder, "PrivateTest", tta) for e in usable if e.name in members])
    return {
        "members": members,
        "PublicTest": ensemble([val[m] for m in members]).accuracy,
        "PrivateTest": ensemble(test).accuracy,
    }


def render_model_zoo(entries: list[ZooEntry]) -> str:
    """``checkpoints/MODEL_ZOO.md``, generated from the shipped reports (``scripts/make_model_zoo.py``)."""
    table = zoo_table([e for e in entries if e.ok])
    lines = [
        "# Model zoo",
        "",
        "Generated by `python scripts/make_model_zoo.py` from the reports in `checkpoints/`; do not edit by hand.",
        "Protocol: trained on FER2013 Training, selected on PublicTest, reported on PrivateTest (accuracy in %,",
        "single centre crop unless stated). CPU latency: one face, batch 1, fp32, on the training machine.",
    ]
    # reports from before they said their precision were all bf16 autocast
    precisions = sorted({e.report.get("precision", "bf16 autocast") for e in entries if e.ok and e.report})
    if precisions:
        lines.append(f"Reports computed in {' and '.join(precisions)}.")
    lines.append("")
    if table.empty:
        return "\n".join([*lines, "No checkpoints shipped yet.", ""])
    table["target"] = [TARGETS.get(a, "trained and reported") for a in table["architecture"]]
    cols = [c for c in ZOO_COLUMNS if c in table]
    lines += ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]

    def cell(row: pd.Series, c: str) -> str:
        return "" if pd.isna(row[c]) else f"{row[c]:.2f}" if c in PERCENT_COLUMNS else str(row[c])

    for _, row in table.iterrows():
        lines.append("| " + " | ".join(cell(row, c) for c in cols) + " |")
    # Flip TTA is cheap (two passes) and chosen on PublicTest like everything else, so it gets its own line.
    for tta, what in (
        ("none", "Ensemble (mean probabilities"),
        ("flip", "Ensemble with flip TTA (mean probabilities, each member's over a face and its mirror"),
    ):
        ens = ensemble_summary(entries, tta)
        if ens is not None:
            lines += [
                "",
                f"{what}; members chosen on PublicTest: {', '.join(ens['members'])}): "
                f"PublicTest {100 * ens['PublicTest']:.2f}, PrivateTest {100 * ens['PrivateTest']:.2f} "
                f"(target {TARGETS['ensemble']}).",
            ]
    lines += ["", "## Training", ""]
    for _, row in table.iterrows():
        lines.append(
            f"- **{row['model']}**: {row['recipe']}; best PublicTest at epoch {row['best epoch']}, reached after "
            f"{row['train hours']} h on {row['hardware']}."
        )
    return "\n".join(lines) + "\n"


def model_zoo_text(root: str | Path | None = None) -> str:
    """MODEL_ZOO.md as it should read: the generated tables plus ``MODEL_ZOO_NOTES.md`` (hand-written)."""
    root = Path(root) if root is not None else checkpoints_root()
    text = render_model_zoo(list_checkpoints(root))
    notes = root / "MODEL_ZOO_NOTES.md"
    return text + ("\n" + notes.read_text() if notes.is_file() else "")
