"""Disk cache of decoded image folders, keyed by the content of the file list.

Decoding 36k JPEGs takes tens of seconds; reading one uint8 array back takes well under a second.
The key hashes every file's path, size and modification time, so adding, removing or replacing a
file gives a new key. The cache lives in ``FER_CACHE_DIR`` (default ``~/.cache/fer_explorer``);
deleting it is always safe.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .faceset import LoadSummary

CACHE_VERSION = 1  # bump when decoding changes, so old caches are not reused


def cache_dir() -> Path:
    return Path(os.environ.get("FER_CACHE_DIR", Path.home() / ".cache" / "fer_explorer"))


def file_list_key(paths: list[Path]) -> str:
    """Hash of every path (as given: callers pass absolute paths), size and modification time."""
    h = hashlib.sha256(f"v{CACHE_VERSION}".encode())
    for p in paths:
        st = os.stat(p)
        h.update(f"{p}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:32]


def cached_decode(
    paths: list[Path], decode: Callable[[list[Path]], tuple[np.ndarray, np.ndarray, LoadSummary]]
) -> tuple[np.ndarray, np.ndarray, LoadSummary]:
    """``decode(paths)`` once; later calls with the same files read the result from disk."""
    key = file_list_key(paths)
    file = cache_dir() / f"{key}.npz"
    if file.is_file():
        try:
            with np.load(file, allow_pickle=False) as z:
                summary = LoadSummary(**json.loads(str(z["summary"])))
                return z["images"], z["ok"], summary
        except (OSError, ValueError, KeyError, TypeError):
            pass  # a broken cache file is rebuilt below
    images, ok, summary = decode(paths)
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        tmp = file.with_suffix(f".{os.getpid()}.tmp")
        with open(tmp, "wb") as f:
            np.savez(f, images=images, ok=ok, summary=np.array(json.dumps(summary.__dict__)))
        os.replace(tmp, file)
    except OSError:
        pass  # a read-only or full disk only costs the next load its speed
    return images, ok, summary
