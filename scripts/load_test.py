#!/usr/bin/env python
"""Load test: N people at once browsing the dashboard and uploading photos, in real Chromium.

Each session is its own Playwright browser context (its own cookies and Streamlit session) in one
headless Debian Chromium. It opens the app, then for ``--seconds`` moves through the pages by the
sidebar as a person does (Model zoo, Dataset, Compare models, Robustness, Training runs, Explain,
Upload photos, Fine-tune) and, on Upload photos, drops a photo with faces and waits for the
prediction. Measured:

- page latency: click in the sidebar -> the page's title shown and Streamlit no longer running;
- prediction latency: photo dropped -> its boxed photo and per-face rows shown;
- errors, expected zero: Streamlit exception boxes, error alerts and toasts, the "connection lost"
  badge, broken images on a finished page, JavaScript errors, failed requests (any request to another
  host fails here: that would be the app phoning home), HTTP responses >= 400, pages that never finish
  (``--timeout``). Counted apart, not errors: requests the browser cancels itself (a page left while
  it loaded) and 404s for images of a run Streamlit has already replaced.

Between clicks a person looks at the page for ``--think`` seconds (3 to 10 by default).

Without ``--url`` it starts ``streamlit run streamlit_app.py`` itself on a free localhost port (with a
private, empty jobs folder, so the Fine-tune page cannot touch real jobs) and stops it at the end.

    python scripts/load_test.py                          # 20 sessions, 120 s, own app on the shipped checkpoints
    python scripts/load_test.py --sessions 3 --seconds 20 --url http://localhost:8501
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
from browser import CHROMIUM, CHROMIUM_ARGS  # noqa: E402 (the tests' flags, ../shared/notes/browser-testing.md)

PAGES = {  # sidebar link -> the page's title (h1)
    "Model zoo": "FER Explorer",
    "Dataset": "Dataset",
    "Compare models": "Compare models",
    "Robustness": "Robustness",
    "Training runs": "Training runs",
    "Explain": "Explain",
    "Upload photos": "Upload photos",
    "Fine-tune": "Fine-tune",
}
NOT_RUNNING = (
    "() => !document.querySelector(\"[data-testid='stStatusWidget'] [data-testid='stStatusWidgetRunningIcon']\")"
)
ERROR_SELECTORS = {
    "exception": "[data-testid='stException']",
    "error alert": "[data-testid='stAlertContentError']",
    "toast": "[data-testid='stToast']",
    "connection lost": "[data-testid='stConnectionStatus']",
}


@dataclass
class Stats:
    first_load_s: list[float] = field(default_factory=list)
    page_s: dict[str, list[float]] = field(default_factory=dict)
    predict_s: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    console_errors: Counter = field(default_factory=Counter)
    media_404: Counter = field(default_factory=Counter)  # page the person was on -> stale image requests
    aborted: Counter = field(default_factory=Counter)  # requests the browser itself cancelled, by path

    def error(self, session: int, kind: str, detail: str) -> None:
        self.errors.append(f"session {session}: {kind}: {detail[:300]}")
        print(f"ERROR session {session}: {kind}: {detail[:300]}", file=sys.stderr, flush=True)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


# ---- the app and the photos -------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(env: dict[str, str], log: Path) -> tuple[subprocess.Popen, str]:
    """``streamlit run`` on a free port in its own process group; returns it once /_stcore/health answers."""
    port = free_port()
    cmd = [sys.executable, "-m", "streamlit", "run", "streamlit_app.py", "--server.headless", "true"]
    cmd += ["--server.port", str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"]
    proc = subprocess.Popen(
        cmd,
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=open(log, "w"),  # noqa: SIM115 (the process owns it until it ends)
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return proc, url
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError("streamlit did not answer in 120 s")


def make_photos(folder: Path, n: int) -> list[Path]:
    """``n`` 800x600 JPEG scenes with 1 to 3 shipped demo faces each (real FER2013 faces, no real photos)."""
    from fer_core.demo import load_demo
    from fer_core.faces import compose_scene, create_detector, detectable_faces

    faces = load_demo().images.numpy()
    findable = faces[detectable_faces(faces, create_detector("haar"), limit=3 * n)]
    paths = []
    for i in range(n):
        k = 1 + i % 3
        img, _ = compose_scene(findable[(3 * i) % len(findable) :][:k], (800, 600), 150, seed=i)
        paths.append(folder / f"photo{i:02d}.jpg")
        img.save(paths[-1], quality=90)
    return paths


def cpu_seconds(pid: int) -> float:
    """CPU time a process has used so far (user + system), from /proc; 0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def descendants(root: int) -> set[int]:
    """Every process below ``root`` (Playwright's driver, Chromium and its renderers, the app)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    found, frontier = set(), {root}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def machine_busy_seconds() -> float:
    """CPU time every core of the machine spent busy since boot (all processes), from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float | None:
    """Resident memory of a process and its children (the app has none), from /proc."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


# ---- one person ---------------------------------------------------------------------------------------


def http_error(response, session: int, stats: Stats, where: dict[str, str]) -> None:  # noqa: ANN001 (a Response)
    if response.status < 400:
        return
    if response.status == 404 and "/media/" in response.url:
        # Streamlit drops a run's images when the next run starts: a page left (or rerun) before the browser
        # fetched them gets 404s for images no longer on screen. Counted here; a broken image still *shown*
        # on a finished page is an error (check_errors).
        stats.media_404[where["page"]] += 1
        return
    stats.error(session, f"HTTP {response.status}", f"{response.request.method} {response.url}")


def request_failed(request, session: int, stats: Stats, where: dict[str, str]) -> None:  # noqa: ANN001
    """A request that got no answer: an error, unless the browser cancelled it itself (leaving a page, or
    closing the session at the end), which is counted apart; a refused or unresolvable one is always an
    error (an external address, the app gone)."""
    if "ERR_ABORTED" in (request.failure or ""):
        if not where["closing"]:
            stats.aborted[request.url.split("?")[0].rsplit("/", 2)[-2]] += 1
        return
    stats.error(session, "request failed", f"{request.url} {request.failure}")


async def rendered(page, title: str, timeout_ms: float) -> None:  # noqa: ANN001 (playwright's Page)
    """The page's title is shown and Streamlit has finished the run."""
    await page.locator("[data-testid='stMain'] h1").filter(has_text=title).first.wait_for(timeout=timeout_ms)
    await page.wait_for_function(NOT_RUNNING, timeout=timeout_ms)


