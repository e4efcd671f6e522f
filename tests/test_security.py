"""Security promises, checked: nothing user data reaches is unpickled, uploads stay in memory or in a
private temporary file that is removed, upload sizes are limited, and nothing phones home (Streamlit's
usage statistics are off and the webcam page contacts no STUN or TURN server).

Hostile files themselves (pickled checkpoints that must never be unpickled, decompression bombs, zips
that escape) are in test_hostile_inputs.py.
"""

from __future__ import annotations

import ast
import io
import os
import stat
import tempfile
import tomllib
from types import SimpleNamespace

import numpy as np
from PIL import Image
from streamlit.testing.v1 import AppTest

from conftest import ROOT

APP_CODE = sorted(
    [ROOT / "streamlit_app.py", *(ROOT / "fer_core").rglob("*.py"), *(ROOT / "pages").glob("*.py")]
    + list((ROOT / "scripts").glob("*.py"))
)
UNPICKLERS = {
    "pickle.load", "pickle.loads", "pickle.Unpickler", "cPickle.load", "cPickle.loads", "dill.load", "dill.loads",
    "joblib.load", "shelve.open", "marshal.load", "marshal.loads", "pd.read_pickle", "pandas.read_pickle",
    "torch.jit.load", "np.lib.format.read_array",
}  # fmt: skip
PICKLE_MODULES = {"pickle", "cPickle", "_pickle", "dill", "joblib", "shelve", "marshal", "cloudpickle"}


def _name(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_name(node.value)}.{node.attr}"
    return ""


def _keyword(call: ast.Call, name: str) -> object:
    for kw in call.keywords:
        if kw.arg == name:
            return kw.value.value if isinstance(kw.value, ast.Constant) else kw.value
    return None


def unpickling_calls(source: str) -> list[str]:
    """Every place in ``source`` that could unpickle: pickle-family imports and loads, ``torch.load``
    without ``weights_only=True``, ``np.load`` without ``allow_pickle=False``, ``yaml.load`` without a safe loader."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            found += [f"line {node.lineno}: import {n}" for n in names if n.split(".")[0] in PICKLE_MODULES]
        if not isinstance(node, ast.Call):
            continue
        name, where = _name(node.func), f"line {node.lineno}: {_name(node.func)}(...)"
        if name in UNPICKLERS:
            found.append(where)
        elif name == "torch.load" and _keyword(node, "weights_only") is not True:
            found.append(where + " without weights_only=True")
        elif name in ("np.load", "numpy.load") and _keyword(node, "allow_pickle") is not False:
            found.append(where + " without allow_pickle=False")
        elif name == "yaml.load" and "Safe" not in _name(_keyword(node, "Loader") or ast.Name("")):
            found.append(where + " without a safe Loader")
    return found


def test_the_scanner_finds_unpickling():
    """The check below must be able to fail."""
    bad = """
