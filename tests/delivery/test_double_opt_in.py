"""Double opt-in: nothing reaches a contact until the signed link is
followed; then the post applies once, with a consent record."""

from __future__ import annotations

import re
from datetime import timedelta

import time_machine
from sqlalchemy import select

from app.automation.delivery.dispatcher import deliver_due
from app.automation.engine.sweeper import process_waiting_executions
from app.automation.triggers.visitor import COOKIE, read_visitor_cookie
from app.clock import now
from app.extensions import db
from app.models import ConsentRecord, Contact, EventLog, Form, PendingSignup, Suppression
from app.tenancy import firm_context
from tests.delivery.conftest import configured
from tests.factories import make_contact
from tests.triggers.test_public_forms import FIELDS, _contacts, _token

LINK = re.compile(r"(http://localhost/f/confirm/[A-Za-z0-9._\-]+)")


def _form(firm, **fields):
    with firm_context(firm.id):
        form = Form(
            name="Newsletter",
            fields=FIELDS,
            double_opt_in=True,
            consent_text="Yes, send me the monthly newsletter.",
            confirm_subject="Confirm {{ fields.first_name }}",
            confirm_body="Hi {{ fields.first_name }}, confirm here: {{ confirm_url }}",
            **fields,
        )
        db.session.add(form)
        db.session.commit()
        return form


def _post(client, form, **values):
    data = {"_form_token": _token(client, form), "email": "ann@example.com", "first_name": "Ann"}
    return client.post(
        f"/f/{form.form_key}", data={**data, **values}, environ_base={"REMOTE_ADDR": "203.0.113.9"}
    )


def _events(firm, kind="form_submitted"):
    with firm_context(firm.id):
        return db.session.scalars(select(EventLog).where(EventLog.event_type == kind)).all()


def test_a_post_waits_for_its_link_then_applies_once(app, client, acme, smtp_server):
    form = _form(acme)
    response = _post(client, form)
    assert response.status_code == 200 and "Follow its link to confirm" in response.get_data(
        as_text=True
    )
    assert _contacts(acme) == [] and _events(acme) == [] and client.get_cookie(COOKIE) is None
    deliver_due()
    [mail] = smtp_server.messages
    assert mail["Subject"] == "Confirm Ann" and mail["List-Unsubscribe"] is None
    text = mail.get_body(preferencelist=("plain",)).get_content()
    # The text part's link goes through the click redirect to the confirmation page.
    tracked = re.search(r"(http://localhost/t/c/\S+)", text).group(1)
    link = client.get(tracked.removeprefix("http://localhost")).headers["Location"]
    path = link.removeprefix("http://localhost")
    page = client.get(path)
    assert page.status_code == 200 and "Confirm" in page.get_data(as_text=True)
    assert _contacts(acme) == []  # fetching the page (a link scanner) confirms nothing

    done = client.post(
        path, headers={"User-Agent": "Firefox"}, environ_base={"REMOTE_ADDR": "198.51.100.7"}
    )
    assert done.status_code == 200
    [contact] = _contacts(acme)
    assert contact.first_name == "Ann"
    assert read_visitor_cookie(client.get_cookie(COOKIE).value) == (acme.id, contact.id)
    assert len(_events(acme)) == 1
    with firm_context(acme.id):
        [record] = db.session.scalars(select(ConsentRecord)).all()
    assert (record.method, record.form_id, record.ip) == ("double_opt_in", form.id, "203.0.113.9")
    assert record.wording == "Yes, send me the monthly newsletter." and record.confirmed_at
    assert client.post(path).status_code == 200  # a second press: nothing new
    assert len(_events(acme)) == 1 and len(_contacts(acme)) == 1


def test_changes_to_a_known_contact_wait_for_confirmation(client, acme, app):
    ann = make_contact(acme, email="ann@example.com", first_name="")
    form = _form(acme)
    with configured(app, SMTP_HOST=None):
        _post(client, form, first_name="Mallory")
    db.session.expire_all()
    with firm_context(acme.id):
        assert db.session.get(Contact, ann.id).first_name == ""
        signup = db.session.scalars(select(PendingSignup)).one()
    assert signup.data["first_name"] == "Mallory" and _events(acme) == []


def test_forged_and_expired_links_are_refused_and_expired_signups_go(client, acme, app):
    form = _form(acme)
    with configured(app, SMTP_HOST=None):
        _post(client, form)
    with firm_context(acme.id):
        signup = db.session.scalars(select(PendingSignup)).one()
        from app.automation.triggers.double_opt_in import confirm_url

        with app.test_request_context():
            path = confirm_url(signup).removeprefix("http://localhost")
    forged = path[:-2] + ("AA" if not path.endswith("AA") else "BB")
    assert client.get(forged).status_code == 400
    assert client.post(forged).status_code == 400
    with time_machine.travel(now() + timedelta(hours=73), tick=False):
        expired = client.post(path)
        assert expired.status_code == 410 and "expired" in expired.get_data(as_text=True)
        process_waiting_executions()
    with firm_context(acme.id):
        assert db.session.scalars(select(PendingSignup)).all() == []
    assert _contacts(acme) == [] and _events(acme) == []


def test_a_suppressed_address_gets_no_confirmation(client, acme, smtp_server):
    with firm_context(acme.id):
        db.session.add(Suppression(address="ann@example.com", reason="complaint"))
        db.session.commit()
    _post(client, _form(acme))
    deliver_due()
    assert smtp_server.messages == []
