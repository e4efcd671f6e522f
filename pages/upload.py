"""Upload photos or a short video: every face boxed, its emotion per model and for the ensemble, the crop
the models saw, "explain this face", "save to My faces" (labelled fine-tuning data), and all results as a
CSV file. The work is ``fer_core.inference``."""

import tempfile
from pathlib import Path

import numpy as np
import streamlit as st

from fer_core.faces import VIDEO_SUFFIXES, compose_scene, create_detector, detectable_faces, is_video, list_detectors
from fer_core.faces.crop import read_image
from fer_core.faces.report import EMOJI, draw_boxes, face_probs_figure, timeline_figure, upscale_face
from fer_core.inference import (
    FaceOptions,
    ImageResult,
    VideoResult,
    analyse_image,
    load_models,
    predict_video,
    results_table,
)
from fer_core.jobs.my_faces import face_id
from fer_core.zoo import checkpoints_root
from pages._common import calibrated, get_zoo, in_app_frame
from pages._my_faces import save_face_control, this_face

in_app_frame()

IMAGE_TYPES = ["jpg", "jpeg", "png", "webp", "bmp", "gif", "tif", "tiff"]
MAX_VIDEO_FRAMES = 150  # analysed frames per video: a page should answer in seconds
DETAILED_FACES = 12  # faces with a full row (crop, bars, explain); all of them are in the table and the CSV
EXPLAIN_PAGE = "pages/explain.py"

if st.session_state.pop("goto_explain", False):  # set by an "Explain this face" button's callback
    st.switch_page(EXPLAIN_PAGE)


@st.cache_resource(show_spinner="Loading models ...")
def _models(names: tuple[str, ...], root: str) -> list:
    return load_models(list(names), root=root)


@st.cache_resource
def _detector(name: str):  # noqa: ANN202
    return create_detector(name)


@st.cache_data(max_entries=32, show_spinner="Finding faces ...")
def _analyse_image(
    data: bytes, name: str, models: tuple[str, ...], root: str, detector: str, whole: bool, calibrate: bool = False
) -> ImageResult:
    opts = FaceOptions(whole_image_if_none=whole, calibrated=calibrate)
    return analyse_image(read_image(data, source=name), _models(models, root), _detector(detector), opts)


@st.cache_data(max_entries=4, show_spinner="Analysing the video ...")
def _analyse_video(
    data: bytes, name: str, models: tuple[str, ...], root: str, detector: str, every: int, calibrate: bool = False
) -> VideoResult:
    with tempfile.NamedTemporaryFile(suffix=Path(name).suffix) as f:
        f.write(data)
        f.flush()
        return predict_video(
            f.name,
            _models(models, root),
            _detector(detector),
            every=every,
            max_frames=MAX_VIDEO_FRAMES,
            source=name,
            calibrated=calibrate,
        )


@st.cache_data
def _sample_photo() -> bytes:
    """Four FER2013 demo faces the detector finds, of different expressions, pasted into a 960x600 scene (no
    real person's photo)."""
    import io

    from fer_core.demo import load_demo, one_of_each_class

    demo = load_demo()
    faces = demo.images.numpy()[one_of_each_class(demo)]  # four different expressions, not four angry faces
    picked = detectable_faces(faces, _detector("haar"), limit=4)
    img, _ = compose_scene([faces[i] for i in picked], (960, 600), 150, seed=3)
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def _request_explain(face: np.ndarray, models: list[str], source: str) -> None:
    """Button callback: callbacks run before the script, so the request survives ``in_app_frame``'s rerun."""
    st.session_state["explain_request"] = {"face": face, "models": models, "source": source}
    st.session_state["goto_explain"] = True


def explain_button(face: np.ndarray, models: list[str], source: str, key: str) -> None:
    """Hand the face to the Explain page, or say that page does not exist yet."""
    if not Path(EXPLAIN_PAGE).is_file():
        st.button("Explain this face", key=key, disabled=True, help="The Explain page is not built yet")
    else:
        st.button(
            "Explain this face",
            key=key,
            icon=":material/psychology:",
            on_click=_request_explain,
            args=(face, models, source),
        )


