#!/usr/bin/env python
"""Fuzz image decoding and face cropping (hypothesis) for a few minutes; keep every crasher.

What a user can drop on the Upload page (or pass to ``fer_core.predict``) goes through
``read_image`` -> ``analyse_image`` (detection, training-identical 48x48 crop, classification).
This script feeds that path, for ``--minutes``, with:

- ``file``: valid PNG, JPEG, GIF, WebP, BMP and TIFF files (8- and 16-bit, palette with
  transparency, RGBA, CMYK, EXIF-rotated, progressive, animated) with random byte mutations (bit
  flips, interesting values, insertions, deletions, duplicated runs, truncation), biased towards
  the headers where decoders parse sizes and offsets;
- ``array``: numpy arrays of random shapes (0 to 4 dimensions, empty sides) and dtypes (bool,
  signed and unsigned integers, float16/32/64 with NaN and infinity);
- ``pil``: PIL images of every mode Pillow has (1, L, LA, P, PA, I;16*, I, F, CMYK, YCbCr, LAB,
  HSV, ...) with random pixels, palettes and transparency;
- ``box``: ``crop_face`` with arbitrary boxes (outside the photo, empty, much larger than it) and
  margins.

The contract (``check``): either ``ValueError`` with a message (what the page shows), or a result
that makes sense: a 2-D uint8 photo, 48x48 uint8 crops, finite probabilities summing to 1. Any other
exception, a wrong shape or NaN is a crasher: hypothesis shrinks it, the smallest input is written
to ``tests/fixtures/fuzz/`` and ``tests/test_hostile_inputs.py`` replays every file there. An input
slower than ``--slow`` seconds is reported (a denial of service is a bug too) but not kept.

    OMP_NUM_THREADS=1 python scripts/fuzz_images.py --minutes 4
    python scripts/fuzz_images.py --minutes 0.2 --kinds array,box     # a quick look
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import resource
import sys
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fer_core.faces import FixedBoxes, create_detector  # noqa: E402
from fer_core.faces.crop import crop_face, read_image  # noqa: E402
from fer_core.inference import FaceOptions, LoadedModel, analyse_image  # noqa: E402

CRASHERS = ROOT / "tests" / "fixtures" / "fuzz"
KINDS = ("file", "array", "pil", "box")
PIL_MODES = (
    "1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr", "LAB", "HSV",
    "I", "F", "I;16", "I;16L", "I;16B", "I;16N",
)  # fmt: skip
DTYPES = ("bool", "uint8", "int8", "uint16", "int16", "int32", "uint32", "int64", "float16", "float32", "float64")


class ContractError(AssertionError):
    """A result that came back but makes no sense (wrong shape, dtype, NaN probabilities)."""


# ---- the path under test: what the Upload page and fer_core.predict do -------------------------------


_MODEL: list[LoadedModel] = []


def tiny_models() -> list[LoadedModel]:
    """One untrained Deep-Emotion (67 K parameters): the classification step runs, its numbers do not matter."""
    if not _MODEL:
        import torch

        from fer_core.checkpoint import model_meta
        from fer_core.models import create_model

        torch.manual_seed(0)
        model = create_model("deep_emotion").eval()
        _MODEL.append(LoadedModel("tiny", model, model_meta(model)))
    return _MODEL


def check(data: Any, whole_image: bool = False, boxes: list[tuple[int, int, int, int]] | None = None) -> str:
    """Run ``data`` through ``read_image`` and ``analyse_image``; return "refused: ..." or "ok: N faces".

    Raises whatever the code under test raises other than ``ValueError``, and :class:`ContractError`
    for a result that breaks the contract.
    """
    try:
        img = read_image(data, source="fuzz")
    except ValueError as exc:
        if not str(exc).strip():
            raise ContractError("ValueError without a message") from exc
        return f"refused: {exc}"
    gray = img.gray
    if not (isinstance(gray, np.ndarray) and gray.dtype == np.uint8 and gray.ndim == 2):
        raise ContractError(f"gray is {type(gray).__name__} {getattr(gray, 'dtype', '')} {getattr(gray, 'shape', '')}")
    if img.rgb.mode != "RGB" or img.rgb.size != (gray.shape[1], gray.shape[0]):
        raise ContractError(f"display image {img.rgb.mode} {img.rgb.size} for a photo of {gray.shape}")
    detector = FixedBoxes(boxes) if boxes is not None else create_detector("haar")
    result = analyse_image(img, tiny_models(), detector, FaceOptions(whole_image_if_none=whole_image))
    for face in result.faces:
        if face.crop.shape != (48, 48) or face.crop.dtype != np.uint8:
            raise ContractError(f"crop {face.crop.shape} {face.crop.dtype}")
        if not (np.isfinite(face.ensemble).all() and abs(float(face.ensemble.sum()) - 1) < 1e-3):
            raise ContractError(f"probabilities {face.ensemble}")
    return f"ok: {len(result.faces)} faces"


def check_box(shape: tuple[int, int], box: tuple[int, int, int, int], margin: float) -> str:
    """``crop_face`` on a (h, w) gradient photo: a 48x48 uint8 face, or ValueError with a message."""
    h, w = shape
    gray = (np.add.outer(np.arange(h), np.arange(w)) % 256).astype(np.uint8)
    try:
        face = crop_face(gray, box, margin)
    except ValueError as exc:
        if not str(exc).strip():
            raise ContractError("ValueError without a message") from exc
        return f"refused: {exc}"
    if face.shape != (48, 48) or face.dtype != np.uint8:
        raise ContractError(f"crop {face.shape} {face.dtype}")
    return "ok"


# ---- crashers on disk: written by the fuzzer, replayed by the tests ----------------------------------


def save_crasher(kind: str, payload: Any, folder: Path = CRASHERS) -> Path:
    """Write one crasher so that :func:`replay` can run it again; returns its path."""
    folder.mkdir(parents=True, exist_ok=True)
    if kind == "file":
        fmt, data = payload
        path = folder / f"file-{fmt}-{hashlib.sha1(data).hexdigest()[:12]}.bin"
        path.write_bytes(data)
    elif kind == "array":
        buf = io.BytesIO()
        np.save(buf, payload, allow_pickle=False)
        path = folder / f"array-{hashlib.sha1(buf.getvalue()).hexdigest()[:12]}.npy"
        path.write_bytes(buf.getvalue())
    else:
        text = json.dumps(payload, sort_keys=True)
        path = folder / f"{kind}-{hashlib.sha1(text.encode()).hexdigest()[:12]}.json"
        path.write_text(text + "\n")
    return path


def pil_from_spec(spec: dict[str, Any]) -> Image.Image:
    img = Image.frombytes(spec["mode"], tuple(spec["size"]), base64.b64decode(spec["data"]))
    if spec.get("palette") is not None:
        img.putpalette(base64.b64decode(spec["palette"]), spec.get("palette_mode", "RGB"))
    if spec.get("transparency") is not None:
        t = spec["transparency"]
        img.info["transparency"] = base64.b64decode(t) if isinstance(t, str) else t
    return img


def replay(path: Path) -> str:
    """Run a saved crasher through the same check that found it."""
    if path.suffix == ".bin":
        return check(path.read_bytes(), whole_image=True)
    if path.suffix == ".npy":
        return check(np.load(path, allow_pickle=False), whole_image=True)
    spec = json.loads(path.read_text())
    if path.name.startswith("box-"):
        return check_box(tuple(spec["shape"]), tuple(spec["box"]), spec["margin"])
    return check(pil_from_spec(spec), whole_image=True)


# ---- seeds and strategies ---------------------------------------------------------------------------


def _scene() -> Image.Image:
    """A 96x80 colour photo with one real FER2013 demo face, so detection and cropping have work to do."""
    from fer_core.demo import load_demo

    face = Image.fromarray(load_demo().images[0].numpy()).resize((60, 60))
    y, x = np.mgrid[0:80, 0:96]
    bg = np.stack([x * 2, y * 3, (x + y) % 256], -1).astype(np.uint8)
    img = Image.fromarray(bg)
    img.paste(face.convert("RGB"), (18, 10))
    return img


def seed_files() -> list[tuple[str, bytes]]:
    """Small valid files of every format and mode the Upload page accepts."""
    scene = _scene()

    def enc(img: Image.Image, fmt: str, **kw: Any) -> bytes:
        buf = io.BytesIO()
        img.save(buf, fmt, **kw)
        return buf.getvalue()

    exif = Image.Exif()
    exif[0x0112] = 6  # stored on its side: rotate when shown
    pal = scene.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    frames = [scene, scene.transpose(Image.Transpose.FLIP_LEFT_RIGHT), scene.convert("L").convert("RGB")]
    gray16 = Image.fromarray(np.asarray(scene.convert("L")).astype(np.uint16) * 257)
    return [
        ("png", enc(scene, "PNG")),
        ("png-l", enc(scene.convert("L"), "PNG")),
        ("png-16bit", enc(gray16, "PNG")),
        ("png-palette-transparent", enc(pal, "PNG", transparency=0)),
        ("png-rgba", enc(scene.convert("RGBA"), "PNG")),
        ("png-la", enc(scene.convert("LA"), "PNG")),
        ("png-animated", enc(frames[0], "PNG", save_all=True, append_images=frames[1:])),
        ("jpeg", enc(scene, "JPEG", quality=80)),
        ("jpeg-progressive", enc(scene, "JPEG", progressive=True)),
        ("jpeg-cmyk", enc(scene.convert("CMYK"), "JPEG")),
        ("jpeg-exif-rotated", enc(scene.transpose(Image.Transpose.ROTATE_90), "JPEG", exif=exif)),
        ("gif", enc(pal, "GIF", transparency=0)),
        ("gif-animated", enc(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)),
        ("webp", enc(scene, "WEBP", quality=70)),
        ("webp-lossless-rgba", enc(scene.convert("RGBA"), "WEBP", lossless=True)),
        ("webp-animated", enc(frames[0], "WEBP", save_all=True, append_images=frames[1:], duration=50)),
        ("bmp", enc(scene, "BMP")),
        ("bmp-palette", enc(pal, "BMP")),
        ("bmp-1bit", enc(scene.convert("1"), "BMP")),
        ("tiff", enc(scene, "TIFF")),
        ("tiff-16bit", enc(gray16, "TIFF")),
        ("tiff-cmyk-lzw", enc(scene.convert("CMYK"), "TIFF", compression="tiff_lzw")),
    ]


INTERESTING = (0, 1, 0x7F, 0x80, 0xFF, 0x00FF, 0x7FFF, 0x8000, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF)


def strategies(seeds: list[tuple[str, bytes]]) -> dict[str, Any]:
    """One hypothesis strategy per kind of input."""
    from hypothesis import assume
    from hypothesis import strategies as st
    from hypothesis.extra import numpy as hnp

    @st.composite
    def mutated_file(draw: Any) -> tuple[str, bytes]:
        fmt, original = draw(st.sampled_from(seeds))
        data = bytearray(original)
        for _ in range(draw(st.integers(1, 6))):
            if not data:
                break
            header = draw(st.booleans())  # half the mutations hit the first 64 bytes, where sizes live
            pos = draw(st.integers(0, min(len(data), 64) - 1 if header else len(data) - 1))
            op = draw(st.sampled_from(("flip", "byte", "int", "insert", "delete", "duplicate", "truncate")))
            if op == "flip":
                data[pos] ^= 1 << draw(st.integers(0, 7))
            elif op == "byte":
                data[pos] = draw(st.integers(0, 255))
            elif op == "int":
                width = draw(st.sampled_from((1, 2, 4)))
                value = draw(st.sampled_from(INTERESTING)) % (1 << (8 * width))
                order = draw(st.sampled_from(("big", "little")))
                data[pos : pos + width] = value.to_bytes(width, order)
            elif op == "insert":
                data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
            elif op == "delete":
                del data[pos : pos + draw(st.integers(1, 64))]
            elif op == "duplicate":
                n = draw(st.integers(1, 256))
                data[pos:pos] = data[pos : pos + n]
            else:
                del data[pos:]
        return fmt, bytes(data)

    shapes = st.one_of(
        hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=24),
        st.tuples(st.integers(0, 90), st.integers(0, 90), st.sampled_from((1, 2, 3, 4, 5))),
        st.tuples(st.integers(0, 120), st.integers(0, 120)),
    )

    @st.composite
    def array(draw: Any) -> np.ndarray:
        dtype = np.dtype(draw(st.sampled_from(DTYPES)))
        shape = draw(shapes)
        if draw(st.booleans()):  # fast: a constant or a ramp, any size
            fill = draw(hnp.from_dtype(dtype, allow_nan=True, allow_infinity=True))
            return np.full(shape, fill, dtype=dtype)
        if int(np.prod(shape)) > 4000:
            shape = tuple(min(s, 20) for s in shape)
        return draw(hnp.arrays(dtype, shape, elements=hnp.from_dtype(dtype, allow_nan=True, allow_infinity=True)))

    @st.composite
    def pil(draw: Any) -> dict[str, Any]:
        mode = draw(st.sampled_from(PIL_MODES))
        size = (draw(st.integers(0, 80)), draw(st.integers(0, 80)))
        try:
            n = len(Image.new(mode, size).tobytes())
        except (ValueError, OSError):
            assume(False)
        if draw(st.booleans()):
            raw = draw(st.binary(min_size=n, max_size=n)) if n <= 2048 else bytes([draw(st.integers(0, 255))]) * n
        else:
            raw = bytes(np.random.default_rng(draw(st.integers(0, 2**32 - 1))).integers(0, 256, n, dtype=np.uint8))
        spec: dict[str, Any] = {"mode": mode, "size": list(size), "data": base64.b64encode(raw).decode()}
        if mode in ("P", "PA") and draw(st.booleans()):
            spec["palette"] = base64.b64encode(draw(st.binary(min_size=0, max_size=768))).decode()
            spec["palette_mode"] = draw(st.sampled_from(("RGB", "RGBA", "L")))
        if mode in ("P", "PA", "L", "RGB", "1") and draw(st.booleans()):
            spec["transparency"] = draw(
                st.one_of(st.integers(-5, 300), st.binary(max_size=300).map(lambda b: base64.b64encode(b).decode()))
            )
        return spec

    @st.composite
    def box(draw: Any) -> dict[str, Any]:
        h, w = draw(st.integers(1, 300)), draw(st.integers(1, 300))
        big = 3 * max(h, w)
        b = [
            draw(st.integers(-big, big)),
            draw(st.integers(-big, big)),
            draw(st.integers(-5, big)),
            draw(st.integers(-5, big)),
        ]
        if draw(st.integers(0, 9)) == 0:  # now and then a box from another planet
            b = [draw(st.integers(-(10**7), 10**7)) for _ in range(4)]
        margin = draw(st.one_of(st.floats(-1, 2, allow_nan=False), st.sampled_from((0.0, 0.01, 0.2))))
        return {"shape": [h, w], "box": b, "margin": margin}

    return {"file": mutated_file(), "array": array(), "pil": pil(), "box": box()}


# ---- the time-boxed run -------------------------------------------------------------------------------


@dataclass
class Stats:
    examples: Counter = field(default_factory=Counter)
    outcomes: Counter = field(default_factory=Counter)
    slow: list[str] = field(default_factory=list)
    crashers: list[str] = field(default_factory=list)


def run_kind(kind: str, strategy: Any, seed: int, examples: int, stats: Stats, slow_s: float) -> None:
    """``examples`` inputs of one kind from hypothesis seed ``seed``; a failure is shrunk and saved."""
    from hypothesis import HealthCheck, Phase, given, reject, settings
    from hypothesis import seed as hseed

    failure: dict[str, Any] = {}

    @hseed(seed)
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        phases=(Phase.generate, Phase.shrink),
        suppress_health_check=list(HealthCheck),
        report_multiple_bugs=False,
    )
    @given(strategy)
    def prop(value: Any) -> None:
        if kind == "pil":
            try:  # a spec Pillow cannot build is the harness's miss, not a bug in what is tested
                value_in: Any = pil_from_spec(value)
            except (ValueError, TypeError, OSError):
                reject()
        t0 = time.time()
        try:
            if kind == "file":
                outcome = check(value[1], whole_image=True)
            elif kind == "array":
                outcome = check(value, whole_image=True)
            elif kind == "pil":
                outcome = check(value_in, whole_image=True)
            else:
                outcome = check_box(tuple(value["shape"]), tuple(value["box"]), value["margin"])
        except Exception as exc:
            failure.update(value=value, exc=exc, tb=traceback.format_exc())
            raise
        stats.examples[kind] += 1
        stats.outcomes[f"{kind} {outcome.split(':')[0]}"] += 1
        elapsed = time.time() - t0
        if elapsed > slow_s:
            stats.slow.append(f"{kind}: {elapsed:.1f} s ({outcome[:80]})")

    try:
        prop()
    except Exception:  # the shrunk failure, or hypothesis' group of them when it was flaky
        if not failure:
            raise
        path = save_crasher(kind, failure["value"])
        last = failure["tb"].strip().splitlines()[-1]
        stats.crashers.append(f"{path.relative_to(ROOT)}: {last}")
        print(f"CRASHER ({kind}) saved to {path}:\n{failure['tb']}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=4.0, help="total fuzzing time (default 4)")
    p.add_argument("--kinds", default=",".join(KINDS), help=f"comma-separated subset of {', '.join(KINDS)}")
    p.add_argument("--seed", type=int, default=0, help="first hypothesis seed (each round uses the next)")
    p.add_argument("--round", type=int, default=200, help="inputs per kind before moving to the next (default 200)")
    p.add_argument("--slow", type=float, default=2.0, help="report inputs slower than this many seconds")
    p.add_argument(
        "--max-memory-gb",
        type=float,
        default=8.0,
        help="address-space limit for this process (default 8): an input that allocates without bound fails "
        "here with MemoryError, a crasher, instead of waking the machine's out-of-memory killer",
    )
    args = p.parse_args(argv)
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    unknown = set(kinds) - set(KINDS)
    if unknown:
        p.error(f"unknown kinds {sorted(unknown)}; choose from {', '.join(KINDS)}")

    limit = int(args.max_memory_gb * 2**30)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    import warnings

    import torch

    warnings.simplefilter("ignore")  # damaged files make Pillow warn about every tag: the summary is what counts
    torch.set_num_threads(1)
    seeds = seed_files()
    strats = strategies(seeds)
    tiny_models()
    stats = Stats()
    start = time.time()
    end = start + 60 * args.minutes
    round_no = 0
    while time.time() < end:
        kind = kinds[round_no % len(kinds)]
        run_kind(kind, strats[kind], args.seed + round_no, args.round, stats, args.slow)
        round_no += 1
    elapsed = time.time() - start
    total = sum(stats.examples.values())
    print(
        f"fuzzed {total:,} inputs in {elapsed / 60:.1f} min ({total / elapsed:.0f} inputs/s), {len(seeds)} seed files"
    )
    for kind in kinds:
        outcomes = ", ".join(
            f"{k.split(' ', 1)[1]} {v:,}" for k, v in sorted(stats.outcomes.items()) if k.startswith(kind)
        )
        print(f"  {kind}: {stats.examples[kind]:,} ({outcomes})")
    print(f"slow inputs (> {args.slow} s): {len(stats.slow)}" + "".join(f"\n  {s}" for s in stats.slow[:20]))
    print(f"crashers: {len(stats.crashers)}" + "".join(f"\n  {c}" for c in stats.crashers))
    return 1 if stats.crashers else 0


if __name__ == "__main__":
    sys.exit(main())
