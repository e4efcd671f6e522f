"""Webcam: live emotions on your camera, in the browser, offline. The work is ``fer_core.live``.

streamlit-webrtc streams the camera to this server and the annotated frames back; its worker thread
calls :meth:`fer_core.live.LiveProcessor.recv_queued` (newest frame analysed, older ones dropped).
The page only reads the processor's snapshots (stats, recent probabilities, timeline) in a fragment
that refreshes twice a second, so the script never blocks on the video. "Save to My faces" (below both)
keeps the main face's crop, labelled, as fine-tuning data (``fer_core.jobs.my_faces``).
"""

import json
import os
from functools import partial

import numpy as np
import plotly.graph_objects as go
import streamlit as st
from streamlit_webrtc import WebRtcMode, webrtc_streamer

from fer_core.faces.report import CLASS_COLORS
from fer_core.inference import load_models
from fer_core.live import LIVE_S, LiveConfig, LiveProcessor, default_model
from fer_core.zoo import checkpoints_root, zoo_table
from pages._common import calibrated, get_zoo, in_app_frame
from pages._my_faces import save_face_control

in_app_frame()

EXPLAIN_PAGE = "pages/explain.py"
ICE_ENV = "FER_ICE_SERVERS"  # JSON list of RTCIceServer dicts, for deployments that are not on localhost
OVERLAY_NAMES = {"none": "None", "gradcam": "Grad-CAM", "attention": "Model's attention"}

if st.session_state.pop("goto_explain", False):  # set by the snapshot button's callback
    st.switch_page(EXPLAIN_PAGE)


@st.cache_resource(show_spinner="Loading the model ...")
def _model(name: str, root: str):  # noqa: ANN202 (a LoadedModel, shared read-only by every session)
    return load_models(name, root=root)[0]


@st.cache_data(ttl=60, show_spinner=False)
def _default(root: str) -> str | None:
    """The fastest accurate checkpoint (``fer_core.live.default_model``); ``root`` keys the cache."""
    return default_model(zoo_table([e for e in get_zoo() if e.ok]))


def _ice_servers(text: str) -> list[dict]:
    try:
        servers = json.loads(text) if text.strip() else []
    except json.JSONDecodeError as exc:
        st.error(f"ICE servers: not valid JSON ({exc}); using none (localhost only).")
        return []
    return servers if isinstance(servers, list) else [servers]


def _main_face(processor: LiveProcessor) -> tuple[np.ndarray, str] | None:
    """The main face of the last ``LIVE_S`` seconds (``LiveProcessor.main_face``) and where it came from."""
    found = processor.main_face()
    if found is None:
        return None
    face, latest = found
    return face.crop.copy(), f"Webcam, face {face.id} (model: {face.label}) at {latest.time_s:.1f} s"


def _snapshot(processor: LiveProcessor) -> None:
    """Button callback: hand the main face to the Explain page (callbacks survive ``in_app_frame``'s rerun)."""
    found = _main_face(processor)
    if found is None:
        st.session_state["webcam_no_face"] = True
        return
    crop, source = found
    st.session_state["explain_request"] = {"face": crop, "models": [processor.model.name], "source": source}
    st.session_state["face_source"] = "From another page"
    st.session_state["goto_explain"] = True


st.title("Webcam")
st.caption(
    "Make faces at your camera: every face is found, cropped to 48x48 grayscale as in training and classified "
    "by the chosen model; probabilities are smoothed over frames so labels do not flicker. Nothing leaves "
    "this machine."
)
root = str(checkpoints_root())
usable = tuple(e.name for e in get_zoo() if e.ok)
if not usable:
    st.info("No checkpoints to run yet: train and ship some with `scripts/train_all.py --ship checkpoints`.")
    st.stop()

c1, c2, c3, c4 = st.columns([2, 2, 2, 1], vertical_alignment="bottom")
default = _default(root) or usable[0]
name = c1.selectbox(
    "Model",
    usable,
    index=usable.index(default),
    key="webcam_model",
    help=f"Default: {default}, the fastest checkpoint within 2 points of the best accuracy",
)
overlay = c2.selectbox("Overlay on faces", list(OVERLAY_NAMES), format_func=OVERLAY_NAMES.get, key="webcam_overlay")
smoothing = c3.slider(
    "Smoothing",
    0.0,
    0.95,
    0.6,
    0.05,
    key="webcam_smoothing",
    help="Weight of the past in the moving average: "
    "0 shows every frame's own prediction, 0.9 changes label after about a second",
)
mirror = c4.toggle("Mirror", value=True, key="webcam_mirror")
with st.expander("Connection (ICE servers)"):
    ice_text = st.text_area(
        "ICE servers as JSON",
        os.environ.get(ICE_ENV, "[]"),
        key="webcam_ice",
        help=f"Empty list: localhost only, no STUN/TURN service is contacted. For a remote deployment give "
        f'e.g. [{{"urls": ["stun:stun.example.org:3478"]}}] (or set {ICE_ENV}).',
    )

