"""Fine-tune: adapt a zoo model (or run a small sweep) as a background job, watch it, compare before/after.

Thin: widgets -> ``fer_core.jobs`` -> render. Jobs run in their own processes with their state on
disk, so reloading, a second tab or an app restart show them as they are. Buttons act through
``on_click`` callbacks (a plain ``if st.button`` click can be lost when the page reruns on arrival).

Layout: everything static (the tabs, user models included, and one message box) comes first, the live
jobs panel (a ``run_every`` fragment) last. With Streamlit 1.67, when the panel reran the page at the
end of a job, the element drawn right after the fragment (the "Your models" heading) was sometimes
missing from the browser's page while the rows below it were there (reproduced in Chromium: the node
was absent from the DOM, not hidden; the cause lies in Streamlit's frontend element tree). So nothing
follows the fragment, and the number of elements before it never changes (the message box is one
container, whatever it holds), so the fragment keeps its position between runs.
"""

from __future__ import annotations

import os
import shutil
import time

import pandas as pd
import streamlit as st

from fer_core.data import CLASSES, FER2013_SIZES, PRESETS
from fer_core.jobs import (
    ACTIVE,
    DONE,
    MIN_PER_CLASS,
    Job,
    JobError,
    JobRunner,
    JobSpec,
    UploadError,
    check_faces,
    delete_class,
    delete_face,
    delete_user_model,
    face_counts,
    list_faces,
    rename_user_model,
    sweep_specs,
)
from fer_core.models import list_models
from fer_core.viz import confusion_matrix_figure, job_curves
from pages._common import get_zoo, in_app_frame

in_app_frame()

DATA = {
    "fer2013": "FER2013 Training",
    "fer2013_balanced": "FER2013 Training, class-balanced subset",
    "zip": "My own faces (zip of class folders)",
    "my_faces": "My captured faces (saved on the Upload and Webcam pages)",
}
LRS = [1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2]
FACES_SHOWN = 24  # per expression in "Manage my faces"; the counts cover all of them
SMALL_COMPARISON = 50  # held-out faces below which the before/after accuracy gets a warning

st.title("Fine-tune")
runner = JobRunner()
fer_dir = (st.session_state.get("data_dir") or os.environ.get("FER2013_DIR") or "").strip()


def say(kind: str, text: str) -> None:
    st.session_state["ft_message"] = (kind, text)


def submitted(job: Job) -> None:
    if job.state == "queued":
        say("info", f"{job.spec.name} is queued: another job is running; it starts when that one ends.")
    else:
        say("success", f"{job.spec.name} started.")


def launch() -> None:
    s = st.session_state
    base = zoo_by_label[s["ft_base"]]
    data = s["ft_data"]
    folder, s["ft_upload_summary"] = None, []
    try:
        path = fer_dir
        if data == "zip":
            if s.get("ft_zip") is None:
                raise JobError("upload a zip of class folders first")
            folder, summary = runner.extract_upload(s["ft_zip"].getvalue())
            path, s["ft_upload_summary"] = str(folder), summary.lines()
        if data == "my_faces":  # a snapshot: the job (and a later Resume) trains on these faces only
            folder, summary = runner.snapshot_my_faces()
            path, s["ft_upload_summary"] = str(folder), summary.lines()
        spec = JobSpec(
            name=s["ft_name"].strip(),
            base=str(base.weights),
            data=data,
            data_path=path,
            per_class=int(s.get("ft_per_class", 500)),
            epochs=int(s["ft_epochs"]),
            lr=float(s["ft_lr"]),
            batch_size=int(s["ft_batch"]),
            freeze_backbone=bool(s["ft_freeze"]),
            augment=s["ft_augment"],
        )
        submitted(runner.submit(spec))
    except (JobError, UploadError) as exc:
        if folder is not None:  # refused: the faces copied for it are not needed
            shutil.rmtree(folder, ignore_errors=True)
        say("error", str(exc))


def launch_sweep() -> None:
    s = st.session_state
    try:
        specs = sweep_specs(
            s["sw_name"].strip(),
            s["sw_model"],
            s["sw_opts"],
            [float(v) for v in s["sw_lrs"]],
            s["sw_scheds"],
            epochs=int(s["sw_epochs"]),
            max_train_samples=int(s["sw_samples"]),
            batch_size=int(s["sw_batch"]),
            data_path=fer_dir,
        )
        for spec in specs:
            runner.submit(spec)
        say("success", f"{len(specs)} sweep runs queued; the Training runs page compares them as they finish.")
    except JobError as exc:
        say("error", str(exc))


