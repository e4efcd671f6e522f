"""Shared fixtures: the committed mini FER2013 (both layouts), an isolated decode cache, the real data."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch

FIXTURES = Path(__file__).parent / "fixtures"
MINI_FOLDER = FIXTURES / "fer2013_mini"
MINI_CSV = FIXTURES / "fer2013_mini.csv"
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Tests never read or write the user's decode cache, runs, jobs or fine-tuned models (a test that
    sets none of these still writes under a temporary folder, not the checkout); a test that needs its
    own sets it again."""
    for var, name in [
        ("FER_CACHE_DIR", "fer_cache"),
        ("FER_RUNS_DIR", "runs"),
        ("FER_JOBS_DIR", "jobs"),
        ("FER_USER_MODELS", "user_models"),
    ]:
        os.environ[var] = str(tmp_path_factory.mktemp(name))
    torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(scope="session")
def mini_splits():
    from fer_core.data import load_fer2013

    return load_fer2013(MINI_FOLDER)


@pytest.fixture(scope="session")
def findable_faces(mini_splits) -> np.ndarray:
    """Six mini-FER2013 faces the Haar detector finds alone in a plain scene: the faces tests paste into
    photos and frames when they need the detector to hit."""
    from fer_core.faces import create_detector, detectable_faces

    faces = torch.cat([s.images for s in mini_splits.values()]).numpy()
    return faces[detectable_faces(faces, create_detector("haar"), limit=6)]


@pytest.fixture(scope="session")
def fer2013_dir() -> Path:
    """The real FER2013 (``FER2013_DIR``); tests using it are skipped without it."""
    path = os.environ.get("FER2013_DIR")
    if not path or not Path(path).exists():
        pytest.skip("FER2013_DIR not set: real-data checks skipped")
    return Path(path)


@pytest.fixture(scope="session")
def zoo_root(tmp_path_factory, mini_splits) -> Path:
    """A checkpoints folder: two evaluated tiny models, a broken file and a stray pickle.

    alpha's report is its own; beta's saved predictions are replaced by a near-oracle's (right on
    every face), so the two models, and any ensemble of them, score visibly differently."""
    import pickle

    from fer_core.checkpoint import model_meta, save_checkpoint
    from fer_core.data import CLASSES
    from fer_core.eval import classification_metrics, evaluate_model, write_report
    from fer_core.models import create_model

    root = tmp_path_factory.mktemp("checkpoints")
    for seed, name in ((0, "alpha"), (1, "beta")):
        torch.manual_seed(seed)
        model = create_model("vggnet", widths=(8, 16, 16, 16), fc=32).eval()
        save_checkpoint(model, root / name / "model.safetensors", model_meta(model, epochs=1, latency_ms=1.5))
        report, arrays = evaluate_model(model, mini_splits, ttas=("none", "flip"))
        if name == "beta":
            for split, by_tta in report["splits"].items():
                labels = arrays[f"{split}_labels"].astype(np.int64)
                oracle = np.full((len(labels), 7), 0.05, dtype=np.float32)
                oracle[np.arange(len(labels)), labels] = 0.7
                for tta in by_tta:
                    arrays[f"{split}_{tta}"] = oracle.astype(np.float16)
                    by_tta[tta] = classification_metrics(oracle, labels, CLASSES)
        write_report(root / name, report, arrays)
    (root / "broken").mkdir()
    (root / "broken" / "model.safetensors").write_bytes(b"\x00" * 100)
    (root / "pickled").mkdir()
    (root / "pickled" / "model.pt").write_bytes(pickle.dumps({"a": 1}))
    return root


@contextmanager
def isolated_app(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, checkpoints: Path) -> Iterator[dict[str, str]]:
    """Point the app at ``checkpoints`` and at fresh job, user-model and run folders, without FER2013.

    On leaving, jobs a test left running are cancelled, so no worker process outlives its test.
    """
    from fer_core.jobs import JobRunner

    paths = {
        "FER_CHECKPOINTS": str(checkpoints),
        "FER_JOBS_DIR": str(tmp_path / "jobs"),
        "FER_USER_MODELS": str(tmp_path / "user_models"),
        "FER_RUNS_DIR": str(tmp_path / "runs"),
        "OMP_NUM_THREADS": "1",
    }
    for k, v in paths.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("FER2013_DIR", raising=False)
    monkeypatch.delenv("FER_JOBS_SLOW_BATCH_S", raising=False)
    yield paths
    stop_jobs(JobRunner(paths["FER_JOBS_DIR"]))


def stop_jobs(runner) -> None:  # noqa: ANN001 (a fer_core.jobs.JobRunner)
    """Cancel the jobs a test left queued or running, so no worker process outlives it."""
    for job in runner.list():
        if job.state in ("queued", "starting", "running"):
            runner.cancel(job.id, grace_s=3)


def use_precision_of(report: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run on the CPU in the precision a stored report was made in (its ``precision``; reports from
    before they said were all bf16 autocast), whatever this CPU would pick: float32 and bf16 land up to
    7 PrivateTest faces apart (measured), so a CPU without bf16 hardware reproduces a bf16 report in
    bf16 too, slowly."""
    monkeypatch.setenv("FER_CPU_BF16", "0" if report.get("precision") == "float32" else "1")
