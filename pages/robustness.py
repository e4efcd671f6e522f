"""Robustness: beyond accuracy. Is a model confident when it is wrong (calibration, before and after
temperature scaling), does it break under blur, noise, a dark room or sunglasses (corruptions at five
severities), and does it transfer to other datasets?

Thin: reports are computed once per checkpoint by ``fer_core.eval.robustness`` (``robustness.json``)
and ``fer_core.eval.crossdata`` (``crossdata.json``), from ``scripts/compute_robustness.py`` or as
background jobs launched here; this page reads and draws them. Buttons act through ``on_click``
callbacks (a plain ``if st.button`` click can be lost when the page reruns on arrival).
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import streamlit as st

from fer_core.data import CLASSES
from fer_core.eval.background import EVAL_KINDS, eval_fraction
from fer_core.eval.calibration import stored_temperature
from fer_core.eval.corruptions import CORRUPTIONS
from fer_core.eval.crossdata import FACE_MODES, load_crossdata
from fer_core.eval.crossdata import FILENAME as CROSS_FILE
from fer_core.eval.robustness import (
    FILENAME,
    checkpoint_temperature,
    corruption_gallery,
    gallery_predictions,
    load_robustness,
    made_for,
)
from fer_core.eval.robustness import summary as report_summary
from fer_core.jobs import DONE, JobError, JobRunner, JobSpec
from fer_core.viz import corruption_heatmap, reliability_diagram, severity_curves, upscale
from fer_core.zoo import ZooEntry
from pages._common import calibrated, get_faces, get_zoo, in_app_frame, loaded_model

in_app_frame()

FACE_MODE_TEXT = {
    "auto": "auto: small images (<= 64 px) are face crops, larger ones are photos (face detection)",
    "cropped": "every image is a face crop",
    "detect": "every image is a photo: find the face first",
}

st.title("Robustness")
st.caption(
    "Beyond one accuracy number: calibration on PrivateTest before and after temperature scaling (fitted on "
    "PublicTest), accuracy under ten corruptions at five severities (fixed seeds), and other datasets."
)
zoo = {e.name: e for e in get_zoo() if e.ok}
if not zoo:
    st.info("No checkpoints yet: train and ship some with `scripts/train_all.py --ship checkpoints`.")
    st.stop()
runner = JobRunner()
fer_dir = (st.session_state.get("data_dir") or os.environ.get("FER2013_DIR") or "").strip()


@st.cache_data(show_spinner=False)
def _stored(path: str, mtime: float) -> dict | None:
    """A stored JSON report; ``mtime`` (0 when absent) is part of the key, so a new report shows at once."""
    p = Path(path)
    return load_robustness(p.parent) if p.name == FILENAME else load_crossdata(p.parent)


def stored(entry: ZooEntry, filename: str) -> dict | None:
    path = entry.folder / filename
    return _stored(str(path), path.stat().st_mtime if path.is_file() else 0.0)


def say(kind: str, text: str, place: str = "reports") -> None:
    """Keep a message for the next run, to show once beside what caused it: "reports", "crossdata" or
    "jobs"."""
    st.session_state["rb_message"] = (place, kind, text)


def show_message(place: str) -> None:
    if st.session_state.get("rb_message", ("",))[0] == place:
        _, kind, text = st.session_state.pop("rb_message")
        getattr(st, kind)(text)


def submit(spec: JobSpec, place: str = "reports") -> None:
    try:
        job = runner.submit(spec)
    except JobError as exc:
        say("error", str(exc), place)
        return
    queued = "queued behind the running job" if job.state == "queued" else "started"
    say("success", f"{spec.name}: {queued}; results appear here when it ends.", place)


def launch_report(name: str) -> None:
    spec = JobSpec(
        name=f"robustness-{name}"[:64],
        kind="robustness",
        base=str(zoo[name].weights),
        data_path=fer_dir,
        register=False,
    )
    submit(spec)


def launch_crossdata() -> None:
    s = st.session_state
    folder = s["rb_folder"].strip()
    if not folder:
        say("error", "Type the folder of the dataset first (class folders: angry/, happy/, ...).", "crossdata")
        return
    for name in s["rb_cross_models"]:
        spec = JobSpec(
            name=f"crossdata-{Path(folder).name}-{name}"[:64].rstrip("-_.") or "crossdata",
            kind="crossdata",
            base=str(zoo[name].weights),
            data_path=folder,
            register=False,
            options={"faces": s["rb_faces"], "corruptions": bool(s["rb_cross_corr"])},
        )
        submit(spec, "crossdata")


def cancel(job_id: str) -> None:
    job = runner.cancel(job_id)
    say("warning", f"{job.spec.name}: {job.state}.", "jobs")


# ---- models and their reports ---------------------------------------------------------------------
jobs = [j for j in runner.list() if j.spec.kind in EVAL_KINDS]
pending = {j.spec.base: j for j in jobs if j.spec.kind == "robustness" and j.state not in DONE}
reports = {name: stored(e, FILENAME) for name, e in zoo.items()}
with_report = [n for n, r in reports.items() if r]
chosen = st.multiselect(
    "Models (up to four, side by side)",
    list(zoo),
    default=(with_report or list(zoo))[:4],
    max_selections=4,
    key="rb_models",
)
# made for these weights? (a digest of each chosen weights file, cached per file version)
current = {name: made_for(reports[name], zoo[name].weights) for name in chosen}
for name in chosen:
    entry, report = zoo[name], reports[name]
    job = pending.get(str(entry.weights))
    if job is not None:
        st.info(f"{name}: its robustness report is being computed ({job.state}, {eval_fraction(job):.0%}).")
    elif report is None or not current[name]:
        why = "has no robustness report yet" if report is None else "has a robustness report made for other weights"
        c1, c2 = st.columns([3, 1], vertical_alignment="center")
        (c1.info if report is None else c1.warning)(
            f"**{name}** {why}. Compute it here (a background job: calibration and 50 corruption passes over "
            "PrivateTest; minutes for a small model) or with `python scripts/compute_robustness.py "
            f"--checkpoints {name}`."
        )
        c2.button(
            "Compute it",
            key=f"rb_compute_{name}",
            on_click=launch_report,
            args=(name,),
            disabled=not fer_dir,
            help=None if fer_dir else "Needs FER2013 (PublicTest and PrivateTest): set the folder in the sidebar.",
        )
show_message("reports")
shown = {n: reports[n] for n in chosen if reports[n]}

# ---- calibration --------------------------------------------------------------------------------------
st.header("Calibration", divider="gray")
if not shown:
    st.info("None of the chosen models has a robustness report yet: compute one above.")
else:
    st.caption(
        "Reliability diagram: accuracy of the faces in each confidence bin; a calibrated model's bars follow the "
        "diagonal, bars below it mean over-confidence. ECE: the count-weighted mean gap (lower is better). "
        "Temperature scaling divides the logits by T: the same predictions, honest confidences. The sidebar's "
        "*Calibrated probabilities* uses this T on every page."
    )
    table = pd.DataFrame({n: report_summary(r) for n, r in shown.items()}).T
    pct = ["clean accuracy", "mean corruption accuracy", "relative"]
    st.dataframe(
        table.style.format({c: "{:.1%}" for c in pct} | {c: "{:.3f}" for c in table.columns if c not in pct}),
        key="rb_summary",
    )
    for name, r in shown.items():
        cal = r["calibration"]
        if cal["after"]["ece"] > cal["before"]["ece"]:
            st.caption(
                f"{name} is already well calibrated on PrivateTest (ECE {cal['before']['ece']:.3f}); the temperature "
                f"fitted on PublicTest (T = {cal['temperature']:.2f}, PublicTest NLL {cal['fit']['nll_before']:.3f} -> "
                f"{cal['fit']['nll_after']:.3f}) does not improve it there."
            )
        # a stale report's temperature is not used; checkpoint_temperature falls back on the sidecar's
        if not current[name] and stored_temperature(zoo[name].meta) is None:
            st.caption(
                f"{name}: this report was made for other weights, so *Calibrated probabilities* shows its "
                "probabilities as they are (recompute its report above)."
            )
    for col, (name, r) in zip(st.columns(len(shown)), shown.items(), strict=True):
        cal = r["calibration"]
        title = f"{name}<br>ECE {cal['before']['ece']:.3f} -> {cal['after']['ece']:.3f} (T = {cal['temperature']:.2f})"
        col.plotly_chart(
            reliability_diagram(cal["before"]["bins"], cal["after"]["bins"], title), key=f"rb_reliability_{name}"
        )

# ---- corruptions ---------------------------------------------------------------------------------------
st.header("Corruptions", divider="gray")
if shown:
    st.caption(
        "PrivateTest accuracy under each corruption, averaged over severities 1-5 (heat map), and against "
        "severity (curves; 0 is the clean face). The mean over all 50 cells is the mean corruption accuracy."
    )
    st.plotly_chart(corruption_heatmap(shown), key="rb_heatmap")
    st.plotly_chart(severity_curves(shown), key="rb_curves")
    with st.expander("What each corruption does"):
        st.dataframe(
            pd.DataFrame(
                [
                    {
                        "corruption": c.title,
                        "simulates": c.description,
                        "severity 1..5": ", ".join(map(str, c.params[1:])),
                    }
                    for c in CORRUPTIONS.values()
                ]
            ),
            hide_index=True,
        )

st.subheader("One face under every corruption")
faces = get_faces()
data = faces.splits.get("PrivateTest") or next(iter(faces.splits.values()))
c1, c2 = st.columns([3, 1])
index = c1.slider("Face", 0, len(data) - 1, 0, key="rb_face")
severity = c2.slider("Severity", 1, 5, 3, key="rb_severity")
face, true = data.images[index].numpy(), int(data.labels[index])
gallery = corruption_gallery(face, severity)
use_t = calibrated()
preds = {
    name: gallery_predictions(
        loaded_model(str(zoo[name].weights)),
        gallery,
        checkpoint_temperature(zoo[name].weights, zoo[name].meta) if use_t else None,
    )
    for name in chosen
}
st.caption(f"{data.names[index]}, true class **{CLASSES[true]}**; each model's prediction (✓ right, ✗ wrong).")
names = list(gallery)
for start in range(0, len(names), 6):
    for col, key in zip(st.columns(6), names[start : start + 6], strict=False):
        col.image(upscale(gallery[key], 112), caption=CORRUPTIONS[key].title if key in CORRUPTIONS else "Clean")
        lines = []
        for model, by in preds.items():
            p = by[key]
            k = int(p.argmax())
            lines.append(f"{'✓' if k == true else '✗'} {model}: {CLASSES[k]} {p[k]:.0%}")
        col.caption("  \n".join(lines))

# ---- other datasets ---------------------------------------------------------------------------------------
st.header("Other datasets", divider="gray")
st.caption(
    "Any folder of class folders (CK+, JAFFE, your own photos: angry/, happiness/, ...). Photos go through face "
    "detection; classes the dataset lacks are left out of the metrics."
)
rows, notes = [], []
for name in chosen:
    for ds, x in (stored(zoo[name], CROSS_FILE) or {}).items():
        after = x["calibration"].get("after") or {}
        rows.append(
            {
                "model": name,
                "dataset": ds,
                "faces": x["n"],
                "accuracy": x["accuracy"],
                "accuracy among its classes": x["accuracy_present_classes"],
                "macro-F1": x["macro_f1"],
                "ECE": x["calibration"]["before"]["ece"],
                "ECE (scaled)": after.get("ece"),
                "mean corruption accuracy": x.get("mean_corruption_accuracy"),
                "classes left out": ", ".join(x["classes_left_out"]) or "none",
            }
        )
        if x["classes_left_out"]:
            notes.append(
                f"**{ds}** has no {', '.join(x['classes_left_out'])} faces: those classes are left out of the "
                "per-class metrics and macro-F1 (a face the model calls one of them still counts as wrong in "
                "*accuracy*; *accuracy among its classes* only lets it choose among the dataset's classes)."
            )
        notes += [f"{ds}: {n}" for n in x.get("notes", [])]
if rows:
    pct = ["accuracy", "accuracy among its classes", "macro-F1", "mean corruption accuracy"]
    st.dataframe(
        pd.DataFrame(rows).style.format(
            {c: "{:.1%}" for c in pct} | {"ECE": "{:.3f}", "ECE (scaled)": "{:.3f}"}, na_rep="-"
        ),
        hide_index=True,
        key="rb_crossdata",
    )
    for note in dict.fromkeys(notes):
        st.caption(note)
else:
    st.caption("No other dataset evaluated yet for the chosen models.")
with st.form("rb_cross_form", border=True):
    c1, c2 = st.columns([2, 1])
    c1.text_input("Dataset folder (on this machine)", key="rb_folder", placeholder="/data/jaffe")
    c2.selectbox("Images are", FACE_MODES, format_func=FACE_MODE_TEXT.get, key="rb_faces")
    c1, c2 = st.columns([2, 1])
    c1.multiselect("Models", list(zoo), default=chosen, key="rb_cross_models")
    c2.checkbox("Also the corruptions (50 passes: slower)", key="rb_cross_corr")
    st.form_submit_button("Evaluate in the background", on_click=launch_crossdata)
show_message("crossdata")


# ---- jobs ---------------------------------------------------------------------------------------------------
@st.fragment(run_every=1.5 if any(j.state not in DONE for j in jobs) else None)
def jobs_panel() -> None:
    """Evaluation jobs, live while any runs; a job that ends refreshes the whole page (its report shows)."""
    now = [j for j in runner.list() if j.spec.kind in EVAL_KINDS]
    if not now:
        return
    st.subheader("Evaluation jobs")
    st.dataframe(
        pd.DataFrame(
            [
                {"job": j.spec.name, "kind": j.spec.kind, "state": j.state, "done": f"{eval_fraction(j):.0%}"}
                | {"error": j.error or ""}
                for j in reversed(now)
            ]
        ),
        hide_index=True,
        key="rb_jobs",
    )
    for job in (j for j in now if j.state not in DONE):
        st.progress(eval_fraction(job), text=f"{job.spec.name}: {job.progress.get('phase', job.state)}")
        st.button("Cancel", key=f"rb_cancel_{job.id}", on_click=cancel, args=(job.id,))
    ended = {j.id for j in now if j.state in DONE}
    if st.session_state.setdefault("rb_ended", ended) != ended:
        st.session_state["rb_ended"] = ended
        st.rerun()
    show_message("jobs")  # after the rerun a job's end triggers, or that rerun would drop it unseen


jobs_panel()
