"""Explain: why a model said what it said about one face. Captum attributions with a faithfulness score,
the model's own attention, feature maps, and class atlases, for several models side by side."""

import numpy as np
import streamlit as st
import torch

from fer_core.data import CLASSES
from fer_core.data.images import open_image, to_gray_array
from fer_core.eval.calibration import temperature_scale
from fer_core.eval.robustness import checkpoint_temperature
from fer_core.explain import METHODS, SIGNED, class_atlas, feature_maps, model_input, own_attention
from fer_core.explain.render import attention_image, face_pixels, gray_image, mosaic, overlay, png_bytes
from fer_core.viz import probability_bars
from pages._common import calibrated, explainable_model, explanation, get_faces, in_app_frame, models_or_stop

in_app_frame()
st.title("Explain")

by_name = models_or_stop("No checkpoints to explain yet: train and ship some with `scripts/train_all.py --ship`.")

# ---- the face ------------------------------------------------------------------------------------
request = st.session_state.get("explain_request")
sources = ["Dataset face", "Upload a face"] + (["From another page"] if request else [])
if st.session_state.get("face_source") not in sources:
    st.session_state["face_source"] = sources[-1] if request else sources[0]
source = st.radio("Face", sources, horizontal=True, key="face_source")
face, true_label, face_name = None, None, ""
if source == "From another page":
    face, true_label, face_name = np.asarray(request["face"], dtype=np.uint8), request.get("label"), request["source"]
elif source == "Upload a face":
    up = st.file_uploader("A cropped face (any image; converted to 48x48 grayscale)", key="face_upload")
    if up is not None:
        try:
            face = to_gray_array(open_image(up))[0]
            face_name = up.name
        except ValueError as exc:
            st.error(f"{up.name}: {exc}")
else:
    faces = get_faces()
    c1, c2, c3 = st.columns([1, 1, 2])
    split = c1.selectbox("Split", list(faces.splits), index=len(faces.splits) - 1, key="explain_split")
    data = faces.splits[split]
    cls = c2.selectbox("Class", ["any", *CLASSES], key="explain_class")
    pool = np.arange(len(data)) if cls == "any" else np.flatnonzero(data.labels.numpy() == CLASSES.index(cls))
    i = int(pool[c3.slider("Face", 0, len(pool) - 1, 0, key="explain_index")]) if len(pool) else 0
    face, true_label, face_name = data.images[i].numpy(), int(data.labels[i]), data.names[i]
if face is None:
    st.info("Choose a face to explain.")
    st.stop()

# ---- what to show --------------------------------------------------------------------------------
wanted = [m for m in st.session_state.get("explain_models", []) if m in by_name]
if request and st.session_state.get("explain_request_seen") is not request:
    # a face sent by another page comes with the models it was shown with there, once: the user's later choice stays
    st.session_state["explain_request_seen"] = request
    wanted = [m for m in request.get("models", []) if m in by_name] or wanted
st.session_state["explain_models"] = (wanted or list(by_name)[:2])[:4]
c1, c2 = st.columns([2, 3])
chosen = c1.multiselect("Models", list(by_name), max_selections=4, key="explain_models")
methods = c2.multiselect(
    "Methods",
    list(METHODS),
    default=["saliency", "gradcam", "integrated_gradients"],
    format_func=METHODS.get,
    key="explain_methods",
)
c1, c2, c3, c4 = st.columns(4)
known = ["true"] if true_label is not None else []  # an uploaded face has no label to explain
target_kind = c1.selectbox("Target class", ["predicted", *known, *CLASSES], key="explain_target")
opacity = c2.slider("Heat-map opacity", 0.0, 1.0, 0.5, 0.05, key="explain_opacity")
ig_steps = c3.number_input("Integrated-gradients steps", 4, 256, 32, key="explain_ig_steps")
faithfulness = c4.toggle("Faithfulness (deletion AUC)", value=True, key="explain_faithfulness")

st.image(
    gray_image(face), caption=f"{face_name} (true: {CLASSES[true_label] if true_label is not None else '?'})", width=144
)