import pickle
import numpy as np, torch
from joblib import load
torch.load(path)
torch.load(path, weights_only=False)
np.load(path, allow_pickle=True)
np.load(path)
pickle.loads(data)
"""
    assert len(unpickling_calls(bad)) == 7
    good = "import numpy as np, torch\ntorch.load(p, weights_only=True)\nnp.load(p, allow_pickle=False)\n"
    assert unpickling_calls(good) == []


def test_nothing_in_the_app_or_scripts_can_unpickle():
    """Checkpoints are safetensors, saved predictions and caches .npz without pickles, resume states
    ``torch.load(weights_only=True)``: no code path that user data reaches can run a pickle."""
    found = {str(p.relative_to(ROOT)): calls for p in APP_CODE if (calls := unpickling_calls(p.read_text()))}
    assert found == {}
    assert len(APP_CODE) > 40


def test_streamlit_config_limits_uploads_and_sends_no_usage_statistics():
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["browser"]["gatherUsageStats"] is False
    assert config["server"]["maxUploadSize"] <= 50  # MB per file; photos are also capped at 40 M pixels
    assert config["server"].get("enableXsrfProtection", True) is True
    assert config["server"].get("enableCORS", True) is True


def test_webcam_contacts_no_stun_or_turn_server_by_default(monkeypatch, zoo_root, tmp_path):
    """The page gives streamlit-webrtc an explicit empty ICE server list; without it, streamlit-webrtc
    looks servers up itself and aiortc falls back to Google's STUN server. The page runs in AppTest with
    the streamer recorded; what it was given then goes through streamlit-webrtc's and aiortc's own code."""
    import streamlit_webrtc
    import streamlit_webrtc.component as component
    from aiortc import RTCIceGatherer

    monkeypatch.setenv("FER_CHECKPOINTS", str(zoo_root))
    monkeypatch.setenv("FER_USER_MODELS", str(tmp_path / "user_models"))
    monkeypatch.delenv("FER_ICE_SERVERS", raising=False)
    seen: list[dict] = []

    def spy(*args, **kwargs):  # noqa: ANN202 (the real component needs a browser: AppTest has none)
        seen.append(kwargs)
        return SimpleNamespace(state=SimpleNamespace(playing=False, signalling=False))

    def no_defaults(*args, **kwargs):  # noqa: ANN202
        raise AssertionError("streamlit-webrtc looked up default ICE servers")

    monkeypatch.setattr(streamlit_webrtc, "webrtc_streamer", spy)
    monkeypatch.setattr(component, "get_available_ice_servers", no_defaults)
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=120)
    at.run()
    at.switch_page("pages/webcam.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert seen, "the webcam page did not start a streamer"
    kwargs = seen[-1]
    assert kwargs["rtc_configuration"] == {"iceServers": []}
    assert kwargs.get("server_rtc_configuration") is None and kwargs.get("frontend_rtc_configuration") is None
    # what the browser and the server side then use
    assert component.enhance_frontend_rtc_configuration(kwargs["rtc_configuration"]) == {"iceServers": []}
    server = component._resolve_server_rtc_configuration(kwargs["rtc_configuration"])
    assert server.iceServers == []
    ours, default = RTCIceGatherer(iceServers=server.iceServers)._connection, RTCIceGatherer()._connection
    assert (ours.stun_server, ours.turn_server) == (None, None)
    assert default.stun_server == ("stun.l.google.com", 19302)  # what an unset configuration would contact


def test_uploads_stay_in_memory_or_a_private_temporary_file_that_is_removed(monkeypatch, zoo_root, tmp_path):
    """Photos are decoded from the uploaded bytes; a video goes through a 0600 temporary file (PyAV reads
    files) that is gone once analysed."""
    from fer_core.faces import write_video

    monkeypatch.setenv("FER_CHECKPOINTS", str(zoo_root))
    monkeypatch.setenv("FER_USER_MODELS", str(tmp_path / "user_models"))
    made: list[tuple[str, int]] = []
    real = tempfile.NamedTemporaryFile

    def spy(*args, **kwargs):  # noqa: ANN202
        f = real(*args, **kwargs)
        made.append((f.name, stat.S_IMODE(os.stat(f.name).st_mode)))
        return f

    monkeypatch.setattr(tempfile, "NamedTemporaryFile", spy)
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=120)
    at.run()
    at.switch_page("pages/upload.py").run()
    photo = io.BytesIO()
    Image.fromarray(np.full((48, 64, 3), 128, np.uint8)).save(photo, "PNG")
    at.file_uploader(key="uploads").set_value(("photo.png", photo.getvalue(), "image/png")).run()
    assert not at.exception and "photo.png" in [s.value for s in at.subheader]
    assert made == []  # a photo never touches the disk
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, (48, 64, 3), dtype=np.uint8) for _ in range(3)]
    video = write_video(tmp_path / "clip.mp4", frames, fps=5).read_bytes()
    at.file_uploader(key="uploads").set_value(("clip.mp4", video, "video/mp4")).run()
    assert not at.exception, [e.value for e in at.exception]
    assert len(made) == 1
    path, mode = made[0]
    assert mode == 0o600, oct(mode)
    assert not os.path.exists(path)


def test_the_favicon_is_not_fetched_from_the_internet():
    """Streamlit draws an emoji favicon in the browser, but fetches a ":material/..." one from
    fonts.gstatic.com on every page load (found by scripts/load_test.py, which counts failed requests)."""
    from streamlit.commands.page_config import _get_favicon_string

    calls = [
        n
        for n in ast.walk(ast.parse((ROOT / "streamlit_app.py").read_text()))
        if isinstance(n, ast.Call) and _name(n.func).endswith("set_page_config")
    ]
    assert len(calls) == 1
    icon = _keyword(calls[0], "page_icon")
    assert isinstance(icon, str) and _get_favicon_string(icon).startswith("emoji:"), icon
    assert not _get_favicon_string(":material/mood:").startswith("emoji:")  # the check can fail


def test_the_users_own_faces_are_stored_private(tmp_path):
    """Faces from a fine-tune zip and faces saved from the Upload/Webcam pages: folders only this user reads."""
    import zipfile

    from fer_core.jobs.my_faces import save_face
    from fer_core.jobs.uploads import extract_faces_zip

    face = np.asarray(Image.open(next((ROOT / "tests/fixtures/fer2013_mini/train/happy").iterdir())))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for cls in ("happy", "sad"):
            for i in range(5):
                png = io.BytesIO()
                Image.fromarray(np.roll(face, i + 7 * (cls == "sad"), 1)).save(png, "PNG")
                zf.writestr(f"{cls}/{i}.png", png.getvalue())
    extract_faces_zip(io.BytesIO(buf.getvalue()), tmp_path / "zip")
    saved = save_face(face, "happy", root=tmp_path / "mine")
    for folder in (tmp_path / "zip", tmp_path / "zip" / "happy", saved.parent.parent, saved.parent):
        assert stat.S_IMODE(folder.stat().st_mode) & 0o077 == 0, folder
