"""Shared fixtures: the committed mini FER2013 (both layouts), an isolated decode cache, the real data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

FIXTURES = Path(__file__).parent / "fixtures"
MINI_FOLDER = FIXTURES / "fer2013_mini"
MINI_CSV = FIXTURES / "fer2013_mini.csv"
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Tests never read or write the user's decode cache."""
    os.environ["FER_CACHE_DIR"] = str(tmp_path_factory.mktemp("fer_cache"))
    torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(scope="session")
def mini_splits():
    from fer_core.data import load_fer2013

    return load_fer2013(MINI_FOLDER)


@pytest.fixture(scope="session")
def fer2013_dir() -> Path:
    """The real FER2013 (``FER2013_DIR``); tests using it are skipped without it."""
    path = os.environ.get("FER2013_DIR")
    if not path or not Path(path).exists():
        pytest.skip("FER2013_DIR not set: real-data checks skipped")
    return Path(path)