def cancel(job_id: str) -> None:
    job = runner.cancel(job_id)
    say("warning", f"{job.spec.name}: {job.state}.")


def retry(job_id: str) -> None:
    try:
        resumable = runner.get(job_id).resumable
        job = runner.retry(job_id)
    except JobError as exc:
        say("error", str(exc))
        return
    how = "resumes from its last finished epoch" if resumable else "starts again"
    say("info" if job.state == "queued" else "success", f"{job.spec.name} {how}; {job.state}.")


def forget_face(label: str, fid: str) -> None:
    delete_face(label, fid)


def forget_class(label: str) -> None:
    n = delete_class(label)
    say("warning", f"deleted {n} {label} face{'s' * (n != 1)} from My faces")


def rename(old: str) -> None:
    try:
        rename_user_model(old, st.session_state[f"rn_{old}"].strip())
        say("success", f"renamed {old}")
    except JobError as exc:
        say("error", str(exc))


def delete(name: str) -> None:
    try:
        delete_user_model(name)
        say("warning", f"deleted the user model {name}")
    except JobError as exc:  # e.g. deleted from another tab meanwhile
        say("error", str(exc))


# ---- launch -----------------------------------------------------------------------------------
def my_faces_panel() -> None:
    """Counts per expression, whether they are enough, and the faces themselves with Delete buttons."""
    counts = face_counts()
    table = pd.DataFrame(
        {
            "expression": list(counts),
            "faces": list(counts.values()),
            "status": [
                "-" if n == 0 else "ok" if n >= MIN_PER_CLASS else f"needs {MIN_PER_CLASS - n} more"
                for n in counts.values()
            ],
        }
    )
    c1, c2 = st.columns([1, 2])
    c1.dataframe(table, hide_index=True, key="mf_counts")
    with c2:
        try:
            check_faces(counts)
            used = sum(n > 0 for n in counts.values())
            st.success(f"{sum(counts.values())} faces of {used} expressions: ready to fine-tune.")
        except UploadError as exc:
            st.warning(str(exc))
        st.caption(
            f"Save faces with 'Save to My faces' on the Upload photos and Webcam pages; each expression you "
            f"use needs {MIN_PER_CLASS} or more, and 20% of each is held out to compare the models before "
            "and after."
        )
    faces = list_faces()
    with st.expander("Manage my faces"):
        if not any(faces.values()):
            st.caption("No faces saved yet.")
        for label, files in faces.items():
            if not files:
                continue
            st.markdown(f"**{label}** ({len(files)})")
            cols = st.columns(8)
            for i, f in enumerate(files[:FACES_SHOWN]):
                with cols[i % 8]:
                    st.image(str(f), width=64)
                    st.button("Delete", key=f"mf_del_{label}_{f.stem}", on_click=forget_face, args=(label, f.stem))
            if len(files) > FACES_SHOWN:
                st.caption(f"and {len(files) - FACES_SHOWN} more")
            st.button(f"Delete all {label} faces", key=f"mf_delall_{label}", on_click=forget_class, args=(label,))


def user_models_panel() -> None:
    """Rename or delete the models fine-tuned here (shipped checkpoints are not listed, so never touched)."""
    users = [e for e in get_zoo() if e.origin == "user"]
    st.subheader("Your models")
    if not users:
        st.caption("Models made here appear in the zoo and on every page; none yet.")
    for e in users:
        c1, c2, c3, c4 = st.columns([3, 3, 1, 1])
        after = ((e.meta or {}).get("comparison") or {}).get("after") or {}
        acc, n = after.get("accuracy"), after.get("n")
        score = f", {100 * acc:.1f}%" + (f" on {n:,} held-out faces" if n else "") if acc is not None else ""
        c1.write(f"**{e.name}** ({(e.meta or {}).get('model', '?')}{score})")
        c2.text_input("New name", value=e.name, key=f"rn_{e.name}", label_visibility="collapsed")
        c3.button("Rename", key=f"rename_{e.name}", on_click=rename, args=(e.name,))
        c4.button("Delete", key=f"delete_{e.name}", on_click=delete, args=(e.name,))
    st.caption(f"Jobs folder: {runner.root}")


