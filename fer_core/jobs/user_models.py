"""User models: fine-tuned checkpoints in ``user_models/<name>/``, listed by the zoo beside the shipped ones.

Registration writes everything into a hidden staging folder and renames it into place, so a crash or a
full disk leaves no half-written model in the zoo. Rename and delete act only inside the user folder:
names are checked against a strict pattern, so no path can reach ``checkpoints/``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from ..zoo import checkpoints_root, user_models_root
from .runner import NAME_RE, NAME_RULE, JobError

STAGING = ".staging"


def _checked(name: str) -> str:
    if not NAME_RE.match(name) or name == STAGING:
        raise JobError(f"model name {name!r}: {NAME_RULE}")
    return name


def name_taken(name: str, root: Path | None = None) -> bool:
    """A user model may not share a name with a shipped checkpoint or another user model."""
    root = Path(root) if root is not None else user_models_root()
    return (root / name).exists() or (checkpoints_root() / name).exists()


def free_name(name: str, root: Path | None = None) -> str:
    """``name``, or ``name-2``, ``name-3`` ... if taken (a job named before another took the name)."""
    out, k = name, 2
    while name_taken(out, root):
        out, k = f"{name}-{k}", k + 1
    return out


def published_by(job_id: str, root: Path | None = None) -> str | None:
    """The user model a job already published, if any: a job killed between publishing its model and
    recording that, then resumed, must not publish a second copy under ``<name>-2``."""
    from ..checkpoint import CheckpointError, read_meta

    root = Path(root) if root is not None else user_models_root()
    for folder in sorted(root.iterdir()) if root.is_dir() else []:
        weights = folder / "model.safetensors"
        if folder.name != STAGING and weights.is_file():
            try:
                if read_meta(weights).get("job") == job_id:
                    return folder.name
            except (CheckpointError, OSError):
                continue  # a broken user model is the zoo's to report
    return None


def staging_dir(name: str, root: Path | None = None) -> Path:
    root = Path(root) if root is not None else user_models_root()
    d = root / STAGING / f"{_checked(name)}-{os.getpid()}"
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    return d


def publish(staged: Path, name: str, root: Path | None = None) -> Path:
    """Move a complete staged model folder into the zoo under a free name (one atomic rename)."""
    root = Path(root) if root is not None else user_models_root()
    final = root / free_name(_checked(name), root)
    os.replace(staged, final)
    return final


def rename_user_model(old: str, new: str, root: Path | None = None) -> Path:
    root = Path(root) if root is not None else user_models_root()
    src = root / _checked(old)
    if not src.is_dir():
        raise JobError(f"no user model {old!r}")
    if name_taken(_checked(new), root):
        raise JobError(f"{new!r} is already taken by a shipped or user model")
    os.replace(src, root / new)
    return root / new


def delete_user_model(name: str, root: Path | None = None) -> None:
    root = Path(root) if root is not None else user_models_root()
    folder = root / _checked(name)
    if not folder.is_dir():
        raise JobError(f"no user model {name!r}")
    shutil.rmtree(folder)
    root.touch()  # the folder's mtime keys the dashboard's zoo cache