config = LiveConfig(smoothing=smoothing, overlay=overlay, mirror=mirror, calibrated=calibrated())
processor: LiveProcessor | None = st.session_state.get("webcam_processor")
if processor is None or processor.model.name != name:
    processor = LiveProcessor(_model(name, root), "haar", config)
    st.session_state["webcam_processor"] = processor
else:
    processor.configure(smoothing=smoothing, overlay=overlay, mirror=mirror, calibrated=calibrated())

video, panel = st.columns([3, 2])
with video:
    ctx = webrtc_streamer(
        key="fer-webcam",
        mode=WebRtcMode.SENDRECV,
        rtc_configuration={"iceServers": _ice_servers(ice_text)},
        queued_video_frames_callback=processor.recv_queued,
        media_stream_constraints={"video": {"width": 640, "height": 480}, "audio": False},
        async_processing=True,
        translations={
            "device_access_denied": "Camera access was denied. Allow the camera for this site (the camera icon in "
            "the address bar), then press START again.",
            "device_not_available": "No camera found: plug one in or close the app that is using it.",
            "media_api_not_available": "This browser cannot open a camera here (camera access needs localhost "
            "or HTTPS).",
        },
    )
    if not ctx.state.playing:
        st.info(
            "Press START and allow camera access when the browser asks. If the browser blocked the camera, "
            "allow it in the address bar and press START again.",
            icon=":material/videocam:",
        )


@st.fragment(run_every=0.5)
def live_panel(processor: LiveProcessor) -> None:
    """Numbers and the chart, redrawn from the processor's snapshots without rerunning the page."""
    stats = processor.stats()
    live = stats.since_last_s is not None and stats.since_last_s < LIVE_S
    m1, m2, m3 = st.columns(3)
    m1.metric("FPS", f"{stats.fps:.1f}" if live else "-")
    m2.metric(
        "Latency", f"{stats.latency_ms:.0f} ms" if stats.frames else "-", help=f"p95 {stats.latency_p95_ms:.0f} ms"
    )
    m3.metric("Faces", stats.faces if live else "-")
    st.caption(f"Frames analysed: {stats.frames} · dropped: {stats.dropped} · model: {stats.model}")
    found = processor.main_face()
    if live and found is not None:
        main = found[0]
        st.markdown(f"**Main face:** {main.label} ({main.confidence:.0%})")
    history = processor.history()
    if len(history):
        fig = go.Figure()
        t = history["time_s"] - history["time_s"].iloc[-1]
        for c in processor.classes:
            fig.add_scatter(x=t, y=history[c], name=c, mode="lines", line={"color": CLASS_COLORS.get(c)})
        fig.update_layout(
            height=290,
            margin={"l": 10, "r": 10, "t": 30, "b": 10},
            title={"text": "Main face, last seconds", "font": {"size": 13}},
            xaxis={"title": "seconds ago"},
            yaxis={"range": [0, 1], "tickformat": ".0%"},
            legend={"orientation": "h", "y": -0.45},
        )
        st.plotly_chart(fig, key="webcam_history")
    counts = processor.label_counts()
    if counts:
        top, total = next(iter(counts)), sum(counts.values())
        st.caption(f"Main face this session: {top} on {counts[top] / total:.0%} of {total} frames")
    timeline = processor.timeline()
    c1, c2 = st.columns(2)
    c1.download_button(
        "Session timeline (CSV)",
        timeline.to_csv(index=False),
        "webcam_timeline.csv",
        "text/csv",
        icon=":material/download:",
        disabled=not len(timeline),
        key="webcam_csv",
    )
    c2.button(
        "Snapshot → Explain",
        icon=":material/psychology:",
        on_click=_snapshot,
        args=(processor,),
        disabled=found is None,
        key="webcam_snapshot",
    )
    if st.session_state.get("goto_explain"):
        st.switch_page(EXPLAIN_PAGE)
    if st.session_state.pop("webcam_no_face", False):
        st.warning("No face in the current frame.")


with panel:
    live_panel(processor)

# below the video and the live panel, outside the panel's twice-a-second fragment, so an open expression
# list is not redrawn under the cursor; the crop is the newest frame's main face at the moment of the click
with st.expander("Capture this face for fine-tuning", expanded=True):
    save_face_control("webcam_myface", partial(_main_face, processor))