zoo = [e for e in get_zoo() if e.ok]
zoo_by_label = {f"{e.name} ({e.origin})": e for e in zoo}
tab_ft, tab_sweep, tab_models = st.tabs(["Fine-tune a model", "Sweep", "Your models"])
with tab_ft:
    if not zoo:
        st.info("No usable checkpoint to start from.")
    else:
        c1, c2 = st.columns(2)
        c1.selectbox("Base checkpoint", list(zoo_by_label), key="ft_base")
        c2.text_input("Name of the new model", value="my-finetune", key="ft_name")
        data = st.radio(
            "Data",
            list(DATA),
            format_func=DATA.get,
            key="ft_data",
            horizontal=True,
            on_change=lambda: st.session_state.pop("ft_message", None),  # a launch error about the old choice
        )
        if data == "fer2013_balanced":
            st.number_input("Faces per class", 10, 10_000, 500, step=50, key="ft_per_class")
        if data == "zip":
            st.file_uploader(
                "Zip of class folders (angry/, happy/, ... ; at least 5 images each; 20% held out to compare)",
                type=["zip"],
                key="ft_zip",
            )
        elif data == "my_faces":
            my_faces_panel()
        elif not fer_dir:
            st.warning("Set the FER2013 folder in the sidebar to fine-tune on FER2013.")
        c1, c2, c3, c4 = st.columns(4)
        c1.slider("Epochs", 1, 20, 3, key="ft_epochs")
        c2.select_slider("Learning rate", LRS, value=1e-4, format_func=lambda v: f"{v:g}", key="ft_lr")
        c3.selectbox("Batch size", [16, 32, 64, 128, 256], index=2, key="ft_batch")
        c4.selectbox("Augmentation", list(PRESETS), index=list(PRESETS).index("light"), key="ft_augment")
        st.checkbox("Frozen backbone: train only the classifier head (the model's last linear layer)", key="ft_freeze")
        st.button("Launch", type="primary", on_click=launch, key="ft_launch")
with tab_sweep:
    st.caption("The VGGNet paper's tuning study: short runs from scratch, one per optimizer x lr x schedule.")
    c1, c2, c3 = st.columns(3)
    c1.selectbox("Model", list_models(), index=list_models().index("vggnet"), key="sw_model")
    c2.text_input("Sweep name", value="sweep", key="sw_name")
    c3.number_input("Training faces (0: all)", 0, 30_000, 2000, step=500, key="sw_samples")
    c1, c2, c3 = st.columns(3)
    c1.multiselect("Optimizers", ["adamw", "adam", "sgd"], default=["adamw", "sgd"], key="sw_opts")
    c2.multiselect("Learning rates", LRS, default=[1e-3, 1e-2], format_func=lambda v: f"{v:g}", key="sw_lrs")
    c3.multiselect("Schedules", ["cosine", "plateau", "onecycle", "constant"], default=["cosine"], key="sw_scheds")
    c1, c2 = st.columns(2)
    c1.slider("Epochs per run", 1, 20, 2, key="sw_epochs")
    c2.selectbox("Batch size", [32, 64, 128], index=1, key="sw_batch")
    st.button("Queue the sweep", on_click=launch_sweep, key="sw_launch")
with tab_models:
    user_models_panel()

with st.container():  # always one element, whatever it holds: the fragment below keeps its position
    if "ft_message" in st.session_state:
        kind, text = st.session_state["ft_message"]
        getattr(st, kind)(text)
    for line in st.session_state.get("ft_upload_summary", []):
        st.caption(line)


# ---- jobs, live ---------------------------------------------------------------------------------
def eta_text(job: Job) -> str:
    eta = job.eta_s
    return "" if eta is None else f"{eta:.0f} s" if eta < 90 else f"{eta / 60:.0f} min"


# Poll only while something runs or waits: an idle page that redraws every 1.5 s keeps re-mounting its
# charts (the before/after matrices), which then never finish drawing on a busy machine.
_polling = any(j.state not in DONE for j in runner.list())


