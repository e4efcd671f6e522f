"""Loaders for the two forms of FER2013 users have, and for any folder of class folders.

- Kaggle folder layout: ``train/<class>/*.jpg`` (Training) and ``test/<class>/*.jpg``, where the
  ``PublicTest_`` / ``PrivateTest_`` file-name prefixes give the two challenge test splits.
- The original ``fer2013.csv`` with columns ``emotion, pixels, Usage``.
- ``load_class_folders``: any ``root/<class>/<image>`` tree (CK+, JAFFE, a user's own photos) with
  class-name aliases (anger -> angry, happiness -> happy, ...). Unknown classes are skipped and
  counted; colour and non-48x48 images are converted and counted.

Image folders are decoded once and cached on disk (see :mod:`fer_core.data.cache`).
"""

from __future__ import annotations

import csv
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from .cache import cached_decode
from .faceset import CLASSES, IMAGE_SIZE, DataError, FaceSet, LoadSummary
from .images import load_face_file

SPLITS = ("Training", "PublicTest", "PrivateTest")
# Faces per split of the real FER2013 (its README): every shipped number is measured on these test splits,
# so a number measured on fewer faces (a small fine-tuning folder) is labelled as such.
FER2013_SIZES = {"Training": 28_709, "PublicTest": 3_589, "PrivateTest": 3_589}
IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm"}

# Folder names used by public FER datasets, mapped to our class names.
ALIASES: dict[str, str] = {
    **{c: c for c in CLASSES},
    "anger": "angry",
    "angry": "angry",
    "an": "angry",
    "disgusted": "disgust",
    "di": "disgust",
    "fearful": "fear",
    "afraid": "fear",
    "fe": "fear",
    "happiness": "happy",
    "joy": "happy",
    "ha": "happy",
    "sadness": "sad",
    "sa": "sad",
    "surprised": "surprise",
    "su": "surprise",
    "neutrality": "neutral",
    "calm": "neutral",
    "ne": "neutral",
}


def resolve_data_dir(path: str | os.PathLike | None = None) -> Path:
    """The dataset location from ``--data`` or the ``FER2013_DIR`` environment variable."""
    path = path or os.environ.get("FER2013_DIR")
    if not path:
        raise DataError("No dataset given: pass --data PATH or set FER2013_DIR to your FER2013 folder or csv.")
    p = Path(path).expanduser()
    if not p.exists():
        raise DataError(f"Dataset path does not exist: {p}")
    return p


def _list_class_folders(root: Path, summary: LoadSummary) -> list[tuple[Path, int]]:
    """(file, label) for every image under ``root/<class>/``; unknown classes counted and skipped."""
    if not root.is_dir():
        raise DataError(f"Missing folder: {root}")
    items: list[tuple[Path, int]] = []
    for class_dir in sorted(e.path for e in os.scandir(root) if e.is_dir()):
        # scandir knows file types without a stat per file: listing 36k images stays fast
        files = sorted(e.name for e in os.scandir(class_dir) if e.is_file() and not e.name.startswith("."))
        class_dir = Path(class_dir)
        images = [class_dir / f for f in files if Path(f).suffix.lower() in IMAGE_EXTENSIONS]
        summary.bad_files += [
            f"{class_dir / f}: not an image file" for f in files if Path(f).suffix.lower() not in IMAGE_EXTENSIONS
        ]
        name = ALIASES.get(class_dir.name.lower())
        if name is None:
            summary.skipped_classes[class_dir.name] = summary.skipped_classes.get(class_dir.name, 0) + len(images)
            continue
        items += [(f, CLASSES.index(name)) for f in images]
    return items


