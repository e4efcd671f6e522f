#!/usr/bin/env python
"""Rebuild the small committed test fixtures from a real FER2013 copy.

``tests/fixtures/fer2013_mini/`` gets a few real faces per class and split in the Kaggle layout, and
``tests/fixtures/fer2013_mini.csv`` the same faces in the original csv format, so the tests can check
that both loaders agree without the full dataset. The choice is deterministic (first files by name).

    python scripts/make_fixtures.py --data ~/fer2013
"""

from __future__ import annotations

import argparse
import csv
import shutil
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from fer_core.data import CLASSES, resolve_data_dir  # noqa: E402

PER_SPLIT = {"Training": ("train", 3), "PublicTest": ("test", 2), "PrivateTest": ("test", 2)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=None, help="FER2013 Kaggle folder (default: $FER2013_DIR)")
    p.add_argument("--out", default="tests/fixtures")
    args = p.parse_args()
    src, out = resolve_data_dir(args.data), Path(args.out)
    folder = out / "fer2013_mini"
    shutil.rmtree(folder, ignore_errors=True)
    rows = []
    for split, (sub, n) in PER_SPLIT.items():
        prefix = split + "_"
        for label, name in enumerate(CLASSES):
            files = sorted(f for f in (src / sub / name).iterdir() if f.name.startswith(prefix))[:n]
            for f in files:
                (folder / sub / name).mkdir(parents=True, exist_ok=True)
                shutil.copy2(f, folder / sub / name / f.name)
                pixels = np.asarray(Image.open(f).convert("L")).flatten()
                rows.append({"emotion": label, "pixels": " ".join(map(str, pixels)), "Usage": split})
    with open(out / "fer2013_mini.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["emotion", "pixels", "Usage"])
        w.writeheader()
        w.writerows(rows)
    print(f"wrote {len(rows)} faces to {folder} and {out / 'fer2013_mini.csv'}")


if __name__ == "__main__":
    main()
