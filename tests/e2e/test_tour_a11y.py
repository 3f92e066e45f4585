"""Every page, seeded with data, in Chromium at 1440x900 and 390x844: no
serious or critical axe-core violation, no console error, no sideways
scroll at 390 px (the builder aside), a screenshot of each in
test-artifacts/ (tour-<page>-desktop.png, tour-<page>-phone.png)."""

from __future__ import annotations

import re

import pytest

from app.automation.delivery import tracking
from app.automation.triggers import double_opt_in
from app.extensions import db
from app.models import Form
from app.tenancy import firm_context
from tests.analytics.test_dashboard_browser import recent_history
from tests.e2e.tour import WIDE_OK, axe_source, axe_violations, describe, page_urls, sideways_scroll
from tests.security.routes import make_world

pytestmark = pytest.mark.browser

DESKTOP = {"width": 1440, "height": 900}
PHONE = {"width": 390, "height": 844}


def watch_console(tab) -> list[str]:
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
    tab.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    return errors


def sign_in(tab, base: str, user) -> None:
    from tests.factories import PASSWORD

    tab.goto(f"{base}/login")
    tab.get_by_label("E-mail").fill(user.email)
    tab.get_by_label("Password").fill(PASSWORD)
    tab.get_by_role("button", name="Sign in").click()
    tab.wait_for_url(re.compile(r".*/automation.*"))


def name_of(url: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", url.split("?")[0]).strip("-") or "root"


def confirm_page(app, firm, ids: dict) -> str:
    """The double opt-in page of a real pending signup (its token is signed)."""
    with firm_context(firm.id):
        form = db.session.get(Form, ids["form_id"])
        with app.test_request_context():
            signup = double_opt_in.start(
                form, {"email": "pending@example.com"}, ip="203.0.113.9", user_agent="tour"
            )
            url = double_opt_in.confirm_url(signup)
    return "/f/confirm/" + url.rsplit("/", 1)[1]


def test_every_page_passes_axe_and_fits_a_phone(app, browser, live_server, acme, alice, screenshot):
    ids = make_world(acme, admin=alice)
    recent_history(acme)
    with firm_context(acme.id):
        form_key = db.session.get(Form, ids["form_id"]).form_key
        with app.test_request_context():
            unsubscribe = tracking.unsubscribe_url(acme.id, ids["message_id"])
    ids["form_key"] = form_key
    ids["token"] = unsubscribe.rsplit("/", 1)[1]
    urls = [confirm_page(app, acme, ids) if "/f/confirm/" in u else u for u in page_urls(app, ids)]
    assert len(urls) > 30
    source = axe_source()
    problems: dict[str, object] = {}
    for viewport, label in ((DESKTOP, "desktop"), (PHONE, "phone")):
        context = browser.new_context(base_url=live_server.url, viewport=viewport)
        context.set_default_timeout(15_000)
        context.set_default_navigation_timeout(45_000)
        tab = context.new_page()
        errors = watch_console(tab)
        sign_in(tab, live_server.url, alice)
        for url in urls:
            errors.clear()
            response = tab.goto(url)
            tab.wait_for_load_state("networkidle")
            key = f"{label} {url}"
            if response is None or response.status >= 400:
                problems[key] = f"status {response.status if response else None}"
                continue
            screenshot(tab, f"tour-{name_of(url)}-{label}", full_page=True)
            if label == "desktop":
                violations = axe_violations(tab, source)
                if violations:
                    problems[key] = describe(violations)
            elif not url.startswith(WIDE_OK):
                wider = sideways_scroll(tab)
                if wider > 0:
                    problems[key] = f"scrolls sideways by {wider}px"
            if errors:
                problems[f"{key} console"] = list(errors)
        context.close()
    assert not problems, "\n".join(f"{k}: {v}" for k, v in problems.items())
