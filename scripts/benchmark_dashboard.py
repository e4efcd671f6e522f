#!/usr/bin/env python
"""Dashboard speed in real Chromium: cold start to first paint, and warm render time of every page.

Starts ``streamlit run streamlit_app.py`` (as the README does), opens it in Debian's Chromium through
Playwright, and measures (1) from launching the server to the Model zoo title being shown, (2) for
every page, a second (warm) visit until its script has finished. Prints a Markdown table.

    python scripts/benchmark_dashboard.py [--data ~/fer2013] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from playwright.sync_api import sync_playwright  # noqa: E402

from browser import launch, running_app, wait_for_app  # noqa: E402

PAGES = {"": "FER Explorer", "dataset": "Dataset", "compare": "Compare models", "training": "Training runs"}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="", help="FER2013 folder for the full splits (default: the demo sample)")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    with sync_playwright() as pw:
        browser = launch(pw)
        t0 = time.perf_counter()
        with running_app({"FER2013_DIR": args.data}) as url:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(url)
            wait_for_app(page, "FER Explorer", timeout=120_000, settle_ms=0)
            cold = time.perf_counter() - t0
            warm: dict[str, list[float]] = {k: [] for k in PAGES}
            for _ in range(args.repeats + 1):  # the first round warms the caches
                for path, title in PAGES.items():
                    t = time.perf_counter()
                    page.goto(f"{url}/{path}")
                    wait_for_app(page, title, timeout=120_000, settle_ms=0)
                    warm[path].append(time.perf_counter() - t)
        browser.close()
    print(f"data: {args.data or 'demo sample'}")
    print(f"cold start (server launch to first paint of the Model zoo): {cold:.2f} s\n")
    print(f"| page | warm render, median of {args.repeats} (s) |")
    print("|---|---|")
    for path, times in warm.items():
        print(f"| {PAGES[path]} | {statistics.median(times[1:]):.2f} |")


if __name__ == "__main__":
    main()
