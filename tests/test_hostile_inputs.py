"""Hostile input: every kind the reliability issue lists gets a clear message, nothing else is lost, and the
app keeps serving.

``HOSTILE`` below is the index: each input of the issue and the test that covers it. Most tests are
here; a few inputs were already tested where their code lives (zip uploads in test_jobs.py, fine-tune
settings in test_jobs.py, single-checkpoint loading in test_checkpoint.py) and the index points there;
``test_every_hostile_input_has_a_test`` keeps the index honest. Images go through ``fer_core.predict``,
which is what the Upload page runs (``read_image`` then ``analyse_image``), and once through the page
itself; crashers the fuzzer (``scripts/fuzz_images.py``) found are replayed from ``tests/fixtures/fuzz``.
"""

from __future__ import annotations

import functools
import importlib.util
import io
import pickle
import re
import shutil
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from streamlit.testing.v1 import AppTest

from conftest import MINI_CSV, MINI_FOLDER, ROOT
from fer_core.checkpoint import CheckpointError, load_checkpoint, model_meta, save_checkpoint
from fer_core.data import CLASSES, DataError, load_fer2013, load_fer2013_csv, load_notes
from fer_core.data.images import MAX_PIXELS
from fer_core.faces import compose_scene, iou
from fer_core.inference import LoadedModel, load_models, predict
from fer_core.jobs import JobError, JobSpec, UploadError, extract_faces_zip
from fer_core.models import create_model
from fer_core.zoo import list_zoo, zoo_table

TESTS = Path(__file__).parent
HERE, JOBS, FAULTS = "test_hostile_inputs.py", "test_jobs.py", "test_faults.py"
HOSTILE: dict[str, tuple[str, str]] = {
    # images (through fer_core.predict, the Upload page's path), then the page itself
    "image: not an image": (HERE, "test_hostile_image"),
    "image: truncated": (HERE, "test_hostile_image"),
    "image: zero bytes": (HERE, "test_hostile_image"),
    "image: decompression bomb": (HERE, "test_hostile_image"),
    "image: 20000 x 20000 PNG": (HERE, "test_hostile_image"),
    "image: animated GIF": (HERE, "test_awkward_image_keeps_its_face"),
    "image: 16-bit": (HERE, "test_awkward_image_keeps_its_face"),
    "image: CMYK": (HERE, "test_awkward_image_keeps_its_face"),
    "image: palette with transparency": (HERE, "test_awkward_image_keeps_its_face"),
    "image: EXIF-rotated": (HERE, "test_awkward_image_keeps_its_face"),
    "image: SVG or HTML renamed .jpg": (HERE, "test_hostile_image"),
    "image: EPS (Ghostscript) or another format we do not read": (HERE, "test_hostile_image"),
    "image: the list through the Upload page": (HERE, "test_upload_page_survives_hostile_files"),
    "image: fuzz crashers": (HERE, "test_fuzz_crashers_stay_fixed"),
    "video: frames over the pixel limit": (HERE, "test_video_frames_over_the_pixel_limit_are_refused"),
    # data
    "data: FER2013 folder with a missing split": (HERE, "test_fer2013_folder_with_a_missing_split"),
    "data: an empty class": (HERE, "test_empty_class_and_stray_files_are_reported"),
    "data: a stray non-image": (HERE, "test_empty_class_and_stray_files_are_reported"),
    "data: csv with malformed pixel strings": (HERE, "test_csv_malformed_rows_are_named_and_the_rest_load"),
    "data: csv with wrong column names": (HERE, "test_csv_that_is_not_fer2013_is_refused"),
    "data: zip with ../ entries": (JOBS, "test_bad_zips_are_refused"),
    "data: zip with symlinks": (JOBS, "test_bad_zips_are_refused"),
    "data: zip escaping by backslash or drive": (HERE, "test_zip_escapes_are_refused_before_writing"),
    # checkpoints
    "checkpoint: truncated safetensors": (HERE, "test_broken_checkpoints_are_listed_and_the_rest_work"),
    "checkpoint: unknown architecture in the sidecar": (HERE, "test_broken_checkpoints_are_listed_and_the_rest_work"),
    "checkpoint: mismatched shape": (HERE, "test_broken_checkpoints_are_listed_and_the_rest_work"),
    "checkpoint: pickle dropped in, never unpickled": (HERE, "test_broken_checkpoints_are_listed_and_the_rest_work"),
    "checkpoint: the same, one file at a time": ("test_checkpoint.py", "test_a_pickle_is_never_unpickled"),
    "checkpoint: the zoo in the dashboard": (HERE, "test_upload_page_survives_hostile_files"),
    # settings
    "settings: out-of-range fine-tune parameters": (JOBS, "test_out_of_range_settings_are_refused"),
    "settings: the other fine-tune parameters": (HERE, "test_fine_tune_settings_out_of_range"),
    "settings: unknown model names on the command line": (HERE, "test_unknown_model_names_on_the_command_line"),
    # faults (tests/test_faults.py) and the fine-tune job's (tests/test_jobs.py)
    "fault: kill -9 of training mid-epoch, then --resume": (
        FAULTS,
        "test_sigkill_mid_epoch_then_resume_matches_an_uninterrupted_run",
    ),
    "fault: kill -9 of a fine-tune job": (
        JOBS,
        "test_after_a_sigkill_the_queue_goes_on_and_retry_resumes_from_the_last_epoch",
    ),
    "fault: full disk during checkpoint save": (
        FAULTS,
        "test_full_disk_during_checkpoint_save_keeps_the_old_checkpoint",
    ),
}


