#!/usr/bin/env python
"""Explanation speed on this CPU: seconds per face for every method and model (median of --repeats).

Uses the shipped checkpoints when present (else freshly built models of the same architectures) and a
face of the demo sample. Prints a Markdown table.

    python scripts/benchmark_explain.py [--models vggnet,aer_cnn] [--repeats 3] [--ig-steps 32]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fer_core.checkpoint import load_checkpoint  # noqa: E402
from fer_core.demo import load_demo  # noqa: E402
from fer_core.device import set_threads  # noqa: E402
from fer_core.explain import METHODS, attribute, explainable, model_input  # noqa: E402
from fer_core.models import create_model, list_models  # noqa: E402
from fer_core.zoo import list_checkpoints  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="", help="comma-separated architectures (default: every registered one)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--ig-steps", type=int, default=32)
    args = p.parse_args()
    set_threads(0)
    shipped = {e.meta["model"]: e for e in list_checkpoints() if e.ok and e.meta}
    names = [m for m in args.models.split(",") if m] or [m for m in list_models() if "2conv" not in m]
    face = load_demo().images[0]
    print(f"| model | {' | '.join(METHODS.values())} |")
    print("|---|" + "---|" * len(METHODS))
    for name in names:
        model = load_checkpoint(shipped[name].weights)[0] if name in shipped else create_model(name)
        model = explainable(model)
        x = model_input(model, face)
        cells = []
        for method in METHODS:
            times = []
            for _ in range(args.repeats + 1):  # the first call warms up
                t0 = time.perf_counter()
                attribute(model, x, 0, method, ig_steps=args.ig_steps)
                times.append(time.perf_counter() - t0)
            cells.append(f"{statistics.median(times[1:]):.2f}")
        source = "shipped" if name in shipped else "untrained"
        print(f"| {name} ({source}) | {' | '.join(cells)} |")
    print(
        f"\nseconds per face; IG {args.ig_steps} steps, SmoothGrad 16 samples, occlusion 8x8 windows, stride 4; "
        f"{torch.get_num_threads()} threads"
    )


if __name__ == "__main__":
    main()
