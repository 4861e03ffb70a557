"""Browser tests: the real console served on 127.0.0.1, driven by Debian's Chromium through
Playwright.  Screenshots go to test-artifacts/ (not committed)."""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from app.domain.actors import SYSTEM
from app.domain.users import create_user

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
VIEWPORTS = {"desktop": {"width": 1280, "height": 800}, "tablet": {"width": 768, "height": 1024}}
PASSWORD = "password123"


def pytest_collection_modifyitems(config, items):
    if CHROMIUM:
        return
    if os.environ.get("CI"):
        raise pytest.UsageError("browser tests need Debian's chromium (apt-get install chromium)")
    skip = pytest.mark.skip(reason="chromium is not installed (apt-get install chromium)")
    for item in items:
        if "e2e" in str(item.fspath):
            item.add_marker(skip)


@pytest.fixture(scope="module")
def browser():
    """Module-scoped: Playwright's sync API keeps an event loop running while it is open, which
    would break asyncio.run() in the tests collected after these."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield b
        b.close()


@pytest.fixture
def live_server(app, site):
    for role in ("admin", "manager", "cashier", "electrician", "viewer"):
        create_user(role, PASSWORD, role, actor=SYSTEM, now=site.now)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(10)


@pytest.fixture(params=sorted(VIEWPORTS))
def page(request, browser):
    context = browser.new_context(viewport=VIEWPORTS[request.param], locale="zh-CN")
    pg = context.new_page()
    pg.viewport_name = request.param
    yield pg
    context.close()


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}-{page.viewport_name}.png"), full_page=True)


def login(page, base: str, username: str) -> None:
    page.goto(f"{base}/login")
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/login" not in url)  # each role's start page
    if not page.url.endswith("/accounts"):
        page.goto(f"{base}/accounts")


def nav(page, text: str) -> None:
    """Click a main-menu entry: open its group first (groups are <details> menus)."""
    link = page.locator("header nav a", has_text=text).first
    group = link.locator("xpath=ancestor::details[1]")
    if group.count() and not group.evaluate("d => d.open"):
        group.locator("summary").click()
    link.click()
