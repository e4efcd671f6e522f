"""Dataset: class balance per split, sample faces per class, mean faces, pixel-intensity histograms."""

from pathlib import Path

import numpy as np
import streamlit as st

from fer_core.data import CLASSES
from fer_core.viz import class_count_bars, intensity_histograms, mean_faces, upscale
from pages._common import get_faces, in_app_frame, usable_models

in_app_frame()

st.title("Dataset")
faces = get_faces()
st.caption(faces.message)

st.subheader("Class counts")
counts = {split: fs.class_counts() for split, fs in faces.splits.items()}
if not faces.full:
    # Without the dataset, the real test-split counts still come from the shipped reports' supports.
    for e in usable_models()[:1]:
        for split, by_tta in e.report["splits"].items():
            counts[f"{split} (from reports)"] = [by_tta["none"]["per_class"][c]["support"] for c in CLASSES]
        counts = {f"{k} demo sample" if k in faces.splits else k: v for k, v in counts.items()}
st.plotly_chart(class_count_bars(counts, CLASSES), key="class_counts")

split = st.selectbox("Split", list(faces.splits), key="split")
data = faces.splits[split]
images, labels = data.images.numpy(), data.labels.numpy()

st.subheader("Sample faces")
c1, c2, c3 = st.columns([2, 1, 1])
cls = c1.selectbox("Class", CLASSES, key="sample_class")
n = c2.slider("Faces", 6, 48, 18, step=6, key="sample_n")
seed = c3.number_input("Shuffle (seed)", 0, 10_000, 0, key="sample_seed")
idx = np.flatnonzero(labels == CLASSES.index(cls))
pick = np.random.default_rng(int(seed)).permutation(idx)[:n]
if len(pick):
    names = [Path(data.names[i]).stem for i in pick]  # "PrivateTest_98301490", whole: no mid-name cut
    st.image([upscale(images[i]) for i in pick], caption=names, width=96)  # one width, however long the name
else:
    st.info(f"No {cls} faces in {split}.")

st.subheader("Mean face per class")
means = mean_faces(images, labels, len(CLASSES))
st.image([upscale(m, 120) for m in means], caption=list(CLASSES))

st.subheader("Pixel intensities")
st.plotly_chart(intensity_histograms(images, labels, CLASSES), key="histograms")