@st.fragment(run_every=1.5 if _polling else None)
def jobs_panel() -> None:
    jobs = runner.list()
    st.subheader("Jobs")
    st.caption(f"Updated {time.strftime('%H:%M:%S')}" + (", every 1.5 s while a job runs or waits" if _polling else ""))
    if not jobs:
        st.caption("No jobs yet.")
        return
    table = pd.DataFrame(
        [
            {
                "job": j.spec.name,
                "kind": j.spec.kind,
                "state": j.state,
                "progress": f"{100 * j.fraction:.0f}%",
                "ETA": eta_text(j),
                "error": j.error or "",
                "id": j.id,
            }
            for j in reversed(jobs)
        ]
    )
    st.dataframe(table, hide_index=True, key="jobs_table")
    for job in (j for j in jobs if j.state in ACTIVE):
        p = job.progress
        label = f"{job.spec.name}: {p.get('phase', job.state)}"
        if p.get("batches"):
            label += f", epoch {min(p.get('epoch', 0) + 1, job.spec.epochs)}/{job.spec.epochs}"
            label += f", batch {p.get('batch', 0)}/{p['batches']}, loss {p.get('loss', 0):.3f}"
        if job.eta_s is not None:
            label += f", about {eta_text(job)} left"
        st.progress(job.fraction, text=label)
        if p.get("steps") or p.get("history"):
            st.plotly_chart(job_curves(p.get("steps", []), p.get("history", [])), key=f"curve_{job.id}")
        st.code(job.log_tail(8) or "(no output yet)", language=None)
        st.button("Cancel", key=f"cancel_{job.id}", on_click=cancel, args=(job.id,))
    for job in [j for j in jobs if j.retryable][-3:]:  # the latest few; the table lists them all
        c1, c2 = st.columns([6, 1], vertical_alignment="center")
        c1.caption(f"**{job.spec.name}** {job.state}: {job.error or ''}")
        c2.button(
            "Resume" if job.resumable else "Retry",
            key=f"retry_{job.id}",
            on_click=retry,
            args=(job.id,),
            help="Continue from the last finished epoch" if job.resumable else "Run it again from the start",
        )
    done = [j for j in jobs if j.state == "finished" and j.result and "before" in j.result]
    if done:
        compare(done[-1])
    ended = {j.id for j in jobs if j.state not in ACTIVE}
    polling_needed = any(j.state not in DONE for j in jobs)
    # a job ended (new model: the zoo and Your models change), or one started from a button in here or
    # elsewhere while the panel was not polling: refresh the whole page, which turns polling on or off
    if st.session_state.setdefault("ft_ended", ended) != ended or polling_needed != _polling:
        st.session_state["ft_ended"] = ended
        st.rerun()


def compare(job: Job) -> None:
    r = job.result or {}
    st.subheader(f"Before / after: {job.spec.name}")
    before, after = r["before"], r["after"]
    n = after.get("n", 0)
    st.caption(f"On {r['eval_split']} ({n:,} faces); the new model is in the zoo as **{r.get('model', '-')}**.")
    if 0 < n < SMALL_COMPARISON:
        own = r["eval_split"].startswith("held-out")  # the user's own faces, or a FER2013 folder's PublicTest
        where = "were held out" if own else f"are in {r['eval_split']}"
        full = f"Use the full FER2013 folder ({FER2013_SIZES['PublicTest']:,} PublicTest faces)"
        more = "Add more faces of each expression" if own else full
        st.warning(
            f"Only {n} faces {where}: one face moves the accuracy by {100 / n:.0f} points, so this "
            f"comparison says little. {more} for a meaningful one.",
            icon=":material/info:",
        )
    c1, c2 = st.columns(2)
    c1.metric("Base model accuracy", f"{100 * before['accuracy']:.1f}%")
    gain = f"{100 * (after['accuracy'] - before['accuracy']):+.1f} points"
    c2.metric("Fine-tuned accuracy", f"{100 * after['accuracy']:.1f}%", gain)
    c1, c2 = st.columns(2)
    for col, m, title in ((c1, before, "Base model"), (c2, after, "Fine-tuned")):
        fig = confusion_matrix_figure(m["confusion_matrix"], CLASSES, normalize=True, title=title)
        col.plotly_chart(fig, key=f"cm_{title}")


jobs_panel()  # last on the page: see the module docstring