def test_every_hostile_input_has_a_test():
    for item, (file, name) in HOSTILE.items():
        assert re.search(rf"^def {name}\(", (TESTS / file).read_text(), re.M), f"{item}: {file}::{name} is missing"


def script(name: str):  # noqa: ANN201 (a module)
    """A command-line script as a module, so its ``main`` runs in this process (a traceback would fail the test)."""
    spec = importlib.util.spec_from_file_location(f"cli_{name}", ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


# ---- images -------------------------------------------------------------------------------------------


@functools.cache
def zero_png(width: int, height: int, bit_depth: int = 8) -> bytes:
    """A valid all-black grayscale PNG of any size, made in milliseconds.

    Every row is the same, so after the first the deflate stream repeats one block (flushed at row
    boundaries); only the checksum sees every byte. That is how a bomb is small: a 20000 x 20000 PNG
    is 0.4 MB here and 400 MB decoded."""
    row = b"\0" * (1 + (width * bit_depth + 7) // 8)
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = c.compress(row) + c.flush(zlib.Z_SYNC_FLUSH)
    repeat = c.compress(row) + c.flush(zlib.Z_SYNC_FLUSH)
    assert c.compress(row) + c.flush(zlib.Z_SYNC_FLUSH) == repeat
    adler = 1
    for _ in range(height):
        adler = zlib.adler32(row, adler)
    idat = b"\x78\xda" + first + repeat * (height - 1) + c.flush() + struct.pack(">I", adler)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


@pytest.fixture(scope="module")
def face(findable_faces) -> np.ndarray:
    """One mini-FER2013 face the Haar detector finds alone in a plain scene."""
    return findable_faces[0]


@pytest.fixture(scope="module")
def photo(face) -> tuple[Image.Image, tuple[int, int, int, int]]:
    img, boxes = compose_scene([face], (400, 300), 120, [(140, 80, 120, 120)])
    return img, boxes[0]


@pytest.fixture(scope="module")
def models(zoo_root) -> list[LoadedModel]:
    return load_models(["alpha", "beta"], root=zoo_root)


def hostile_image(kind: str, photo: Image.Image) -> bytes:
    jpeg = lambda: encode(photo, "JPEG")  # noqa: E731
    png = lambda: encode(photo, "PNG")  # noqa: E731
    make = {
        "zero-bytes": lambda: b"",
        "text": lambda: b"Dear diary, today I renamed a text file to .jpg\n" * 20,
        "truncated-jpeg": lambda: jpeg()[: len(jpeg()) // 2],
        "truncated-png": lambda: png()[: len(png()) // 2],
        "svg-renamed-jpg": lambda: (
            b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="400" '
            b'height="300"><circle cx="200" cy="150" r="80"/><script>alert(1)</script></svg>\n'
        ),
        "html-renamed-jpg": lambda: b"<!DOCTYPE html><html><body><img src=x onerror=alert(1)></body></html>",
        "bomb-1bit-100000px": lambda: zero_png(100_000, 100_000, 1),  # 1.2 MB: 10 G pixels once decoded
        "png-20000x20000": lambda: zero_png(20_000, 20_000),
        "eps-renamed-jpg": lambda: b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 400 300\nshowpage\n%%EOF\n",
        "tga-renamed-jpg": lambda: encode(photo, "TGA"),  # Pillow reads it; we do not: fewer parsers exposed
        "png-over-our-limit": lambda: zero_png(8_000, 8_000, 1),  # 64 M pixels: under Pillow's bomb limit, over ours
    }
    return make[kind]()


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("zero-bytes", "empty file"),
        ("text", "not an image"),
        ("truncated-jpeg", "not a readable image .*truncated"),
        ("truncated-png", "not a readable image"),
        ("svg-renamed-jpg", "not an image"),
        ("html-renamed-jpg", "not an image"),
        ("eps-renamed-jpg", r"not an image \(expected JPEG, PNG"),  # EPS would run Ghostscript
        ("tga-renamed-jpg", r"not an image \(expected JPEG, PNG"),
        ("bomb-1bit-100000px", r"image too large \(10,000,000,000 pixels, limit 40,000,000\)"),
        ("png-20000x20000", r"image too large \(400,000,000 pixels"),
        ("png-over-our-limit", r"image too large \(8000x8000 pixels"),
    ],
)
def test_hostile_image(kind, message, photo, models, monkeypatch):
    """Refused with the reason, before decoding what is too big or parsing what we do not read (EPS would
    start Ghostscript); the next photo is analysed as usual."""
    from PIL import EpsImagePlugin

    def no_eps(self):  # noqa: ANN001, ANN202
        raise AssertionError("Pillow's EPS parser was reached")

    monkeypatch.setattr(EpsImagePlugin.EpsImageFile, "_open", no_eps)
    img, box = photo
    data = hostile_image(kind, img)
    with pytest.raises(ValueError, match=message):
        predict(data, models, source="upload.jpg")
    result = predict(encode(img, "PNG"), models)  # nothing lost: the process serves the next photo
    assert len(result.faces) == 1 and iou(result.faces[0].box, box) > 0.5
    assert MAX_PIXELS == 40_000_000


@pytest.mark.parametrize(
    "kind",
    ["animated-gif", "png-16bit", "jpeg-cmyk", "png-palette-transparent", "jpeg-exif-rotated", "png-rgba", "png-la"],
)
def test_awkward_image_keeps_its_face(kind, photo, models, tmp_path):
    """Formats that are fine but unusual: the face is found where the plain RGB photo has it."""
    img, box = photo
    if kind == "animated-gif":  # the face is in frame 1; two faceless frames follow
        others = [Image.new("RGB", img.size, (90 + 40 * i, 90, 90)) for i in range(2)]
        data = encode(img, "GIF", save_all=True, append_images=others, duration=100, loop=0)
    elif kind == "png-16bit":
        data = encode(Image.fromarray(np.asarray(img.convert("L")).astype(np.uint16) * 257), "PNG")
    elif kind == "jpeg-cmyk":
        data = encode(img.convert("CMYK"), "JPEG", quality=95)
    elif kind == "png-palette-transparent":  # a strip of the transparent colour: composited on white
        pal = np.asarray(img.convert("P", palette=Image.Palette.ADAPTIVE, colors=255)).copy()
        pal[:40] = 255
        p_img = Image.fromarray(pal, "P")
        p_img.putpalette(img.convert("P", palette=Image.Palette.ADAPTIVE, colors=255).getpalette()[:765] + [0, 0, 0])
        data = encode(p_img, "PNG", transparency=255)
        assert Image.open(io.BytesIO(data)).info.get("transparency") == 255
    elif kind == "jpeg-exif-rotated":  # stored on its side; EXIF orientation 6 says rotate 90 clockwise
        exif = Image.Exif()
        exif[0x0112] = 6
        data = encode(img.transpose(Image.Transpose.ROTATE_90), "JPEG", quality=95, exif=exif)
    elif kind == "png-rgba":
        a = np.asarray(img.convert("RGBA")).copy()
        a[:40, :, 3] = 0  # a transparent strip: composited on white
        data = encode(Image.fromarray(a), "PNG")
    else:
        data = encode(img.convert("LA"), "PNG")
    path = tmp_path / f"photo-{kind}"
    path.write_bytes(data)
    (baseline,) = predict(img, models).faces
    for source in (data, path):  # uploaded bytes (the page) and a file on disk (the CLI)
        result = predict(source, models)
        assert result.size == (400, 300) and result.image.mode == "RGB" and result.image.size == (400, 300)
        assert len(result.faces) == 1 and iou(result.faces[0].box, box) > 0.5, (kind, result.faces)
        if kind != "animated-gif":  # GIF's 256 colours move the box a little; the rest: where the RGB photo has it
            assert iou(result.faces[0].box, baseline.box) > 0.85, (kind, result.faces[0].box, baseline.box)
    if kind == "animated-gif":
        assert any("animated image with 3 frames: analysed the first frame only" in n for n in result.notes)


def test_fuzz_crashers_stay_fixed():
    """Every input ``scripts/fuzz_images.py`` found crashing decoding or cropping now meets the contract."""
    fuzz = script("fuzz_images")
    crashers = sorted(fuzz.CRASHERS.iterdir())
    assert len(crashers) >= 4
    for path in crashers:
        outcome = fuzz.replay(path)  # raises on a crash or a broken contract
        assert outcome.startswith(("refused: ", "ok")), (path.name, outcome)


def test_video_frames_over_the_pixel_limit_are_refused(face, models, tmp_path, monkeypatch):
    from fer_core.faces import write_video
    from fer_core.inference import predict_video

    frames = [np.asarray(compose_scene([face], (96, 64), 48, [(20, 8, 48, 48)])[0])] * 3
    clip = write_video(tmp_path / "clip.mp4", frames, fps=5)
    monkeypatch.setattr("fer_core.faces.video.MAX_PIXELS", 95 * 63)  # a tiny limit instead of a huge video
    with pytest.raises(ValueError, match=r"video frames too large \(96x64 pixels, limit 5,985\)"):
        predict_video(clip, models)
    monkeypatch.undo()
    assert len(predict_video(clip, models).frames) == 3  # under the real limit it is analysed


# ---- data ---------------------------------------------------------------------------------------------


@pytest.fixture
def fer_copy(tmp_path) -> Path:
    return Path(shutil.copytree(MINI_FOLDER, tmp_path / "fer2013"))


def test_fer2013_folder_with_a_missing_split(fer_copy, capsys):
    shutil.rmtree(fer_copy / "test")
    with pytest.raises(DataError, match=r"Missing folder: .*fer2013/test"):
        load_fer2013(fer_copy)
    assert script("train_all").main(["--models", "deep_emotion", "--data", str(fer_copy)]) == 2
    assert re.search(r"^error: Missing folder: .*fer2013/test$", capsys.readouterr().err, re.M)


def test_empty_class_and_stray_files_are_reported(fer_copy, mini_splits):
    for f in (fer_copy / "train" / "disgust").iterdir():
        f.unlink()
    (fer_copy / "train" / "happy" / "notes.txt").write_text("a stray file")
    (fer_copy / "train" / "happy" / "page.jpg").write_text("<html>a web page saved as .jpg</html>")
    (fer_copy / "train" / "happy" / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (fer_copy / "README.md").write_text("a stray file beside the splits")
    splits = load_fer2013(fer_copy)
    expected = mini_splits["Training"].class_counts()
    expected[CLASSES.index("disgust")] = 0
    assert splits["Training"].class_counts() == expected  # every real face is there
    assert [len(s) for s in splits.values()][1:] == [len(mini_splits[s]) for s in ("PublicTest", "PrivateTest")]
    notes = load_notes(splits)
    assert "Training has no disgust faces" in notes
    skipped = next(n for n in notes if n.startswith("skipped 2 unreadable files"))
    bad = splits["Training"].summary.bad_files
    assert any("notes.txt: not an image file" in b for b in bad), skipped
    assert any("page.jpg: not an image (expected JPEG" in b for b in bad)


def test_csv_malformed_rows_are_named_and_the_rest_load(tmp_path):
    lines = MINI_CSV.read_bytes().splitlines()
    bad_rows = [
        b"3,1 2 x 4,Training",  # row 2: a word among the pixels
        b"3," + b" ".join([b"nan"] * 2304) + b",Training",  # row 3
        b"3," + b" ".join([b"256"] * 2304) + b",Training",  # row 4: out of range
        b"3," + b"1 " * 70_000 + b",Training",  # row 5: a field longer than the csv module accepts
        b"3,\xff\xfe\x00 caf\xe9 latin-1 bytes,Training",  # row 6: not UTF-8
        b"3",  # row 7: too few columns
    ]
    path = tmp_path / "fer2013.csv"
    path.write_bytes(b"\xef\xbb\xbf" + b"\n".join([lines[0], *bad_rows, *lines[1:]]) + b"\n")  # with a BOM
    splits = load_fer2013_csv(path)
    assert [len(s) for s in splits.values()] == [21, 14, 14]  # all 49 good rows
    bad = splits["Training"].summary.bad_files
    assert [b.split(": ", 1)[0].rsplit(" ", 1)[1] for b in bad] == ["2", "3", "4", "5", "6", "7"]
    assert "field larger than field limit" in bad[3] and max(len(b) for b in bad) < 400
    assert load_notes(splits)[0].startswith("skipped 6 unreadable files, e.g. ")


def test_csv_that_is_not_fer2013_is_refused(tmp_path, capsys):
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("label,image,split\n0,1 2 3,Training\n")
    with pytest.raises(DataError, match=r"missing column\(s\) \['Usage', 'emotion', 'pixels'\]; found \['label'"):
        load_fer2013_csv(wrong)
    binary = tmp_path / "photo.csv"
    binary.write_bytes(encode(Image.new("RGB", (64, 64)), "PNG"))
    with pytest.raises(DataError, match="missing column"):
        load_fer2013(binary)
    assert script("train_all").main(["--models", "deep_emotion", "--data", str(binary)]) == 2
    assert "error: " in capsys.readouterr().err


def zip_bytes(entries: dict[str, bytes]) -> bytes:
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in entries.items():
            zf.writestr(zipfile.ZipInfo(name), data)
    return buf.getvalue()


@pytest.mark.parametrize("evil", ["happy\\..\\..\\evil.jpg", "C:/evil.jpg", "happy/../../../evil.jpg"])
def test_zip_escapes_are_refused_before_writing(evil, tmp_path):
    """The whole zip is refused before a byte is written, the good faces in it included."""
    jpg = next(MINI_FOLDER.rglob("*.jpg")).read_bytes()
    good = {f"{c}/{i}.jpg": jpg for c in ("happy", "sad") for i in range(5)}
    dest = tmp_path / "uploads" / "job"
    with pytest.raises(UploadError, match="unsafe path in the zip"):
        extract_faces_zip(zip_bytes({**good, evil: jpg}), dest)
    assert not dest.exists() and not list(tmp_path.rglob("evil.jpg"))


# ---- checkpoints --------------------------------------------------------------------------------------


class _Unpickled:
    """Unpickling this object creates ``marker``: proof that someone unpickled it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.fixture
def hostile_zoo(tmp_path, zoo_root, monkeypatch) -> tuple[Path, Path]:
    """The shipped-like alpha and beta, and beside them every kind of broken checkpoint."""
    root, marker = tmp_path / "checkpoints", tmp_path / "UNPICKLED"
    for name in ("alpha", "beta"):
        shutil.copytree(zoo_root / name, root / name)
    (root / "truncated").mkdir()
    whole = (zoo_root / "alpha" / "model.safetensors").read_bytes()
    (root / "truncated" / "model.safetensors").write_bytes(whole[: len(whole) // 2])
    torch.manual_seed(0)
    tiny = create_model("vggnet", widths=(8, 16, 16, 16), fc=32)
    save_checkpoint(tiny, root / "unknown_arch" / "model.safetensors", {**model_meta(tiny), "model": "resnet9000"})
    wrong = {**model_meta(tiny), "model_args": {"widths": [8, 16, 16, 16], "fc": 64}}
    save_checkpoint(tiny, root / "wrong_shape" / "model.safetensors", wrong)
    huge = {**model_meta(tiny), "model_args": {"widths": [4096] * 4, "fc": 1_000_000}}  # 4 TB if it were built
    save_checkpoint(tiny, root / "huge_args" / "model.safetensors", huge)
    (root / "pickled").mkdir()
    (root / "pickled" / "model.pkl").write_bytes(pickle.dumps({"weights": _Unpickled(marker)}))
    (root / "torch_saved").mkdir()
    torch.save({"state_dict": tiny.state_dict(), "x": _Unpickled(marker)}, root / "torch_saved" / "model.pth")
    (root / "renamed_pickle").mkdir()
    torch.save({"x": _Unpickled(marker)}, root / "renamed_pickle" / "model.safetensors")
    monkeypatch.setenv("FER_CHECKPOINTS", str(root))
    monkeypatch.setenv("FER_USER_MODELS", str(tmp_path / "user_models"))
    return root, marker


BROKEN = {
    "truncated": "not a readable safetensors file",
    "unknown_arch": "unknown model 'resnet9000'",
    "wrong_shape": r"weights do not match vggnet \(wrong shape: classifier",
    "huge_args": "weights do not match vggnet",
    "pickled": r"no model.safetensors \(found model.pkl; pickled files are never loaded\)",
    "torch_saved": r"no model.safetensors \(found model.pth; pickled files are never loaded\)",
    "renamed_pickle": "not a readable safetensors file",
}


def test_broken_checkpoints_are_listed_and_the_rest_work(hostile_zoo, photo, capsys):
    root, marker = hostile_zoo
    entries = {e.name: e for e in list_zoo(root)}
    assert {n for n, e in entries.items() if e.ok} == {"alpha", "beta"}
    for name, reason in BROKEN.items():
        assert re.search(f"{root / name}.*{reason}", entries[name].error), (name, entries[name].error)
    table = zoo_table(list(entries.values())).set_index("model")
    assert table.loc["alpha", "status"] == "ok" and table.loc["truncated", "status"].startswith("broken: ")
    # every other model still works: by default (all usable ones), by name, and from the command line
    assert [m.name for m in load_models(None, root)] == ["alpha", "beta"]
    img, box = photo
    result = predict(img)
    assert result.models == ["alpha", "beta"] and iou(result.faces[0].box, box) > 0.5
    for name, reason in BROKEN.items():
        with pytest.raises(CheckpointError, match=reason):
            load_models(name, root)
        (weights,) = [p for p in (root / name).iterdir() if p.suffix != ".json"]
        with pytest.raises(CheckpointError, match=re.escape(str(weights))):
            load_checkpoint(weights)
    (root.parent / "photo.png").write_bytes(encode(img, "PNG"))
    predict_cli = script("predict")
    assert predict_cli.main([str(root.parent / "photo.png"), "--models", "alpha,beta", "--no-progress"]) == 0
    assert predict_cli.main([str(root.parent / "photo.png"), "--models", "alpha,renamed_pickle"]) == 2
    assert "not a readable safetensors file" in capsys.readouterr().err
    assert not marker.exists(), "a pickle was unpickled"


def test_upload_page_survives_hostile_files(hostile_zoo, photo, monkeypatch, tmp_path):
    """In the dashboard, with the hostile zoo: the zoo page names each broken checkpoint, the Upload page
    offers only the working ones, each hostile file gets its message, and the next photo is analysed."""
    root, marker = hostile_zoo
    monkeypatch.setenv("FER_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.delenv("FER2013_DIR", raising=False)
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=180)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    warnings = " ".join(w.value for w in at.warning)
    for name in BROKEN:
        assert f"{name}: broken: " in warnings, name
    at.switch_page("pages/upload.py").run()
    assert at.multiselect(key="upload_models").value == ["alpha", "beta"]
    img, _ = photo
    for name in ("svg-renamed-jpg", "png-20000x20000", "truncated-jpeg", "zero-bytes"):
        at.file_uploader(key="uploads").set_value((f"{name}.jpg", hostile_image(name, img), "image/jpeg")).run()
        assert not at.exception, [e.value for e in at.exception]
        assert [e.value for e in at.error if e.value.startswith(f"{name}.jpg: ")], (name, [e.value for e in at.error])
    at.file_uploader(key="uploads").set_value(("me.png", encode(img, "PNG"), "image/png")).run()
    assert not at.exception and not at.error
    assert any(m.value.startswith("### ") for m in at.markdown)  # emoji and label of the one face
    assert any((c.key or "").startswith("bars_") for c in at.get("plotly_chart"))
    assert not marker.exists()


# ---- settings -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"holdout": 0.9}, "held-out fraction 0.9: 0.05 to 0.5"),
        ({"holdout": 0.0}, "held-out fraction 0.0"),
        ({"per_class": 5}, "faces per class 5: 10 to 10,000"),
        ({"per_class": 50_000}, "faces per class 50000"),
        ({"optimizer": "lion"}, "optimizer 'lion': adamw, adam or sgd"),
        ({"schedule": "warp"}, "schedule 'warp'"),
        ({"lr": float("inf")}, "learning rate inf"),
        ({"lr": -1e-3}, "learning rate -0.001"),
        ({"batch_size": 4096}, "batch size 4096: a whole number from 1 to 1024"),
        ({"kind": "evil"}, "kind 'evil'"),
        ({"data": "imagenet"}, "data 'imagenet'"),
        ({"kind": "sweep", "model": "resnet9000"}, "model 'resnet9000' is not in the zoo"),
        ({"epochs": 2.5}, "epochs 2.5: a whole number"),
        ({"epochs": "3"}, "epochs '3'"),
        ({"batch_size": None}, "batch size None"),
        ({"holdout": "0.2"}, "held-out fraction 0.2"),
        ({"threads": -2}, "threads -2"),
        ({"max_train_samples": -5}, "training samples -5"),
    ],
    ids=lambda v: ",".join(f"{k}={x}" for k, x in v.items()) if isinstance(v, dict) else "",
)
def test_fine_tune_settings_out_of_range(bad, message, zoo_root):
    """The settings test_jobs.py does not try (it covers epochs, batch 0, lr 0/5/NaN, augmentation, names,
    paths), straight through ``JobSpec.validate`` as the page and sweep.py call it."""
    spec = JobSpec(name="tuned", base=str(zoo_root / "alpha" / "model.safetensors"), data_path=str(MINI_FOLDER))
    spec.validate()  # the defaults are fine
    for key, value in bad.items():
        setattr(spec, key, value)
    with pytest.raises(JobError, match=re.escape(message)):
        spec.validate()


def test_unknown_model_names_on_the_command_line(zoo_root, tmp_path, capsys, monkeypatch):
    """Each script says which name is unknown and what exists, exits 2, and raises nothing (no traceback)."""
    monkeypatch.setenv("FER_JOBS_DIR", str(tmp_path / "jobs"))
    monkeypatch.setenv("FER_USER_MODELS", str(tmp_path / "user_models"))
    mini, zoo, nowhere = str(MINI_FOLDER), str(zoo_root), str(tmp_path / "nowhere")
    cases = [
        ("train_all", ["--models", "vggnet,resnet9000", "--data", mini], r"unknown model 'resnet9000'.*vggnet"),
        ("evaluate", ["--checkpoint", "resnet9000", "--data", mini], r"resnet9000: no such checkpoint file"),
        ("predict", [mini, "--models", "resnet9000", "--checkpoints", zoo], r"unknown model 'resnet9000'.*alpha, beta"),
        ("predict", [mini, "--models", "alpha", "--checkpoints", nowhere], r"unknown model 'alpha'.*available: none"),
        ("sweep", ["--model", "resnet9000", "--data", mini], r"model 'resnet9000' is not in the zoo"),
        ("sweep", ["--model", "vggnet", "--lrs", "fast", "--data", mini], r"--lrs: 'fast' is not a comma-separated"),
    ]
    for name, argv, message in cases:
        try:
            code = script(name).main(argv)
        except SystemExit as exc:  # argparse's p.error: usage and message on stderr, exit status 2
            code = exc.code
        err = capsys.readouterr().err
        assert code == 2 and re.search(message, err), (name, argv, code, err)
        assert "Traceback" not in err
    assert not any((tmp_path / "jobs").glob("*/job.json"))  # nothing was queued
