""" "Save to My faces", shared by the Upload and Webcam pages: label a face crop and keep it to fine-tune on.

The work is :mod:`fer_core.jobs.my_faces`; here only a selectbox, a button and the message after it.
The button saves in its ``on_click`` callback: callbacks run before the script, so the click is not lost
when the page reruns, and on the Webcam page the crop is taken at the moment of the click.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import streamlit as st

from fer_core.data import CLASSES
from fer_core.jobs import face_counts, save_face

FaceGetter = Callable[[], tuple[np.ndarray, str] | None]  # (48x48 crop, where it came from), or None: no face


def this_face(crop: np.ndarray, source: str) -> FaceGetter:
    """A getter for a face known when the page draws (the Upload page's crops)."""
    return lambda: (crop, source)


def _save(key: str, get_face: FaceGetter) -> None:
    state = st.session_state
    label = state.get(f"{key}_label")
    got = get_face()
    if label is None:
        state[f"{key}_msg"] = ("warning", "Choose the expression first.")
    elif got is None:
        state[f"{key}_msg"] = ("warning", "No face to save right now.")
    else:
        try:
            save_face(got[0], label, source=got[1])
        except (ValueError, OSError) as exc:
            state[f"{key}_msg"] = ("error", f"Not saved: {exc}")
            return
        n = face_counts()[label]
        state[f"{key}_msg"] = ("success", f"Saved as {label}: {n} {label} face{'s' * (n != 1)} in My faces.")


def save_face_control(key: str, get_face: FaceGetter, default: str | None = None, disabled: bool = False) -> None:
    """An expression picker (preset to ``default``, e.g. the models' label) and "Save to My faces"."""
    label = st.selectbox(
        "Expression (for My faces)",
        CLASSES,
        index=CLASSES.index(default) if default in CLASSES else None,
        placeholder="Which expression is it?",
        key=f"{key}_label",
        help="Saved faces are fine-tuning data: the Fine-tune page counts them per expression and trains on them "
        "('My captured faces'). Pick the expression the face really shows, not just what the model said.",
    )
    st.button(
        "Save to My faces",
        key=f"{key}_save",
        icon=":material/add_a_photo:",
        on_click=_save,
        args=(key, get_face),
        disabled=disabled or label is None,
    )
    message = st.session_state.get(f"{key}_msg")
    if message:
        getattr(st, message[0])(message[1])
