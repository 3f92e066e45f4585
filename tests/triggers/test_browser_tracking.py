"""The tracking snippet in a real browser: a visitor submits a form on the
app, then browses the firm's own site (another origin) where track.js
reports the page views, and the visits start the contact's workflows."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import select

from app.automation.triggers.visitor import public_firm_key
from app.extensions import db
from app.models import Contact, Form, SiteVisit
from app.tenancy import firm_context
from tests.e2e.conftest import browser, live_server, page  # noqa: F401  (fixtures)
from tests.triggers.conftest import executions_of

pytestmark = pytest.mark.browser


@pytest.fixture
def firm_site(app, live_server, acme):  # noqa: F811
    """The firm's own website on another port (another origin, same site)."""
    with app.app_context():
        key = public_firm_key(acme.id)
    html = (
        "<!doctype html><html><head><title>Acme</title>"
        f'<script src="{live_server.url}/t/track.js" data-firm="{key}" async></script>'
        "</head><body><h1>Acme</h1>"
        "<a id='spa' href='#' onclick=\"history.pushState({}, '', '/pricing/enterprise');"
        'return false">Enterprise</a></body></html>'
    ).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.end_headers()
            self.wfile.write(html)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def _visits(firm, count: int, timeout: float = 10.0) -> list[SiteVisit]:
    deadline = time.monotonic() + timeout
    while True:
        with firm_context(firm.id):
            db.session.expire_all()
            visits = list(db.session.scalars(select(SiteVisit).order_by(SiteVisit.id)))
        if len(visits) >= count or time.monotonic() > deadline:
            return visits
        time.sleep(0.1)


def test_anonymous_then_known_visits_from_the_snippet(
    page,  # noqa: F811
    live_server,  # noqa: F811
    firm_site,
    acme,
    live_workflow,
):
    with firm_context(acme.id):
        form = Form(
            name="Newsletter", fields=[{"name": "email", "type": "email", "required": True}]
        )
        db.session.add(form)
        db.session.commit()
        form_key = form.form_key
    workflow = live_workflow(acme, "page_visited", {"url_contains": "/pricing"})

    page.goto(f"{firm_site}/pricing")
    (anonymous,) = _visits(acme, 1)
    assert anonymous.contact_id is None and anonymous.url == f"{firm_site}/pricing"

    page.goto(f"{live_server.url}/f/{form_key}")
    page.get_by_label("Email").fill("visitor@example.com")
    page.get_by_role("button", name="Submit").click()
    page.get_by_text("Thank you!").wait_for()

    page.goto(f"{firm_site}/pricing")
    page.click("#spa")  # an in-page navigation is a page view too
    visits = _visits(acme, 3)
    with firm_context(acme.id):
        contact = db.session.scalars(select(Contact)).one()
    assert [v.url for v in visits] == [
        f"{firm_site}/pricing",
        f"{firm_site}/pricing",
        f"{firm_site}/pricing/enterprise",
    ]
    # The browser's earlier anonymous visit is attributed too.
    assert {v.contact_id for v in visits} == {contact.id}
    assert "Chrome" in visits[-1].user_agent
    started = executions_of(acme, workflow)
    assert [e.contact_id for e in started] == [contact.id]
    assert page.js_errors == []
