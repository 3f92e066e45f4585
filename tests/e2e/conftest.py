"""Browser tests: the real app served from a thread, driven by Chromium.

The live server runs the very ``app`` fixture of tests/conftest.py (same
config, same database), so rows made with tests/factories.py are what the
browser sees. Data must be committed before the page loads it (factories
commit). Every test here should carry ``@pytest.mark.browser``.

Fixtures for other UI tests to reuse:
- ``live_server``: an object with ``.url`` ("http://127.0.0.1:<port>").
- ``browser``: a Playwright Chromium (Debian's /usr/bin/chromium, headless).
- ``page``: a fresh page in its own context (no cookies), closed after the test.
- ``logged_in_page(user)``: signs ``user`` in through the real login form and
  returns the page, already on the workflow list.
- ``screenshot(page, name)``: saves ``test-artifacts/<name>.png`` and returns the path.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from werkzeug.serving import BaseWSGIServer, make_server

from tests.conftest import ARTIFACTS
from tests.factories import PASSWORD

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


@dataclass
class LiveServer:
    url: str
    server: BaseWSGIServer


# Other test packages import these fixtures into their modules, which makes
# pytest hold one copy per module. Two sync Playwright instances cannot share
# the main thread, so every copy shares one server and one browser, counted,
# and the last copy to finish closes them.
_shared: dict = {"users": 0}


def _acquire_server(app) -> LiveServer:
    if "server" not in _shared:
        server = make_server("127.0.0.1", 0, app, threaded=True)
        thread = threading.Thread(target=server.serve_forever, name="live-server", daemon=True)
        thread.start()
        _shared["server"] = LiveServer(url=f"http://127.0.0.1:{server.server_port}", server=server)
        _shared["server_thread"] = thread
    _shared["server_users"] = _shared.get("server_users", 0) + 1
    return _shared["server"]


def _release_server() -> None:
    _shared["server_users"] -= 1
    if _shared["server_users"] == 0:
        _shared.pop("server").server.shutdown()
        _shared.pop("server_thread").join(timeout=10)


@pytest.fixture(scope="session")
def live_server(app) -> Iterator[LiveServer]:
    """The app on 127.0.0.1 and a free port, served by a werkzeug thread."""
    try:
        yield _acquire_server(app)
    finally:
        _release_server()


def _acquire_browser():
    if "browser" not in _shared:
        from playwright.sync_api import sync_playwright

        playwright = sync_playwright().start()
        try:
            _shared["browser"] = playwright.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
            )
        except Exception:
            playwright.stop()
            raise
        _shared["playwright"] = playwright
    _shared["users"] += 1
    return _shared["browser"]


def _release_browser() -> None:
    _shared["users"] -= 1
    if _shared["users"] == 0:
        _shared.pop("browser").close()
        _shared.pop("playwright").stop()


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    chromium = _acquire_browser()
    try:
        yield chromium
    finally:
        _release_browser()


@pytest.fixture
def page(browser, live_server):
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1360, "height": 900})
    context.set_default_timeout(10_000)
    # A first visit parses plotly.js (4 MB) and warms the server's figure
    # code: on a loaded 2-core machine that can pass 10 s.
    context.set_default_navigation_timeout(30_000)
    tab = context.new_page()
    errors: list[str] = []
    # A CSP violation or a JavaScript error is a bug: collect them so a test
    # can assert there were none (``page.js_errors``).
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    tab.on(
        "console",
        lambda msg: (
            errors.append(msg.text)
            if msg.type == "error" and "Content Security Policy" in msg.text
            else None
        ),
    )
    tab.js_errors = errors  # type: ignore[attr-defined]
    try:
        yield tab
    finally:
        context.close()


@pytest.fixture
def logged_in_page(page, live_server):
    """``logged_in_page(alice)`` -> the page, signed in as alice."""

    def login(user, password: str = PASSWORD, remember: bool = False):
        page.goto(f"{live_server.url}/login")
        page.get_by_label("E-mail").fill(user.email)
        page.get_by_label("Password").fill(password)
        if remember:
            page.get_by_label("Keep me signed in").check()
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(re.compile(r".*/automation.*"))
        return page

    return login


@pytest.fixture
def screenshot():
    """``screenshot(page, "workflow-list")`` -> test-artifacts/workflow-list.png."""

    def take(page, name: str, full_page: bool = True) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "page"
        path = ARTIFACTS / f"{safe}.png"
        page.screenshot(path=str(path), full_page=full_page)
        return path

    return take
