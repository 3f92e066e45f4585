"""In Chromium: the preference page behind an unsubscribe link."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from app.automation.delivery.tracking import make_token
from app.extensions import db
from app.models import Contact, Topic, contact_subscriptions
from app.tenancy import firm_context
from tests.delivery.conftest import configured, queue_message
from tests.factories import make_contact

pytestmark = pytest.mark.browser


def _topics(firm):
    with firm_context(firm.id):
        news = Topic(name="Newsletter", description="Once a month", is_default=True)
        offers = Topic(name="Offers")
        receipts = Topic(name="Receipts", kind="transactional")
        db.session.add_all([news, offers, receipts])
        firm.settings = {"preference_text": "Acme writes only when it has news for you."}
        db.session.add(firm)
        db.session.commit()
        return news.id, offers.id


def _opted_out(firm, contact):
    db.session.expire_all()
    with firm_context(firm.id):
        rows = db.session.execute(
            select(contact_subscriptions.c.topic_id).where(
                contact_subscriptions.c.contact_id == contact.id,
                contact_subscriptions.c.subscribed.is_(False),
            )
        )
        return sorted(r[0] for r in rows), db.session.get(Contact, contact.id).unsubscribed


def test_a_contact_turns_off_one_topic_and_then_all_marketing(app, acme, page, live_server):
    _, offers = _topics(acme)
    contact = make_contact(acme, email="ann@example.com")
    with configured(app, SMTP_HOST=None):
        message = queue_message(
            acme, "send_email", {"subject": "Hi", "body_text": "Hi", "topic": offers}, contact
        )
    with app.app_context():
        token = make_token("unsubscribe", acme.id, message.id)
    page.goto(f"{live_server.url}/t/u/{token}")
    assert page.title() == "E-mail preferences · Acme"
    assert page.get_by_text("Acme writes only when it has news for you.").is_visible()
    assert page.get_by_text("Service e-mails (Receipts) are always sent").is_visible()
    assert _opted_out(acme, contact) == ([], False)  # opening the page changes nothing

    page.get_by_label("Offers").uncheck()
    page.get_by_role("button", name="Save my choices").click()
    page.get_by_role("heading", name="Your choices are saved").wait_for()
    assert page.get_by_text("ann@example.com").count() == 0  # the address is masked
    assert _opted_out(acme, contact) == ([offers], False)

    page.goto(f"{live_server.url}/t/u/{token}")
    assert page.get_by_label("Offers").is_checked() is False
    assert page.get_by_label("Newsletter").is_checked() is True
    page.get_by_label("Unsubscribe from all marketing e-mails").check()
    page.get_by_role("button", name="Save my choices").click()
    page.get_by_role("heading", name="Your choices are saved").wait_for()
    assert _opted_out(acme, contact) == ([offers], True)


def test_a_double_opt_in_sign_up_is_confirmed_by_its_link(app, acme, page, live_server):
    from app.models import Form, OutboxMessage
    from tests.triggers.test_public_forms import FIELDS

    with firm_context(acme.id):
        form = Form(
            name="Newsletter",
            fields=FIELDS,
            double_opt_in=True,
            consent_text="Send me the newsletter.",
            success_message="Welcome aboard!",
        )
        db.session.add(form)
        db.session.commit()
    with configured(app, SMTP_HOST=None):
        page.goto(f"{live_server.url}/f/{form.form_key}")
        page.get_by_label("Email").fill("ann@example.com")
        page.get_by_label("First name").fill("Ann")
        page.get_by_role("button").first.click()
        page.get_by_text("Follow its link to confirm").wait_for()
    db.session.expire_all()
    with firm_context(acme.id):
        assert db.session.scalars(select(Contact)).all() == []
        mail = db.session.scalars(select(OutboxMessage)).one()
    link = re.search(r"http://localhost(/f/confirm/\S+)", mail.body_text).group(1)
    page.goto(live_server.url + link)
    page.get_by_role("button", name="Confirm").click()
    page.get_by_text("Welcome aboard!").wait_for()
    db.session.expire_all()
    with firm_context(acme.id):
        contact = db.session.scalars(select(Contact)).one()
    assert contact.first_name == "Ann"
    assert any(c["name"] == "atv" for c in page.context.cookies())
