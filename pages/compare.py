"""Compare models: confusion matrices side by side (click a cell to see its faces), per-class metrics,
disagreements, and an ensemble builder, all from the saved per-sample probabilities."""

import numpy as np
import streamlit as st

from fer_core.compare import align, cell_indices, disagreements, ensemble, greedy_ensemble, index_by_name, top_k
from fer_core.data import CLASSES
from fer_core.eval import classification_metrics
from fer_core.viz import clicked_cell, confusion_matrix_figure, per_class_bars, upscale
from pages._common import get_faces, in_app_frame, models_or_stop, predictions

in_app_frame()

MAX_GALLERY = 60

st.title("Compare models")
by_name = models_or_stop(
    "No evaluated checkpoints to compare yet: train and ship some with `scripts/train_all.py --ship`."
)

c1, c2, c3, c4 = st.columns([3, 1, 1, 1])
chosen = c1.multiselect(
    "Models (two to four)", list(by_name), default=list(by_name)[:2], max_selections=4, key="models"
)
split = c2.radio("Split", ["PrivateTest", "PublicTest"], key="split")
tta = c3.selectbox("TTA", ["none", "flip", "tencrop"], key="tta")
normalize = c4.toggle("Row-normalised", key="normalize")
if not chosen:
    st.info("Pick at least one model.")
    st.stop()
if len(chosen) == 1 and len(by_name) > 1:
    st.caption("Add a second model to compare.")

preds = align([predictions(by_name[m], split, tta) for m in chosen])
faces = get_faces()
fs = faces.splits.get(split)
face_index = index_by_name(preds[0].names, fs.names) if fs is not None else np.full(len(preds[0].names), -1)


def gallery(indices: np.ndarray, title: str, key: str) -> None:
    """Faces at ``indices`` (of the aligned predictions) with every chosen model's top-2."""
    shown = [i for i in indices if face_index[i] >= 0][:MAX_GALLERY]
    st.markdown(f"**{title}**: {len(indices)} faces" + (f", showing {len(shown)}" if len(shown) < len(indices) else ""))
    if len(indices) and not shown:
        st.info("These faces are not in the demo sample: set a FER2013 folder in the sidebar to see them.")
    if not shown:  # nothing to pick from: no picker, no button
        return
    captions = []
    for i in shown:
        lines = [f"true {CLASSES[preds[0].labels[i]]}"]
        for p in preds:
            lines.append(p.model + ": " + ", ".join(f"{c} {v:.0%}" for c, v in top_k(p.probs[i], CLASSES)))
        captions.append(" | ".join(lines))
    st.image([upscale(fs.images[face_index[i]].numpy()) for i in shown], caption=captions, width=110)
    c1, c2 = st.columns([3, 1])
    k = c1.selectbox(
        "Explain one of these faces",
        range(len(shown)),
        key=f"pick_{key}",
        format_func=lambda j: f"#{j + 1}: {fs.names[face_index[shown[j]]]}",
    )
    if c2.button("Explain this face", key=f"explain_{key}"):
        i = shown[k]
        st.session_state["explain_request"] = {
            "face": fs.images[face_index[i]].numpy(),
            "label": int(preds[0].labels[i]),
            "models": [p.model for p in preds],
            "source": fs.names[face_index[i]],
        }
        st.session_state["face_source"] = "From another page"  # the Explain page's widgets start on it
        st.switch_page("pages/explain.py")


st.subheader("Confusion matrices")
st.caption("Rows: true class; columns: predicted. Click a cell to see its faces.")
# one row of two, or two rows of two: a 7x7 matrix needs about half the page's width to stay readable
cols = [col for row in range(0, len(preds), 2) for col in st.columns(2)][: len(preds)]
selected = None
for col, p in zip(cols, preds, strict=True):
    m = classification_metrics(p.probs, p.labels, CLASSES)
    fig = confusion_matrix_figure(
        m["confusion_matrix"], CLASSES, normalize, title=f"{p.model}: {m['accuracy']:.2%} acc, F1 {m['macro_f1']:.3f}"
    )
    event = col.plotly_chart(fig, key=f"cm_{p.model}_{split}_{tta}", on_select="rerun", selection_mode="points")
    cell = clicked_cell(event, CLASSES)
    if cell is not None:
        selected = (p, cell)
if selected is not None:
    p, (t, q) = selected
    gallery(cell_indices(p, t, q), f"{p.model}: true {CLASSES[t]}, predicted {CLASSES[q]}", "cell")

st.subheader("Per-class metrics")
metric = st.segmented_control("Metric", ["precision", "recall", "f1"], default="f1", key="metric") or "f1"
per_model = {p.model: classification_metrics(p.probs, p.labels, CLASSES)["per_class"] for p in preds}
st.plotly_chart(per_class_bars(per_model, metric), key="per_class")

if len(preds) >= 2:
    st.subheader("Where two models disagree")
    a, b = st.columns(2)
    first = a.selectbox("Model A", chosen, index=0, key="dis_a")
    second = b.selectbox("Model B", chosen, index=1, key="dis_b")
    if first == second:
        st.info("Pick two different models to see the faces they disagree on.")
    else:
        pa, pb = preds[chosen.index(first)], preds[chosen.index(second)]
        dis = disagreements(pa, pb)
        right_a = int((pa.preds[dis] == pa.labels[dis]).sum())
        right_b = int((pb.preds[dis] == pb.labels[dis]).sum())
        st.caption(f"They disagree on {len(dis)} faces: {first} is right on {right_a}, {second} on {right_b}.")
        gallery(dis, f"{first} vs {second}", "disagree")

st.subheader("Ensemble builder")
st.caption("Mean of the members' saved probabilities, weighted; computed live on the chosen split.")
all_names = list(by_name)


def members_edited() -> None:
    st.session_state["members_own"] = True


if st.button("Choose members on PublicTest (greedy forward selection)", key="greedy"):
    val = dict(zip(all_names, align([predictions(by_name[m], "PublicTest", tta) for m in all_names]), strict=True))
    st.session_state["members"] = greedy_ensemble(val)
    members_edited()
if not st.session_state.get("members_own"):
    st.session_state["members"] = list(chosen)  # the compared models, until the user picks members of their own
members = st.multiselect("Members", all_names, key="members", on_change=members_edited)
if members:
    wcols = st.columns(len(members))
    weights = [c.slider(m, 0.0, 1.0, 1.0, 0.05, key=f"w_{m}") for c, m in zip(wcols, members, strict=True)]
    if sum(weights) == 0:
        st.warning("All weights are zero: give at least one member a weight.")
    else:
        ens = ensemble(align([predictions(by_name[m], split, tta) for m in members]), weights)
        m = classification_metrics(ens.probs, ens.labels, CLASSES)
        best_single = max(predictions(by_name[x], split, tta).accuracy for x in members)
        k1, k2, k3 = st.columns(3)
        gain = 100 * (m["accuracy"] - best_single)  # percentage points, not a relative change
        k1.metric("Ensemble accuracy", f"{m['accuracy']:.2%}", f"{gain:+.2f} points vs best member")
        k2.metric("Macro-F1", f"{m['macro_f1']:.3f}")
        k3.metric("Top-2 accuracy", f"{m['top2_accuracy']:.2%}")
        st.plotly_chart(
            confusion_matrix_figure(m["confusion_matrix"], CLASSES, normalize, title="Ensemble"), key="cm_ensemble"
        )