# ---- one row per model ----------------------------------------------------------------------------
if faithfulness:
    st.caption(
        "Deletion AUC (Petsiuk et al. 2018): the explained class's probability, averaged while the 4x4 patches a "
        "method ranks highest are greyed out first. Lower is more faithful; a method at or above the random "
        "order's AUC explains this face no better than chance."
    )
target_arg = target_kind if target_kind in ("predicted", "true") else CLASSES.index(target_kind)
for name in chosen:
    weights = str(by_name[name].weights)
    ex = explanation(weights, face.tobytes(), tuple(methods), target_arg, true_label, faithfulness, int(ig_steps))
    model = explainable_model(weights)
    cfg = model.default_cfg
    x, probs, target = ex.face, ex.probs, ex.target
    if calibrated():  # the sidebar's calibrated probabilities: the model's stored temperature, same prediction
        probs = torch.from_numpy(temperature_scale(probs, checkpoint_temperature(weights, by_name[name].meta)))
    seen = face_pixels(x, cfg.mean, cfg.std)
    st.subheader(f"{name}: {CLASSES[int(probs.argmax())]} ({float(probs.max()):.0%}); explaining {CLASSES[target]}")
    left, right = st.columns([1, 3])
    left.plotly_chart(probability_bars(probs.numpy(), CLASSES, target), key=f"probs_{name}")
    cols = right.columns(max(1, len(methods)))
    for col, method in zip(cols, methods, strict=False):
        img = overlay(seen, ex.maps[method], opacity, signed=method in SIGNED)
        caption = METHODS[method]
        if method in ex.deletion:
            d = ex.deletion[method]
            caption += f" · deletion AUC {d.auc:.3f} (random {d.random_auc:.3f})"
        col.image(img, caption=caption)
        col.download_button("PNG", png_bytes(img), f"{name}_{method}.png", "image/png", key=f"dl_{name}_{method}")

    attention = own_attention(model, x)
    with st.expander(f"{name}: the model's own attention ({len(attention) or 'none'})", expanded=bool(attention)):
        if not attention:
            st.caption("This architecture has no built-in attention; see the attributions above.")
        images = [attention_image(key, maps[0], seen, opacity) for key, maps in attention.items()]
        if images:
            st.image(images, caption=list(attention), width=160)

    with st.expander(f"{name}: feature maps (most active channels first)"):
        for layer, maps in feature_maps(model, x).items():
            st.image(mosaic(maps), caption=f"{layer} {tuple(maps.shape[-2:])}")

# ---- class atlas -----------------------------------------------------------------------------------
st.subheader("Class atlas")
st.caption("Mean Grad-CAM of each class over correctly classified faces: where each model looks for each emotion.")
c1, c2 = st.columns([2, 1])
atlas_model = c1.selectbox("Model", chosen or list(by_name), key="atlas_model")
per_class = int(c2.number_input("Faces per class", 2, 100, 10, key="atlas_n"))
atlas_for = (atlas_model, per_class, (st.session_state.get("data_dir") or "").strip())


def build_atlas() -> None:
    """From the button's callback, kept in the session: the atlas stays through other interactions (a new
    target class, another face) until its model, face count or dataset changes."""
    faces = get_faces()
    data = faces.splits.get("PrivateTest") or next(iter(faces.splits.values()))
    model = explainable_model(str(by_name[atlas_model].weights))
    with st.spinner("Explaining faces ..."):
        atlas, counts = class_atlas(model, data, "gradcam", per_class)
    mean_face = data.images.float().mean(0)
    base = face_pixels(
        model_input(model, mean_face.round().to(torch.uint8)), model.default_cfg.mean, model.default_cfg.std
    )
    images = [overlay(base, atlas[c], 0.6) for c in range(len(CLASSES))]
    captions = [f"{c} ({n} faces)" for c, n in zip(CLASSES, counts, strict=True)]
    st.session_state["atlas"] = (atlas_for, images, captions)


st.button("Build the atlas", key="atlas_go", on_click=build_atlas)
built = st.session_state.get("atlas")
if built is not None and built[0] == atlas_for:
    st.image(built[1], caption=built[2], width=150)
