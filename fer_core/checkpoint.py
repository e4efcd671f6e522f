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

import errno
import json
import os
import re
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
    """Call ``write(tmp_path)`` then rename over ``path``; a crash leaves the old file intact.

    A write that fails on a full disk raises ``OSError(ENOSPC)`` whatever the writer raised
    (``torch.save`` says ``RuntimeError: ... unexpected pos``), so callers can tell the user why."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError:
        raise
    except Exception as exc:
        if _disk_full(path.parent):  # judged before the partial file is removed: it is what filled the disk
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path)) from exc
        raise
    finally:
        tmp.unlink(missing_ok=True)


def _disk_full(folder: Path, margin: int = 1 << 20) -> bool:
    try:
        st = os.statvfs(folder)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < margin


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
    atomic_write_bytes(path, lambda tmp: _save_tensors(tensors, tmp, text, path))
    atomic_write_text(path.with_suffix(".json"), text + "\n")


def _save_tensors(tensors: dict[str, torch.Tensor], tmp: Path, text: str, path: Path) -> None:
    """``save_file``, with its I/O failures raised as the ``OSError`` they are.

    safetensors reports a full disk as ``SafetensorError("... No space left on device (os error 28)")``;
    callers (the training loop, a fine-tune job that tells the user "the disk is full") look for
    ``OSError`` with ``errno.ENOSPC``."""
    try:
        save_file(tensors, str(tmp), metadata={META_KEY: text})
    except SafetensorError as exc:
        found = re.search(r"os error (\d+)", str(exc))
        if found is None:
            raise
        code = int(found.group(1))
        raise OSError(code, os.strerror(code), str(path)) from exc


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


def _build(path: Path, meta: dict[str, Any]) -> nn.Module:
    """The architecture a sidecar describes; any refusal of its name or arguments is a CheckpointError."""
    args = meta.get("model_args", {})
    if not isinstance(args, dict):
        raise CheckpointError(f"{path}: model_args must be a JSON object, not {type(args).__name__}")
    try:
        return create_model(meta["model"], **args)
    except KeyError as exc:
        raise CheckpointError(f"{path}: {exc.args[0] if exc.args else exc}") from None
    except Exception as exc:  # noqa: BLE001 - the arguments come from a file: whatever the builder raises, say so
        raise CheckpointError(f"{path}: bad arguments for {meta['model']}: {exc}") from None


def _check_tensors(path: Path, meta: dict[str, Any], expected: dict[str, tuple], found: dict[str, tuple]) -> None:
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    bad_shape = [k for k in expected if k in found and found[k] != expected[k]]
    if missing or unexpected or bad_shape:
        detail = "; ".join(
            f"{what}: {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''}"
            for what, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", bad_shape))
            if keys
        )
        raise CheckpointError(f"{path}: weights do not match {meta['model']} ({detail})")


def inspect_checkpoint(path: str | Path) -> dict[str, Any]:
    """The sidecar of a checkpoint that will load, checked without loading it.

    The architecture must be registered, accept the stored arguments, and expect exactly the tensor
    names and shapes the file's header lists. The model is built on PyTorch's ``meta`` device (no
    memory, no initialisation) and only the header is read, so the zoo can vet every checkpoint it
    lists, and a sidecar asking for an enormous model costs nothing. Raises :class:`CheckpointError`.
    """
    path = Path(path)
    meta = read_meta(path)
    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in _build(path, meta).state_dict().items()}
    try:
        with safe_open(str(path), framework="pt") as f:
            found = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}  # noqa: SIM118 (not a dict)
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: weights unreadable ({exc})") from None
    _check_tensors(path, meta, expected, found)
    return meta


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model a checkpoint describes and load its weights (as float32), in eval mode.

    The checkpoint is vetted first (:func:`inspect_checkpoint`), so memory is only spent on a model
    whose every tensor the file really holds."""
    path = Path(path)
    meta = inspect_checkpoint(path)
    model = _build(path, meta)
    try:
        with safe_open(str(path), framework="pt") as f:
            state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open is not a dict)
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: weights unreadable ({exc})") from None
    expected = model.state_dict()
    _check_tensors(
        path, meta, {k: tuple(v.shape) for k, v in expected.items()}, {k: tuple(v.shape) for k, v in state.items()}
    )
    model.load_state_dict({k: v.to(expected[k].dtype) for k, v in state.items()})
    return model.to(device).eval(), meta
