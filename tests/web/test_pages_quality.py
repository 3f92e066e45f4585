"""Cross-cutting rules for every page of this area: writes need the CSRF
token, fragments reload as full pages, user text is escaped, and no page
carries inline script."""

from __future__ import annotations

import re

import pytest

from app.extensions import db
from app.models import ContactList, Tag
from app.tenancy import firm_context
from tests.factories import make_contact, make_workflow
from tests.web.conftest import HX

OUR_BLUEPRINTS = ("workflows", "contacts", "executions", "outbox", "crm", "admin")


def _post_rules(app):
    for rule in app.url_map.iter_rules():
        if rule.endpoint.split(".")[0] in OUR_BLUEPRINTS and "POST" in rule.methods:
            yield rule


def test_every_write_of_these_pages_needs_the_csrf_token(app, client, signed_in, alice):
    signed_in(alice)
    rules = list(_post_rules(app))
    assert len(rules) >= 20
    for rule in rules:
        path = re.sub(r"<int:\w+>", "1", rule.rule)
        response = client.post(path, data={"name": "x"})
        assert response.status_code == 400, rule.rule
        assert b"CSRF" in response.data, rule.rule


@pytest.mark.parametrize(
    "path",
    [
        "/automation?q=a",
        "/contacts?q=a",
        "/executions?status=failed",
        "/dead-letters",
        "/outbox?status=sent",
        "/contacts/{contact}",
    ],
)
def test_fragments_reload_as_full_pages(client, signed_in, alice, acme, path):
    contact = make_contact(acme)
    signed_in(alice)
    url = path.format(contact=contact.id)
    fragment = client.get(url, headers=HX)
    full = client.get(url)
    assert fragment.status_code == full.status_code == 200
    assert "<html" not in fragment.get_data(as_text=True)
    assert "<html" in full.get_data(as_text=True)


def test_user_text_is_escaped_everywhere(client, signed_in, alice, acme):
    evil = '<img src=x onerror=alert(1) hx-get="/admin">'
    make_workflow(acme, name=evil, description=evil)
    contact = make_contact(acme, first_name=evil, custom_fields={"note": evil})
    with firm_context(acme.id):
        db.session.add_all([Tag(name=evil[:90]), ContactList(name=evil)])
        db.session.commit()
    signed_in(alice)
    for path in ("/automation", "/contacts", f"/contacts/{contact.id}", "/tags", "/lists"):
        body = client.get(path).get_data(as_text=True)
        assert "<img src=x" not in body, path
        assert "&lt;img src=x" in body, path


def test_pages_have_no_inline_script_and_send_a_strict_csp(client, signed_in, alice, acme):
    contact = make_contact(acme)
    signed_in(alice)
    for path in ("/automation", "/contacts", f"/contacts/{contact.id}", "/executions", "/admin"):
        response = client.get(path)
        body = response.get_data(as_text=True)
        assert re.search(r"<script(?![^>]*\bsrc=)", body) is None, path
        assert re.search(r"\son[a-z]+=", body) is None, path
        policy = response.headers["Content-Security-Policy"]
        assert (
            "script-src 'self'" in policy
            and "unsafe-inline" not in policy.split("script-src")[1].split(";")[0]
        )


def test_every_input_has_a_label(client, signed_in, alice, acme):
    contact = make_contact(acme)
    signed_in(alice)
    for path in (
        "/automation",
        "/contacts",
        "/contacts/new",
        f"/contacts/{contact.id}",
        "/forms",
        "/lists",
        "/tags",
        "/admin",
    ):
        body = client.get(path).get_data(as_text=True)
        labelled = set(re.findall(r'<label[^>]*\bfor="([^"]+)"', body))
        # Inputs wrapped in their <label> are labelled too.
        wrapped = {
            tag
            for inner in re.findall(r"<label\b[^>]*>(.*?)</label>", body, re.S)
            for tag in re.findall(r"<(?:input|select|textarea)\b[^>]*>", inner)
        }
        for tag in re.findall(r"<(?:input|select|textarea)\b[^>]*>", body):
            if 'type="hidden"' in tag or "aria-label=" in tag or tag in wrapped:
                continue
            match = re.search(r'\bid="([^"]+)"', tag)
            assert match and match.group(1) in labelled, f"{path}: {tag}"


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/contacts?tag=2", "/contacts?tag=2"),
        ("//evil.example/", "/fallback"),
        ("/\\evil.example/", "/fallback"),
        ("https://evil.example/", "/fallback"),
        ("/ok\r\nSet-Cookie: x=1", "/fallback"),
        ("", "/fallback"),
        (None, "/fallback"),
    ],
)
def test_come_back_links_stay_on_this_site(target, expected):
    from app.web.pages import local_path

    assert local_path(target, "/fallback") == expected


def test_bulk_add_never_redirects_off_site(client, signed_in, alice, acme):
    token = signed_in(alice)
    response = client.post(
        "/contacts/enroll", data={"next": "//evil.example/", "csrf_token": token}
    )
    assert response.status_code == 303
    assert response.headers["Location"].endswith("/contacts")
