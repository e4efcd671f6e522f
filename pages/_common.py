"""What every page shares: the dataset chosen in the sidebar and cached loaders.

Thin wrappers around ``fer_core``: caching and user-facing messages only, no logic worth testing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import streamlit as st
import torch

from fer_core.checkpoint import load_checkpoint
from fer_core.compare import Predictions, load_predictions
from fer_core.data import CLASSES, DataError, FaceSet, load_fer2013, load_notes
from fer_core.demo import DEMO_SPLIT, load_demo
from fer_core.eval.calibration import temperature_scale
from fer_core.eval.robustness import checkpoint_temperature

if TYPE_CHECKING:
    from fer_core.explain import Explanation
from fer_core.zoo import ZooEntry, checkpoints_root, list_zoo, user_models_root


def runs_dir() -> Path:
    """Where ``train_all.py`` writes runs (``FER_RUNS_DIR``, default ``runs/``)."""
    return Path(os.environ.get("FER_RUNS_DIR", "runs"))


def in_app_frame() -> None:
    """Every page calls this first: make sure it runs inside ``streamlit_app.py``'s navigation.

    Streamlit treats an app with a ``pages/`` folder as an old-style multipage app until the main
    script has called ``st.navigation`` once in the process (and AppTest resets that on every run);
    a server's first visitor opening, say, ``/compare`` would get ``pages/compare.py`` run alone (no
    sidebar, no page config). Here the flag is switched off and the run restarts through the frame.
    """
    from streamlit.runtime.pages_manager import PagesManager

    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        st.rerun()


@dataclass
class Faces:
    """The faces pages can show: the full splits, or the shipped demo sample (PrivateTest only)."""

    splits: dict[str, FaceSet]
    full: bool  # False: the demo sample
    message: str
    failed: bool = False  # a folder was given but could not be loaded: the message says why


def sidebar() -> None:
    with st.sidebar:
        st.text_input(
            "FER2013 folder or fer2013.csv",
            value=os.environ.get("FER2013_DIR", ""),
            key="data_dir",
            help="The Kaggle folder (train/ and test/) or the original csv. Empty: the demo sample of "
            "301 PrivateTest faces that ships with the app.",
        )
        faces = get_faces()
        show = st.success if faces.full else st.warning if faces.failed else st.info
        show(faces.message, icon=":material/dataset:")
        st.toggle(
            "Calibrated probabilities",
            key="calibrated",
            help="Show each model's probabilities after temperature scaling (the temperature fitted on PublicTest, "
            "see the Robustness page): same predictions, confidences that match how often the model is right. "
            "Models without a fitted temperature are shown as they are.",
        )


def calibrated() -> bool:
    """Whether the user asked for calibrated probabilities (the sidebar toggle), on every page."""
    return bool(st.session_state.get("calibrated", False))


@st.cache_resource(show_spinner="Loading FER2013 ...")
def _load_splits(path: str) -> dict[str, FaceSet]:
    return load_fer2013(path)


@st.cache_resource
def _load_demo() -> FaceSet:
    return load_demo()


def get_faces() -> Faces:
    path = (st.session_state.get("data_dir") or "").strip()
    demo = {DEMO_SPLIT: _load_demo()}
    if not path:
        return Faces(demo, False, "Demo sample: 301 PrivateTest faces. Set a FER2013 folder for the full splits.")
    try:
        splits = _load_splits(path)
    except (DataError, OSError) as exc:
        return Faces(demo, False, f"Could not load {path}: {exc}. Showing the demo sample.", failed=True)
    n = sum(len(s) for s in splits.values())
    notes = "".join(f" {note[0].upper()}{note[1:]}." for note in load_notes(splits))  # skipped files, empty classes
    return Faces(splits, True, f"FER2013 from {path}: {n:,} faces.{notes}")


@st.cache_resource(show_spinner="Loading model ...")
def _loaded_model(weights: str, mtime: float) -> torch.nn.Module:
    return load_checkpoint(weights)[0]


def loaded_model(weights: str) -> torch.nn.Module:
    """The cached checkpoint, shared by every session: run it (``predict_probs``), never hook or train it."""
    return _loaded_model(weights, Path(weights).stat().st_mtime)


def explainable_model(weights: str) -> torch.nn.Module:
    """A private, explanation-ready copy of a cached checkpoint: Captum adds hooks to the model it
    explains, so sessions must not share the instance."""
    from fer_core.explain import explainable  # captum and matplotlib load on the Explain page only

    return explainable(_loaded_model(weights, Path(weights).stat().st_mtime))


@st.cache_data(max_entries=64, show_spinner="Explaining ...")
def explanation(
    weights: str,
    face: bytes,
    methods: tuple[str, ...],
    target: str | int,
    true_label: int | None,
    faithfulness: bool,
    ig_steps: int,
) -> Explanation:
    """Cached :func:`fer_core.explain.explain_face`: moving a slider does not recompute attributions."""
    from fer_core.explain import explain_face

    model = explainable_model(weights)
    face_t = torch.frombuffer(bytearray(face), dtype=torch.uint8).reshape(48, 48)
    return explain_face(model, face_t, list(methods), target, true_label, faithfulness, ig_steps=ig_steps)


@st.cache_data(ttl=60, show_spinner=False)
def _zoo(root: str, user_root: str, user_mtime: float) -> list[ZooEntry]:
    return list_zoo(root, user_root)


def get_zoo() -> list[ZooEntry]:
    """Shipped checkpoints and the user's fine-tuned models; a new or renamed user model changes the
    user folder's mtime, which is part of the cache key, so it shows at once."""
    user = user_models_root()
    return _zoo(str(checkpoints_root()), str(user), user.stat().st_mtime if user.is_dir() else 0.0)


@st.cache_data(show_spinner=False)
def get_predictions(folder: str, split: str, tta: str, mtime: float) -> Predictions:
    """Saved predictions; ``mtime`` of probs.npz is part of the key so a re-export is picked up."""
    return load_predictions(folder, split, tta)


def predictions(entry: ZooEntry, split: str, tta: str) -> Predictions:
    """Saved predictions, temperature-scaled when the sidebar asks for calibrated probabilities."""
    probs = entry.folder / "probs.npz"
    p = get_predictions(str(entry.folder), split, tta, probs.stat().st_mtime)
    t = checkpoint_temperature(entry.weights, entry.meta) if calibrated() else None
    if t is not None:
        p = Predictions(p.model, temperature_scale(p.probs, t), p.labels, p.names)
    return p


def models_or_stop(message: str) -> dict[str, ZooEntry]:
    """The usable models by name; with none, show ``message`` and end the page here."""
    models = usable_models()
    if not models:
        st.info(message)
        st.stop()
    return {e.name: e for e in models}


def usable_models() -> list[ZooEntry]:
    """Checkpoints with a report and saved predictions; broken ones are reported on the page."""
    entries = get_zoo()
    for e in entries:
        if not e.ok:
            st.warning(f"{e.name} is broken and left out: {e.error}", icon=":material/error:")
    return [e for e in entries if e.ok and e.report and (e.folder / "probs.npz").is_file()]


__all__ = [
    "CLASSES",
    "Faces",
    "calibrated",
    "get_faces",
    "get_zoo",
    "in_app_frame",
    "loaded_model",
    "models_or_stop",
    "predictions",
    "runs_dir",
    "sidebar",
    "usable_models",
]