def show_faces(result: ImageResult, key: str) -> None:
    st.image(
        draw_boxes(result.image, result.faces),
        caption=f"{result.source}: {len(result.faces)} face{'s' * (len(result.faces) != 1)}",
        width=min(720, result.size[0]),
    )
    for face in result.faces[:DETAILED_FACES]:
        c1, c2, c3 = st.columns([1, 1.4, 4], vertical_alignment="center")
        c1.image(upscale_face(face.crop, 112), caption=f"face {face.id}")
        with c2:
            st.markdown(f"### {EMOJI.get(face.label, '')} {face.label}")
            st.caption(f"ensemble {face.confidence:.0%}, detector score {face.score:.1f}")
            for flag in face.flags:
                st.warning(flag, icon=":material/warning:")
            explain_button(face.crop, result.models, f"{result.source}, face {face.id}", f"explain_{key}_{face.id}")
            source = f"Upload: {result.source}, face {face.id}"
            mine = f"myface_{key}_{face.id}_{face_id(face.crop)[:8]}"  # a message never follows another face
            save_face_control(mine, this_face(face.crop, source), default=face.label)
        c3.plotly_chart(face_probs_figure(face, result.classes), key=f"bars_{key}_{face.id}")
    if len(result.faces) > DETAILED_FACES:
        st.caption(f"Showing {DETAILED_FACES} of {len(result.faces)} faces in detail; all are in the table below.")
        table = results_table([result])
        st.dataframe(table[table["model"] == "ensemble"], hide_index=True)


def show_video(result: VideoResult, key: str) -> None:
    table = result.table()
    ids = sorted(result.face_crops())
    st.caption(
        f"{len(result.frames)} frames analysed (every {result.every} of {result.fps:.0f} fps), "
        f"{len(ids)} tracked face{'s' * (len(ids) != 1)}"
    )
    if ids:
        st.image([upscale_face(result.face_crops()[i], 96) for i in ids], caption=[f"face {i}" for i in ids])
        classes = result.frames[0].classes
        st.plotly_chart(timeline_figure(table, classes), key=f"timeline_{key}")
        st.dataframe(table[table["model"] == "ensemble"], hide_index=True)


st.title("Upload photos")
st.caption(
    "Drop photos (or a short video): faces are found, cropped to 48x48 grayscale exactly as in training, "
    "and classified by each chosen model and by their ensemble (mean probability)."
)
usable = [e.name for e in get_zoo() if e.ok]
if not usable:
    st.info("No checkpoints to run yet: train and ship some with `scripts/train_all.py --ship checkpoints`.")
    st.stop()
c1, c2, c3 = st.columns([3, 1, 1])
chosen = c1.multiselect("Models", usable, default=usable[:3], key="upload_models")
detector = c2.selectbox(
    "Face detector",
    list_detectors(),
    key="upload_detector",
    help="haar: OpenCV's frontal-face cascade; whole: the whole (square) image is one face, for face crops",
)
every = c3.number_input("Video: every Nth frame", 1, 100, 5, key="upload_every")
files = st.file_uploader(
    "Photos or a short video",
    type=IMAGE_TYPES + [s[1:] for s in VIDEO_SUFFIXES],
    accept_multiple_files=True,
    key="uploads",
)
st.button(
    "Try a sample photo",
    icon=":material/photo:",
    key="sample",
    on_click=st.session_state.update,
    args=({"show_sample": True},),
)
if not chosen:
    st.info("Pick at least one model.")
    st.stop()

inputs = [(f.name, f.getvalue()) for f in files or []]
if st.session_state.get("show_sample"):
    inputs.append(("sample.png", _sample_photo()))
if not inputs:
    st.stop()

root = str(checkpoints_root())
whole: set[str] = st.session_state.get("whole_image", set())
results: list[ImageResult] = []
for i, (name, data) in enumerate(inputs):
    st.subheader(name)
    try:
        if is_video(name):
            video = _analyse_video(data, name, tuple(chosen), root, detector, int(every), calibrated())
            for note in video.notes:
                st.info(note, icon=":material/info:")
            show_video(video, str(i))
            results += video.frames
            continue
        result = _analyse_image(data, name, tuple(chosen), root, detector, name in whole, calibrated())
    except ValueError as exc:
        st.error(f"{name}: {exc}", icon=":material/error:")
        continue
    for note in result.notes:
        if note != "no face found":
            st.info(note, icon=":material/info:")
    if not result.faces:
        st.warning(f"No face found in {name}.", icon=":material/face_retouching_off:")
        st.button(
            "Classify the whole image",
            key=f"whole_{i}",
            on_click=st.session_state.update,
            args=({"whole_image": whole | {name}},),
        )
        continue
    show_faces(result, str(i))
    results.append(result)

if results:
    st.download_button(
        "Download results (CSV)",
        results_table(results).to_csv(index=False),
        "fer_results.csv",
        "text/csv",
        icon=":material/download:",
        key="download",
    )