def _decode_files(paths: list[Path]) -> tuple[np.ndarray, np.ndarray, LoadSummary]:
    """Decode files in parallel: images uint8 (N, 48, 48), ok-mask (N,), and the summary."""
    summary = LoadSummary()
    out = np.zeros((len(paths), IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
    ok = np.zeros(len(paths), dtype=bool)

    def work(i: int) -> tuple[int, str | None, bool, bool]:
        try:
            out[i], colour, resized = load_face_file(paths[i])
            return i, None, colour, resized
        except ValueError as exc:
            return i, f"{paths[i]}: {exc}", False, False

    with ThreadPoolExecutor(max_workers=min(8, (os.cpu_count() or 2) * 2)) as pool:
        for i, err, colour, resized in pool.map(work, range(len(paths)), chunksize=256):
            if err:
                summary.bad_files.append(err)
            else:
                ok[i] = True
                summary.converted_to_gray += colour
                summary.resized += resized
    return out, ok, summary


def _faceset_from_files(items: list[tuple[Path, int]], base: Path, summary: LoadSummary, what: str) -> FaceSet:
    if not items:
        raise DataError(f"Empty split: no images found for {what} under {base}")
    paths = [p for p, _ in items]
    images, ok, decode_summary = cached_decode(paths, _decode_files)
    summary.merge(decode_summary)
    keep = np.flatnonzero(ok)
    if len(keep) == 0:
        raise DataError(f"No readable images for {what} under {base} (e.g. {summary.bad_files[0]})")
    labels = torch.tensor([items[i][1] for i in keep], dtype=torch.long)
    names = [paths[i].relative_to(base).as_posix() for i in keep]
    return FaceSet(torch.from_numpy(images[keep]), labels, names, summary=summary)


def load_class_folders(root: str | os.PathLike) -> FaceSet:
    """Load any ``root/<class>/<image>`` tree; see the module docstring for what it converts."""
    root = Path(root).resolve()  # once here, so the cache key can use the paths as they are
    summary = LoadSummary()
    items = _list_class_folders(root, summary)
    return _faceset_from_files(items, root, summary, f"class folders in {root}")


def list_class_folders(root: str | os.PathLike) -> tuple[list[tuple[Path, int]], LoadSummary]:
    """``(file, label)`` for every image of a ``root/<class>/<image>`` tree, with the same class aliases
    and skipping as :func:`load_class_folders`, without decoding anything: for callers that decode
    differently (finding the face in a photo first, ``fer_core.eval.crossdata``)."""
    summary = LoadSummary()
    return _list_class_folders(Path(root).resolve(), summary), summary


def load_fer2013_folders(root: str | os.PathLike) -> dict[str, FaceSet]:
    """FER2013 in the Kaggle layout, split into Training / PublicTest / PrivateTest."""
    root = Path(root).resolve()
    summary = LoadSummary()
    train = _list_class_folders(root / "train", summary)
    test = _list_class_folders(root / "test", summary)
    by_split = {
        "Training": train,
        "PublicTest": [(p, y) for p, y in test if p.name.startswith("PublicTest_")],
        "PrivateTest": [(p, y) for p, y in test if p.name.startswith("PrivateTest_")],
    }
    return {s: _faceset_from_files(items, root, summary, s) for s, items in by_split.items()}


def load_fer2013_csv(path: str | os.PathLike) -> dict[str, FaceSet]:
    """FER2013 from the original csv. Malformed rows are skipped and reported by row number.

    Bytes that are not UTF-8 (a file saved in another encoding, or not a csv at all) are replaced
    rather than fatal, so they only spoil the rows they are in; a spreadsheet's byte-order mark is
    ignored; a row the csv module cannot parse (an overlong field) is skipped like any malformed row.
    """
    path = Path(path)
    summary = LoadSummary()
    rows: dict[str, list[tuple[np.ndarray, int, str]]] = {s: [] for s in SPLITS}
    with open(path, newline="", encoding="utf-8-sig", errors="replace") as f:
        reader = csv.DictReader(f)
        try:
            fieldnames = reader.fieldnames
        except csv.Error as exc:
            raise DataError(f"{path}: not a readable csv file ({exc})") from None
        missing = {"emotion", "pixels", "Usage"} - set(fieldnames or [])
        if missing:
            shown = fieldnames if fieldnames is None or len(str(fieldnames)) < 200 else f"{str(fieldnames)[:200]} ..."
            raise DataError(f"{path}: missing column(s) {sorted(missing)}; found {shown}")
        row_number = 1  # row 1 is the header
        while True:
            row_number += 1
            where = f"{path} row {row_number}"
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                summary.bad_files.append(f"{where}: {str(exc)[:200]}")
                continue
            try:
                label = int(row["emotion"])
                if not 0 <= label < len(CLASSES):
                    raise ValueError(f"emotion {label} is not in 0..{len(CLASSES) - 1}")
                pixels = np.array(row["pixels"].split(), dtype=np.int64)
                if pixels.size != IMAGE_SIZE * IMAGE_SIZE or pixels.min() < 0 or pixels.max() > 255:
                    raise ValueError(f"pixels must be {IMAGE_SIZE * IMAGE_SIZE} integers in 0..255")
                if row["Usage"] not in rows:
                    raise ValueError(f"Usage '{row['Usage']}' is not one of {SPLITS}")
            except (ValueError, TypeError, AttributeError) as exc:
                summary.bad_files.append(f"{where}: {str(exc)[:200]}")  # int('<100 kB of junk>') quotes it all
                continue
            image = pixels.astype(np.uint8).reshape(IMAGE_SIZE, IMAGE_SIZE)
            rows[row["Usage"]].append((image, label, f"row{row_number}"))
    out = {}
    for split, items in rows.items():
        if not items:
            raise DataError(f"Empty split: {path} has no rows with Usage={split}")
        images = torch.from_numpy(np.stack([i for i, _, _ in items]))
        labels = torch.tensor([y for _, y, _ in items], dtype=torch.long)
        out[split] = FaceSet(images, labels, [n for _, _, n in items], summary=summary)
    return out


def load_notes(splits: dict[str, FaceSet]) -> list[str]:
    """What a user should be told about loaded splits: what the loaders converted or skipped (stray
    files, unreadable images, malformed csv rows, unknown classes), and every class a split has no faces
    of, which a model cannot learn from Training nor be scored on in a test split."""
    lines: list[str] = []
    seen: set[int] = set()
    for faces in splits.values():  # the splits of one load share their summary: say it once
        if faces.summary is not None and id(faces.summary) not in seen:
            seen.add(id(faces.summary))
            lines += faces.summary.lines()
    for split, faces in splits.items():
        empty = [c for c, n in zip(faces.classes, faces.class_counts(), strict=True) if n == 0]
        if empty:
            lines.append(f"{split} has no {', '.join(empty)} faces")
    return lines


def load_fer2013(path: str | os.PathLike | None = None) -> dict[str, FaceSet]:
    """FER2013 from a Kaggle folder, a folder holding ``fer2013.csv``, or the csv itself.

    ``path`` defaults to ``FER2013_DIR``. Returns ``{"Training", "PublicTest", "PrivateTest"}``.
    """
    p = resolve_data_dir(path)
    if p.is_file():
        return load_fer2013_csv(p)
    if (p / "train").is_dir() or (p / "test").is_dir():
        return load_fer2013_folders(p)
    if (p / "fer2013.csv").is_file():
        return load_fer2013_csv(p / "fer2013.csv")
    raise DataError(f"{p} is neither a FER2013 folder (train/ and test/) nor holds fer2013.csv")
