#!/usr/bin/env python
"""Rebuild the demo sample (``fer_core/assets/demo_faces.npz``) from a real FER2013 copy.

python scripts/make_demo_sample.py --data ~/fer2013 [--per-class 43]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fer_core.data import load_fer2013  # noqa: E402
from fer_core.demo import DEMO_PATH, DEMO_SPLIT, make_demo_sample, save_demo  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=None, help="FER2013 folder or csv (default: $FER2013_DIR)")
    p.add_argument("--per-class", type=int, default=43)
    args = p.parse_args()
    demo = make_demo_sample(load_fer2013(args.data)[DEMO_SPLIT], args.per_class)
    save_demo(demo)
    print(f"{len(demo)} faces, class counts {demo.class_counts()}, {DEMO_PATH.stat().st_size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
