"""Checkpoints: safetensors weights with the model's description embedded, written atomically.

A checkpoint is one ``.safetensors`` file whose metadata (key ``fer_explorer``) holds a JSON sidecar:
architecture name and arguments, class names, input configuration, training config, epochs, wall
time, hardware, data hash, git commit and metrics. The same JSON is written beside it as ``.json`` for
people and the dashboard, but the embedded copy is the one loading trusts, so weights and description
can never disagree. Loading never unpickles anything.

Writes go to a temporary file in the same folder, then ``os.replace``: killing the process at any
instant leaves either the old or the new file.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from .models import create_model

META_KEY = "fer_explorer"
FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message names the file and the problem."""


def atomic_write_bytes(path: Path, write: Any) -> None:
    """Call ``write(tmp_path)`` then rename over ``path``; a crash leaves the old file intact."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, lambda tmp: Path(tmp).write_text(text))


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).resolve().parent,
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def model_meta(model: nn.Module, **extra: Any) -> dict[str, Any]:
    """The sidecar for ``model`` (made by ``create_model``), plus ``extra`` fields."""
    from .data import CLASSES

    cfg = model.default_cfg
    return {
        "format": FORMAT_VERSION,
        "model": model.model_name,
        "model_args": model.model_args,
        "classes": list(CLASSES),
        "input": {"size": cfg.input_size, "crop": cfg.crop, "mean": cfg.mean, "std": cfg.std},
        **extra,
    }


def save_checkpoint(model: nn.Module, path: str | Path, meta: dict[str, Any], dtype: torch.dtype | None = None) -> None:
    """Write ``model``'s weights (optionally cast to ``dtype``) and ``meta`` atomically."""
    path = Path(path)
    tensors = {}
    for k, v in model.state_dict().items():
        v = v.detach().to("cpu")
        if dtype is not None and v.is_floating_point():
            v = v.to(dtype)
        tensors[k] = v.contiguous()
    meta = {**meta, "weights_dtype": str(dtype or next(iter(tensors.values())).dtype).replace("torch.", "")}
    text = json.dumps(meta, indent=2, default=str)
    atomic_write_bytes(path, lambda tmp: save_file(tensors, str(tmp), metadata={META_KEY: text}))
    atomic_write_text(path.with_suffix(".json"), text + "\n")


def read_meta(path: str | Path) -> dict[str, Any]:
    """The embedded sidecar of a checkpoint, without loading its weights."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = (f.metadata() or {}).get(META_KEY)
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from None
    if raw is None:
        raise CheckpointError(f"{path}: no FER Explorer description in the file's metadata")
    try:
        meta = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path}: description is not valid JSON ({exc})") from None
    if not isinstance(meta, dict) or "model" not in meta:
        raise CheckpointError(f"{path}: description names no model architecture")
    return meta


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model a checkpoint describes and load its weights (as float32), in eval mode."""
    path = Path(path)
    meta = read_meta(path)
    try:
        model = create_model(meta["model"], **meta.get("model_args", {}))
    except KeyError as exc:
        raise CheckpointError(f"{path}: {exc.args[0]}") from None
    except TypeError as exc:
        raise CheckpointError(f"{path}: bad arguments for {meta['model']}: {exc}") from None
    try:
        with safe_open(str(path), framework="pt") as f:
            state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open is not a dict)
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: weights unreadable ({exc})") from None
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    bad_shape = [k for k in expected if k in state and state[k].shape != expected[k].shape]
    if missing or unexpected or bad_shape:
        detail = "; ".join(
            f"{what}: {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''}"
            for what, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", bad_shape))
            if keys
        )
        raise CheckpointError(f"{path}: weights do not match {meta['model']} ({detail})")
    model.load_state_dict({k: v.to(expected[k].dtype) for k, v in state.items()})
    return model.to(device).eval(), meta