BROKEN_IMAGES = """() => [...document.querySelectorAll("[data-testid='stMain'] img")]
    .filter(i => i.complete && i.naturalWidth === 0).map(i => i.src)"""


async def check_errors(page, session: int, stats: Stats, where: str) -> None:  # noqa: ANN001
    for kind, selector in ERROR_SELECTORS.items():
        found = page.locator(selector)
        if await found.count():
            stats.error(session, f"{kind} on {where}", await found.first.inner_text())
    for src in await page.evaluate(BROKEN_IMAGES):
        stats.error(session, f"broken image on {where}", src)


async def person(
    session: int,
    browser,  # noqa: ANN001 (playwright's Browser)
    url: str,
    photos: list[Path],
    deadline: float,
    stats: Stats,
    timeout_ms: float,
    think: tuple[float, float],
    shots: Path | None = None,
) -> None:
    rng = random.Random(session)
    where = {"page": "Model zoo", "closing": ""}
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    page.on("pageerror", lambda exc: stats.error(session, "javascript error", str(exc)))
    page.on("requestfailed", lambda r: request_failed(r, session, stats, where))
    page.on("response", lambda r: http_error(r, session, stats, where))
    page.on("console", lambda m: m.type == "error" and stats.console_errors.update([m.text[:120]]))
    try:
        t0 = time.perf_counter()
        await page.goto(url, timeout=timeout_ms)
        await rendered(page, PAGES["Model zoo"], timeout_ms)
        stats.first_load_s.append(time.perf_counter() - t0)
        await check_errors(page, session, stats, "Model zoo")
        order = list(PAGES)
        current = "Model zoo"
        while time.perf_counter() < deadline:
            rng.shuffle(order)
            for link in order:
                if time.perf_counter() >= deadline:
                    break
                if link == current:
                    continue
                await check_errors(page, session, stats, f"{current}, before leaving it")
                t0 = time.perf_counter()
                where["page"] = f"{current} -> {link}"
                await (
                    page.locator("[data-testid='stSidebar']")
                    .get_by_role("link", name=link, exact=True)
                    .click(timeout=timeout_ms)
                )
                await rendered(page, PAGES[link], timeout_ms)
                stats.page_s.setdefault(link, []).append(time.perf_counter() - t0)
                current = where["page"] = link
                await check_errors(page, session, stats, link)
                if link == "Upload photos":
                    photo = photos[rng.randrange(len(photos))]
                    t0 = time.perf_counter()
                    await page.locator("[data-testid='stFileUploaderDropzoneInput']").set_input_files(
                        str(photo), timeout=timeout_ms
                    )
                    caption = page.get_by_text(f"{photo.name}: ")
                    await caption.first.wait_for(timeout=timeout_ms)
                    await page.wait_for_function(NOT_RUNNING, timeout=timeout_ms)
                    stats.predict_s.append(time.perf_counter() - t0)
                    await check_errors(page, session, stats, f"Upload photos ({photo.name})")
                    if shots is not None and not (shot := shots / f"session{session:02d}_upload.png").exists():
                        await page.screenshot(path=str(shot), full_page=True)
                await asyncio.sleep(rng.uniform(*think))  # a person reads before the next click
    except Exception as exc:  # noqa: BLE001 - a timeout or a lost page is a failure of the app under load
        stats.error(session, "gave up", f"{type(exc).__name__}: {exc}")
    finally:
        where["closing"] = "yes"  # closing a context aborts what it still loads: not the app's failure
        await context.close()


