"""Helpers for real-browser tests: start the app as a user would, drive Debian's Chromium with Playwright."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
]


def browser_available() -> bool:
    try:
        import playwright  # noqa: F401
    except ImportError:
        return False
    return Path(CHROMIUM).exists() or shutil.which("chromium") is not None


def require_browser(module: bool = True) -> None:
    """Skip (the whole test module, or one test) without Chromium or Playwright; in CI that is an error."""
    if browser_available():
        return
    if os.environ.get("CI"):
        raise RuntimeError("CI needs Chromium and Playwright: run scripts/setup_tests.sh")
    pytest.skip("Chromium or Playwright missing (scripts/setup_tests.sh installs them)", allow_module_level=module)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running_app(env: dict[str, str] | None = None) -> Iterator[str]:
    """``streamlit run streamlit_app.py`` on a free localhost port; yields its URL, stops it after."""
    port = free_port()
    log = open(ROOT / ".app_test.log", "w")  # noqa: SIM115 (closed below)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            "streamlit_app.py",
            "--server.headless",
            "true",
            "--server.port",
            str(port),
            "--server.address",
            "127.0.0.1",
            "--browser.gatherUsageStats",
            "false",
        ],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if proc.poll() is not None:
                raise RuntimeError(f"streamlit exited: {(ROOT / '.app_test.log').read_text()[-2000:]}")
            time.sleep(0.3)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def launch(playwright, *extra_args: str):  # noqa: ANN001, ANN201 (playwright types are optional)
    """Headless Debian Chromium with the project's flags, plus ``extra_args`` (e.g. a fake camera file)."""
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=[*CHROMIUM_ARGS, *extra_args])


def wait_for_app(page, title: str | None = None, timeout: float = 90_000, settle_ms: int = 500) -> None:  # noqa: ANN001
    """Wait until the page script has run: its title is shown and Streamlit reports no run in progress.

    The generous default covers a cold server on a busy 2-core machine (torch, OpenCV and the models load
    on the first visit)."""
    heading = page.locator("[data-testid='stMain'] h1")
    if title:
        heading = heading.filter(has_text=title)
    heading.first.wait_for(timeout=timeout)
    page.wait_for_function(
        "() => !document.querySelector(\"[data-testid='stStatusWidget'] [data-testid='stStatusWidgetRunningIcon']\")",
        timeout=timeout,
    )
    page.wait_for_timeout(settle_ms)  # let late elements (charts) attach before a test looks
