#!/usr/bin/env python
"""Write ``checkpoints/MODEL_ZOO.md`` from the shipped checkpoints' reports (a test checks it is current).

python scripts/make_model_zoo.py [--root checkpoints]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fer_core.zoo import checkpoints_root, model_zoo_text  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", default=None, help="checkpoints folder (default: checkpoints/)")
    args = p.parse_args()
    root = Path(args.root) if args.root else checkpoints_root()
    text = model_zoo_text(root)  # MODEL_ZOO_NOTES.md (gaps, compute spent), if present, is appended as-is
    (root / "MODEL_ZOO.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
