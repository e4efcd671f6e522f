"""The app's own menu in real Chromium, on a server of its own: Streamlit's pages/-folder menu must never
show, not even for the second it did on a cold server's first visit. (Its own module: another module's
browser, kept open by a module fixture, would make Playwright's sync API refuse to start a second.)"""

from __future__ import annotations

from browser import launch, require_browser, running_app, wait_for_app

require_browser()

from playwright.sync_api import sync_playwright  # noqa: E402


def test_a_cold_servers_first_visit_shows_only_the_apps_menu(zoo_root, tmp_path):
    """Streamlit's pages/-folder menu ("streamlit app", "common", ...) flashed for about a second on a fresh
    server's first visit: look every 100 ms until the page is drawn, then follow a link of the app's menu."""
    env = {"FER_CHECKPOINTS": str(zoo_root), "FER_RUNS_DIR": str(tmp_path / "runs")}
    with running_app(env) as url, sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(url, wait_until="commit")
        menus = []
        for _ in range(900):  # 90 s at most: a cold server loads torch and the models on the first visit
            menus.append(page.locator("[data-testid='stSidebarNav']").count())
            if page.locator("[data-testid='stMain'] h1").filter(has_text="FER Explorer").count():
                break
            page.wait_for_timeout(100)
        assert not any(menus), f"Streamlit's own menu showed in {sum(map(bool, menus))} of {len(menus)} looks"
        wait_for_app(page, "FER Explorer")
        sidebar = page.locator("[data-testid='stSidebar']")
        for title in ("Model zoo", "Compare models", "Explain", "Webcam", "Fine-tune"):
            assert sidebar.get_by_role("link", name=title).count() == 1, title
        sidebar.get_by_role("link", name="Training runs").click()
        wait_for_app(page, "Training runs")
        assert page.url.endswith("/training")
        browser.close()
