"""Loaders: both FER2013 forms agree, generic folders convert and skip, bad data is reported."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import MINI_CSV, MINI_FOLDER
from fer_core.data import (
    CLASSES,
    DataError,
    load_class_folders,
    load_fer2013,
    load_fer2013_csv,
    resolve_data_dir,
)
from fer_core.data import loaders as loaders_module


def _sorted_pairs(faceset) -> list[tuple[int, bytes]]:
    return sorted((int(y), x.numpy().tobytes()) for x, y in zip(faceset.images, faceset.labels, strict=True))


def test_folder_and_csv_loaders_agree(mini_splits):
    from_csv = load_fer2013_csv(MINI_CSV)
    for split, (per_class) in {"Training": 3, "PublicTest": 2, "PrivateTest": 2}.items():
        folder, csv_set = mini_splits[split], from_csv[split]
        assert folder.class_counts() == [per_class] * len(CLASSES)
        assert folder.images.dtype == torch.uint8 and tuple(folder.images.shape[1:]) == (48, 48)
        assert _sorted_pairs(folder) == _sorted_pairs(csv_set)


def test_load_fer2013_detects_the_form(tmp_path):
    (tmp_path / "fer2013.csv").write_bytes(MINI_CSV.read_bytes())
    assert len(load_fer2013(tmp_path)["Training"]) == 21
    assert len(load_fer2013(MINI_CSV)["PrivateTest"]) == 14
    with pytest.raises(DataError, match="neither a FER2013 folder"):
        load_fer2013(tmp_path / "..")


def test_dataset_path_comes_from_env(monkeypatch, tmp_path):
    monkeypatch.delenv("FER2013_DIR", raising=False)
    with pytest.raises(DataError, match="FER2013_DIR"):
        resolve_data_dir(None)
    monkeypatch.setenv("FER2013_DIR", str(MINI_FOLDER))
    assert resolve_data_dir(None) == MINI_FOLDER
    with pytest.raises(DataError, match="does not exist"):
        resolve_data_dir(tmp_path / "nope")


def _save(path, array, mode="L"):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode=mode).save(path)


def test_class_folders_aliases_conversions_and_skips(tmp_path):
    rng = np.random.default_rng(0)
    _save(tmp_path / "Anger" / "a.png", rng.integers(0, 255, (48, 48), dtype=np.uint8))
    _save(tmp_path / "happiness" / "colour.png", rng.integers(0, 255, (60, 80, 3), dtype=np.uint8), "RGB")
    _save(tmp_path / "sadness" / "big.png", rng.integers(0, 255, (96, 96), dtype=np.uint8))
    for i in range(3):
        _save(tmp_path / "contempt" / f"{i}.png", rng.integers(0, 255, (48, 48), dtype=np.uint8))
    (tmp_path / "sadness" / "broken.jpg").write_bytes(b"not a jpeg at all")
    (tmp_path / "sadness" / "notes.txt").write_text("stray file")

    faces = load_class_folders(tmp_path)
    assert sorted(CLASSES[y] for y in faces.labels.tolist()) == ["angry", "happy", "sad"]
    s = faces.summary
    assert s.converted_to_gray == 1 and s.resized == 2
    assert s.skipped_classes == {"contempt": 3}
    assert any("broken.jpg" in b for b in s.bad_files) and any("notes.txt" in b for b in s.bad_files)
    text = "\n".join(s.lines())
    assert "skipped 3 images of class 'contempt'" in text and "1 colour image converted to grayscale" in text


def test_bad_folders_give_clear_errors(tmp_path):
    with pytest.raises(DataError, match="Missing folder"):
        load_class_folders(tmp_path / "missing")
    (tmp_path / "train" / "angry").mkdir(parents=True)
    (tmp_path / "test" / "angry").mkdir(parents=True)
    with pytest.raises(DataError, match="Empty split.*Training"):
        load_fer2013(tmp_path)


def test_malformed_csv_rows_are_skipped_and_named(tmp_path):
    lines = MINI_CSV.read_text().splitlines()
    lines.insert(3, "3,1 2 3,Training")  # row 4: too few pixels
    lines.insert(4, "9," + " ".join(["0"] * 2304) + ",Training")  # row 5: label out of range
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join(lines) + "\n")
    splits = load_fer2013_csv(bad)
    assert len(splits["Training"]) == 21
    report = splits["Training"].summary.bad_files
    assert any("row 4" in r and "2304" in r for r in report) and any("row 5" in r for r in report)

    wrong = tmp_path / "wrong.csv"
    wrong.write_text("label,pixels,split\n0,1 2,Training\n")
    with pytest.raises(DataError, match="missing column"):
        load_fer2013_csv(wrong)


def test_second_load_comes_from_the_cache(monkeypatch):
    first = load_fer2013(MINI_FOLDER)

    def no_decoding(paths):
        raise AssertionError("decoded again despite the cache")

    monkeypatch.setattr(loaders_module, "_decode_files", no_decoding)
    second = load_fer2013(MINI_FOLDER)
    for split in first:
        assert torch.equal(first[split].images, second[split].images)
        assert first[split].names == second[split].names
