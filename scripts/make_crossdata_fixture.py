#!/usr/bin/env python
"""Rebuild ``tests/fixtures/crossdata_mini/``: a tiny "other dataset" in class folders, for the
cross-dataset tests, made from the committed mini FER2013 (no new faces, no real person's photo).

Folder names use other datasets' spellings (anger, happiness, sadness, surprised, fearful, neutral);
there is no disgust folder (a class the dataset lacks) and a ``contempt`` folder (a class we do not
model, skipped). Most images are 48x48 face crops; two are 240x200 "photos" with a face pasted at
120 px (found by the Haar detector), and one photo has no face at all (left out and counted).

    python scripts/make_crossdata_fixture.py
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fer_core.data import load_class_folders  # noqa: E402
from fer_core.faces import compose_scene, create_detector, detectable_faces  # noqa: E402
from fer_core.faces.scene import background  # noqa: E402

SOURCE = ROOT / "tests" / "fixtures" / "fer2013_mini" / "test"
OUT = ROOT / "tests" / "fixtures" / "crossdata_mini"
FOLDERS = {"angry": "anger", "happy": "happiness", "sad": "sadness", "surprise": "surprised", "fear": "fearful",
           "neutral": "neutral"}  # fmt: skip
PHOTOS = ("angry", "happy")  # one face of each of these also goes in as a photo


def main() -> None:
    shutil.rmtree(OUT, ignore_errors=True)
    data = load_class_folders(SOURCE)
    faces, labels = data.images.numpy(), data.labels.numpy()
    haar = create_detector("haar")
    for cls, folder in FOLDERS.items():
        idx = np.flatnonzero(labels == data.classes.index(cls))
        (OUT / folder).mkdir(parents=True)
        for i in idx[:2]:
            Image.fromarray(faces[i]).save(OUT / folder / f"{Path(data.names[i]).stem}.png")
        if cls in PHOTOS:
            found = detectable_faces([faces[i] for i in idx], haar, face_px=120, limit=1)
            if not found:
                raise SystemExit(f"no {cls} face of the mini set is found by the Haar detector")
            img, _ = compose_scene([faces[idx[found[0]]]], (240, 200), 120, seed=int(idx[found[0]]))
            img.save(OUT / folder / f"photo_{cls}.jpg", quality=95)
    Image.fromarray(background(240, 200, seed=5)).save(OUT / "neutral" / "photo_no_face.jpg", quality=95)
    (OUT / "contempt").mkdir()
    Image.fromarray(faces[0]).save(OUT / "contempt" / "contempt_1.png")
    print(f"wrote {sum(1 for _ in OUT.rglob('*.*'))} images to {OUT}")


if __name__ == "__main__":
    main()
