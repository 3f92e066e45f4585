"""Public forms: the page, the token, the honeypot, the upsert and the trigger."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from app.automation.triggers.visitor import COOKIE, read_visitor_cookie
from app.extensions import db
from app.models import Contact, Form, FormSubmission
from app.tenancy import firm_context
from tests.factories import make_contact
from tests.triggers.conftest import executions_of

TOKEN = re.compile(r'name="_form_token" value="([^"]+)"')
FIELDS = [
    {"name": "email", "label": "Email", "type": "email", "required": True},
    {"name": "first_name", "label": "First name", "type": "text", "required": True},
    {"name": "custom.renewal_date", "label": "Renewal", "type": "date"},
    {"name": "company", "label": "Company", "type": "text"},
]


@pytest.fixture
def signup(acme):
    with firm_context(acme.id):
        form = Form(name="Signup", fields=FIELDS, success_message="Thanks <b>friend</b>")
        db.session.add(form)
        db.session.commit()
        return form


def _token(client, form) -> str:
    page = client.get(f"/f/{form.form_key}")
    assert page.status_code == 200
    return TOKEN.search(page.get_data(as_text=True)).group(1)


def _contacts(firm):
    with firm_context(firm.id):
        return list(db.session.scalars(select(Contact).order_by(Contact.id)))


def test_the_page_shows_the_configured_fields(client, signup):
    page = client.get(f"/f/{signup.form_key}").get_data(as_text=True)
    assert 'name="first_name"' in page
    assert 'type="date"' in page and 'name="custom.renewal_date"' in page
    assert 'name="website_url"' in page  # the honeypot


def test_unknown_forms_are_404(client):
    assert client.get("/f/nope").status_code == 404
    assert client.post("/f/nope", data={}).status_code == 404


def test_a_submission_creates_the_contact_and_starts_the_form_workflow(
    client, acme, signup, live_workflow
):
    workflow = live_workflow(acme, "form_submitted", {"form_id": signup.id})
    live_workflow(acme, "form_submitted", {"form_id": signup.id + 999}, name="Other form")
    response = client.post(
        f"/f/{signup.form_key}",
        data={
            "_form_token": _token(client, signup),
            "email": "Ann@Example.com",
            "first_name": "Ann",
            "custom.renewal_date": "2027-01-31",
            "company": "Initech",
        },
        headers={"User-Agent": "Mozilla/5.0 <script>"},
    )
    assert response.status_code == 200
    body = response.get_data(as_text=True)
    assert "Thanks &lt;b&gt;friend&lt;/b&gt;" in body
    (contact,) = _contacts(acme)
    assert (contact.email, contact.first_name) == ("ann@example.com", "Ann")
    assert contact.custom_fields == {"renewal_date": "2027-01-31"}
    with firm_context(acme.id):
        (submission,) = db.session.scalars(select(FormSubmission))
    assert submission.data["company"] == "Initech"
    assert submission.user_agent == "Mozilla/5.0 <script>"
    (execution,) = executions_of(acme, workflow)
    assert execution.contact_id == contact.id
    assert execution.context_data["form_id"] == signup.id
    assert execution.context_data["fields"]["company"] == "Initech"
    # The browser is now tied to the contact.
    cookie = client.get_cookie(COOKIE)
    assert read_visitor_cookie(cookie.value) == (acme.id, contact.id)


def test_an_anonymous_post_for_a_known_email_only_fills_empty_fields(client, acme, signup):
    existing = make_contact(acme, email="ann@example.com", first_name="A", custom_fields={"x": 1})
    response = client.post(
        f"/f/{signup.form_key}",
        data={
            "_form_token": _token(client, signup),
            "email": "ann@example.com",
            "first_name": "Mallory",
            "custom.renewal_date": "2027-01-31",
        },
    )
    assert response.status_code == 200
    (contact,) = _contacts(acme)
    assert contact.id == existing.id
    assert contact.first_name == "A"  # kept; empty fields only are filled
    assert contact.custom_fields == {"x": 1, "renewal_date": "2027-01-31"}
    # Recorded as a submission, but this browser is not tied to Ann.
    assert client.get_cookie(COOKIE) is None


def test_a_form_set_to_overwrite_replaces_known_fields(client, acme, signup):
    with firm_context(acme.id):
        db.session.get(Form, signup.id).update_existing = "overwrite"
        db.session.commit()
    make_contact(acme, email="ann@example.com", first_name="A")
    client.post(
        f"/f/{signup.form_key}",
        data={
            "_form_token": _token(client, signup),
            "email": "ann@example.com",
            "first_name": "Ann",
        },
    )
    (contact,) = _contacts(acme)
    assert contact.first_name == "Ann"
    assert client.get_cookie(COOKIE) is None


def test_json_bodies_work_with_a_token_from_the_json_description(client, acme, signup):
    described = client.get(f"/f/{signup.form_key}", headers={"Accept": "application/json"})
    token = described.get_json()["token"]
    response = client.post(
        f"/f/{signup.form_key}",
        json={"_form_token": token, "email": "bo@example.com", "first_name": "Bo"},
    )
    assert response.status_code == 201
    assert response.get_json()["status"] == "ok"
    assert [c.email for c in _contacts(acme)] == ["bo@example.com"]


def test_missing_and_invalid_fields_are_named(client, acme, signup):
    response = client.post(
        f"/f/{signup.form_key}",
        json={
            "_form_token": _token(client, signup),
            "email": "not-an-email",
            "custom.renewal_date": "31/01/2027",
        },
    )
    assert response.status_code == 422
    fields = response.get_json()["error"]["fields"]
    assert set(fields) == {"email", "first_name", "custom.renewal_date"}
    html = client.post(
        f"/f/{signup.form_key}",
        data={"_form_token": _token(client, signup), "email": "<b>x</b>", "first_name": "A"},
    )
    assert html.status_code == 422
    text = html.get_data(as_text=True)
    assert "&lt;b&gt;x&lt;/b&gt;" in text and "<b>x</b>" not in text
    assert _contacts(acme) == []


def test_a_forged_or_foreign_token_is_refused(client, acme, signup):
    with firm_context(acme.id):
        other = Form(name="Other", fields=FIELDS)
        db.session.add(other)
        db.session.commit()
    for token in ("", "forged", _token(client, other)):
        response = client.post(
            f"/f/{signup.form_key}",
            data={"_form_token": token, "email": "a@example.com", "first_name": "A"},
        )
        assert response.status_code == 400
    assert _contacts(acme) == []


def test_an_old_token_expires(client, acme, signup, time_machine):
    time_machine.move_to("2026-01-01T10:00:00Z", tick=False)
    token = _token(client, signup)
    time_machine.move_to("2026-01-03T10:00:00Z", tick=False)
    response = client.post(
        f"/f/{signup.form_key}",
        data={"_form_token": token, "email": "a@example.com", "first_name": "A"},
    )
    assert response.status_code == 400
    assert "expired" in response.get_data(as_text=True)


def test_the_honeypot_pretends_success_and_stores_nothing(client, acme, signup):
    response = client.post(
        f"/f/{signup.form_key}",
        data={
            "_form_token": _token(client, signup),
            "email": "bot@example.com",
            "first_name": "Bot",
            "website_url": "http://spam.example",
        },
    )
    assert response.status_code == 200
    assert _contacts(acme) == []
    assert client.get_cookie(COOKIE) is None


def test_it_redirects_only_to_web_addresses(client, acme, signup):
    with firm_context(acme.id):
        form = db.session.get(Form, signup.id)
        form.redirect_url = "https://example.com/thanks"
        db.session.commit()
    response = client.post(
        f"/f/{signup.form_key}",
        data={"_form_token": _token(client, signup), "email": "a@example.com", "first_name": "A"},
    )
    assert response.status_code == 303
    assert response.headers["Location"] == "https://example.com/thanks"
    with firm_context(acme.id):
        db.session.get(Form, signup.id).redirect_url = "javascript:alert(1)"
        db.session.commit()
    response = client.post(
        f"/f/{signup.form_key}",
        data={"_form_token": _token(client, signup), "email": "b@example.com", "first_name": "B"},
    )
    assert response.status_code == 200


def test_a_logged_in_user_of_another_firm_submits_into_the_forms_firm(
    client, auth, acme, signup, charlie
):
    auth.login(charlie)
    client.post(
        f"/f/{signup.form_key}",
        data={"_form_token": _token(client, signup), "email": "a@example.com", "first_name": "A"},
    )
    assert [c.email for c in _contacts(acme)] == ["a@example.com"]


def test_the_form_page_can_be_embedded_and_runs_no_script(client, signup):
    response = client.get(f"/f/{signup.form_key}")
    policy = response.headers["Content-Security-Policy"]
    assert "frame-ancestors *" in policy
    assert "default-src 'none'" in policy and "script-src" not in policy
    assert "<script" not in response.get_data(as_text=True)


def test_the_email_matches_an_existing_contact_whatever_its_case(client, acme, signup):
    existing = make_contact(acme, email="Ann@Example.com")
    client.post(
        f"/f/{signup.form_key}",
        json={"_form_token": _token(client, signup), "email": "ann@example.com", "first_name": "A"},
    )
    assert [c.id for c in _contacts(acme)] == [existing.id]


def test_structured_json_values_are_refused_by_name(client, acme, signup):
    response = client.post(
        f"/f/{signup.form_key}",
        json={"_form_token": _token(client, signup), "email": "a@example.com", "first_name": ["A"]},
    )
    assert response.status_code == 422
    assert response.get_json()["error"]["fields"] == {"first_name": ["must be a single value"]}