async def run(args: argparse.Namespace, url: str, photos: list[Path], stats: Stats) -> float:
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        start = time.perf_counter()
        deadline = start + args.seconds
        tasks = []
        for i in range(args.sessions):
            shots = Path(args.screenshots) if args.screenshots and i == 0 else None
            tasks.append(
                asyncio.create_task(
                    person(i, browser, url, photos, deadline, stats, 1000 * args.timeout, args.think, shots)
                )
            )
            await asyncio.sleep(args.ramp / max(1, args.sessions))  # people arrive over --ramp seconds
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - start
        await browser.close()
    return elapsed


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", default=None, help="a running app (default: start one on a free port)")
    p.add_argument("--sessions", type=int, default=20, help="concurrent browser sessions (default 20)")
    p.add_argument("--seconds", type=float, default=120.0, help="how long they browse (default 120)")
    p.add_argument("--ramp", type=float, default=10.0, help="sessions arrive over this many seconds (default 10)")
    p.add_argument("--timeout", type=float, default=180.0, help="seconds a page may take before it counts as failed")
    p.add_argument("--photos", type=int, default=8, help="distinct photos to upload (default 8)")
    p.add_argument(
        "--think",
        type=lambda t: tuple(float(v) for v in t.split(",")),
        default=(3.0, 10.0),
        metavar="MIN,MAX",
        help="seconds a person looks at a page before the next click, uniform (default 3,10)",
    )
    p.add_argument("--out", default=None, help="also write the figures as JSON to this file")
    p.add_argument("--screenshots", default=None, help="folder for session 0's first prediction, to look at")
    args = p.parse_args(argv)
    if not Path(CHROMIUM).exists():
        p.error(f"{CHROMIUM} is missing: apt-get install chromium (see ../shared/notes/browser-testing.md)")

    tmp = Path(tempfile.mkdtemp(prefix="fer_load_"))
    if args.screenshots:
        Path(args.screenshots).mkdir(parents=True, exist_ok=True)
    photos = make_photos(tmp, args.photos)
    app = None
    url = args.url
    if url is None:
        env = {"FER_JOBS_DIR": str(tmp / "jobs"), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
        app, url = start_app(env, tmp / "app.log")
        print(f"app: {url} (pid {app.pid}, log {tmp / 'app.log'})", flush=True)
    load_before = os.getloadavg()
    stats = Stats()
    peak_rss: list[float] = []

    cpu: dict[int, float] = {}  # our descendants' CPU seconds, largest seen (a renderer's ends with it)
    busy_before = machine_busy_seconds()
    app_cpu_before = cpu_seconds(app.pid) if app is not None else 0.0  # its start-up is not the load

    async def sample_memory() -> None:
        while True:
            if app is not None and (mb := rss_mb(app.pid)) is not None:
                peak_rss.append(mb)
            for pid in descendants(os.getpid()):
                cpu[pid] = max(cpu.get(pid, 0.0), cpu_seconds(pid))
            await asyncio.sleep(2)

    async def both() -> float:
        sampler = asyncio.create_task(sample_memory())
        try:
            return await run(args, url, photos, stats)
        finally:
            sampler.cancel()

    try:
        elapsed = asyncio.run(both())
    finally:
        if app is not None:
            os.killpg(app.pid, 15)
            try:
                app.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(app.pid, 9)
    load_after = os.getloadavg()
    busy = machine_busy_seconds() - busy_before
    app_cpu = cpu.pop(app.pid, 0.0) - app_cpu_before if app is not None else 0.0
    browsers_cpu = sum(cpu.values())

    pages = [v for vs in stats.page_s.values() for v in vs]
    figures = {
        "sessions": args.sessions,
        "seconds": round(elapsed, 1),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, load average {load_before[0]:.1f} before, "
        f"{load_after[0]:.1f} after",
        "page_views": len(pages),
        "page_p50_s": round(percentile(pages, 50), 2),
        "page_p95_s": round(percentile(pages, 95), 2),
        "first_load_p50_s": round(percentile(stats.first_load_s, 50), 2),
        "first_load_p95_s": round(percentile(stats.first_load_s, 95), 2),
        "predictions": len(stats.predict_s),
        "predict_p50_s": round(percentile(stats.predict_s, 50), 2),
        "predict_p95_s": round(percentile(stats.predict_s, 95), 2),
        "per_page_p50_s": {k: round(percentile(v, 50), 2) for k, v in sorted(stats.page_s.items())},
        "app_peak_rss_mb": round(max(peak_rss), 0) if peak_rss else None,
        "cpu_seconds": {  # where the machine's time went during the run
            "available": round(elapsed * (os.cpu_count() or 1)),
            "busy": round(busy),
            "app": round(app_cpu),
            "browsers_and_driver": round(browsers_cpu),
            "everything_else": round(busy - app_cpu - browsers_cpu - cpu_seconds(os.getpid())),
        },
        "errors": len(stats.errors),
        "console_errors": dict(stats.console_errors),
        "stale_image_404s": dict(stats.media_404),
        "browser_cancelled_requests": dict(stats.aborted),
        "think_s": list(args.think),
    }
    print(json.dumps(figures, indent=1))
    for e in stats.errors[:30]:
        print(e)
    if args.out:
        Path(args.out).write_text(json.dumps({**figures, "error_list": stats.errors}, indent=1) + "\n")
    return 1 if stats.errors else 0


if __name__ == "__main__":
    sys.exit(main())
