"""The checkpoints a user can explore: every ``<root>/<name>/model.safetensors`` with its report.

A broken checkpoint (unreadable file, unknown architecture, a stray pickle) is listed with its error
instead of taking the listing down, so every other model still works.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .checkpoint import CheckpointError, read_meta

DEFAULT_ROOT = Path(__file__).resolve().parent.parent / "checkpoints"


def checkpoints_root() -> Path:
    return Path(os.environ.get("FER_CHECKPOINTS", DEFAULT_ROOT))


@dataclass
class ZooEntry:
    name: str
    folder: Path
    meta: dict[str, Any] | None = None
    report: dict[str, Any] | None = None
    error: str | None = None

    @property
    def weights(self) -> Path:
        return self.folder / "model.safetensors"

    @property
    def ok(self) -> bool:
        return self.error is None


def list_checkpoints(root: str | Path | None = None) -> list[ZooEntry]:
    root = Path(root) if root is not None else checkpoints_root()
    entries = []
    for folder in sorted(p for p in root.glob("*") if p.is_dir()) if root.is_dir() else []:
        entry = ZooEntry(folder.name, folder)
        if not entry.weights.is_file():
            others = sorted(p.name for p in folder.iterdir() if p.suffix in (".pt", ".pth", ".pkl", ".bin", ".ckpt"))
            if not others:
                continue
            entry.error = f"{folder}: no model.safetensors (found {', '.join(others)}; pickled files are never loaded)"
        else:
            try:
                entry.meta = read_meta(entry.weights)
            except CheckpointError as exc:
                entry.error = str(exc)
            report = folder / "report.json"
            if report.is_file():
                try:
                    entry.report = json.loads(report.read_text())
                except (OSError, json.JSONDecodeError) as exc:
                    entry.error = entry.error or f"{report}: unreadable report ({exc})"
        entries.append(entry)
    return entries
