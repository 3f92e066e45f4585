"""The public tracking endpoints: pixel, click redirect, unsubscribe."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from app.automation.delivery.dispatcher import deliver_due
from app.automation.delivery.tracking import make_token
from app.extensions import db
from app.models import Contact, EventLog, TrackingEvent
from app.tenancy import firm_context
from tests.delivery.conftest import configured, queue_message

HTML = '<p>Hi <a href="https://example.com/offer?a=1&amp;b=2">offer</a></p>'


@pytest.fixture
def sent(acme, smtp_server):
    """An e-mail sent to a real SMTP server, and the links in it."""
    message = queue_message(acme, "send_email", {"subject": "Hi", "body_html": HTML})
    deliver_due()
    [received] = smtp_server.messages
    body = received.get_body(preferencelist=("html",)).get_content()
    links = {
        "open": re.search(r'src="http://localhost(/t/o/[^"]+)"', body).group(1),
        "click": re.search(r'href="http://localhost(/t/c/[^"]+)"', body).group(1),
        "unsubscribe": re.search(r'href="http://localhost(/t/u/[^"]+)"', body).group(1),
    }
    return message, links


def _events(firm, kind=None):
    with firm_context(firm.id):
        stmt = select(TrackingEvent)
        if kind:
            stmt = stmt.where(TrackingEvent.kind == kind)
        return list(db.session.scalars(stmt))


def _bus_events(firm, event_type):
    with firm_context(firm.id):
        return list(db.session.scalars(select(EventLog).where(EventLog.event_type == event_type)))


def test_the_pixel_records_every_open_and_emits_once(client, acme, sent):
    message, links = sent
    for _ in range(2):
        response = client.get(links["open"], headers={"User-Agent": "Mail/1.0"})
        assert response.status_code == 200
        assert response.mimetype == "image/gif"
        assert response.data.startswith(b"GIF89a")
        assert "no-store" in response.headers["Cache-Control"]
    opens = _events(acme, "open")
    assert len(opens) == 2
    assert opens[0].outbox_id == message.id and opens[0].node_id == "step"
    assert opens[0].contact_id == message.contact_id and opens[0].user_agent == "Mail/1.0"
    [event] = _bus_events(acme, "email_opened")
    assert event.contact_id == message.contact_id
    assert event.data["node"] == "step" and event.data["message_id"] == message.message_id
    assert event.data["workflow_id"] == message.workflow_id


def test_a_click_redirects_to_the_link_that_was_sent(client, acme, sent):
    message, links = sent
    response = client.get(links["click"])
    assert response.status_code == 302
    assert response.headers["Location"] == "https://example.com/offer?a=1&b=2"
    # The browser is tied to the contact for site tracking.
    assert "atv=" in response.headers["Set-Cookie"]
    [click] = _events(acme, "click")
    assert click.url == "https://example.com/offer?a=1&b=2"
    [event] = _bus_events(acme, "email_clicked")
    assert event.data["url"] == "https://example.com/offer?a=1&b=2"


def test_the_unsubscribe_page_asks_before_unsubscribing(client, acme, sent):
    message, links = sent
    page = client.get(links["unsubscribe"])
    assert page.status_code == 200
    assert b'<form method="post">' in page.data
    assert b"@example.com" in page.data
    with firm_context(acme.id):
        assert db.session.get(Contact, message.contact_id).unsubscribed is False
    assert _bus_events(acme, "email_unsubscribed") == []


def test_posting_the_unsubscribe_page_unsubscribes(client, acme, sent):
    message, links = sent
    response = client.post(links["unsubscribe"])
    assert response.status_code == 200
    assert b"You are unsubscribed" in response.data
    with firm_context(acme.id):
        db.session.expire_all()
        contact = db.session.get(Contact, message.contact_id)
        assert contact.unsubscribed is True and contact.unsubscribed_at is not None
    assert len(_events(acme, "unsubscribe")) == 1
    assert len(_bus_events(acme, "email_unsubscribed")) == 1
    # Again: still fine, nothing new.
    assert client.post(links["unsubscribe"]).status_code == 200
    assert len(_events(acme, "unsubscribe")) == 1
    assert len(_bus_events(acme, "email_unsubscribed")) == 1


def test_rfc_8058_one_click_unsubscribes(client, acme, sent):
    message, links = sent
    response = client.post(
        links["unsubscribe"],
        data="List-Unsubscribe=One-Click",
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 200
    with firm_context(acme.id):
        assert db.session.get(Contact, message.contact_id).unsubscribed is True


def test_the_next_email_to_an_unsubscribed_contact_is_skipped(client, acme, sent, smtp_server):
    message, links = sent
    client.post(links["unsubscribe"])
    with firm_context(acme.id):
        contact = db.session.get(Contact, message.contact_id)
    again = queue_message(acme, "send_email", {"subject": "Hi", "body_text": "Hi"}, contact=contact)
    assert again.status == "skipped"
    deliver_due()
    assert len(smtp_server.messages) == 1


def _tamper(token: str) -> str:
    head, _, signature = token.rpartition(".")
    return f"{head}.{'A' if signature[0] != 'A' else 'B'}{signature[1:]}"


@pytest.mark.parametrize("kind", ["open", "click", "unsubscribe"])
def test_a_tampered_token_is_404(client, acme, sent, kind):
    _, links = sent
    path = links[kind]
    prefix, token = path.rsplit("/", 1)
    token = token.removesuffix(".gif")
    bad = f"{prefix}/{_tamper(token)}" + (".gif" if kind == "open" else "")
    assert client.get(bad).status_code == 404
    assert client.get(prefix + "/garbage<script>").status_code == 404
    assert b"<script>" not in client.get(prefix + "/garbage<script>").data


def test_a_click_token_cannot_be_made_to_redirect_elsewhere(client, acme, sent):
    message, _ = sent
    # An open token for the same message is not a click token.
    token = make_token("open", acme.id, message.id)
    assert client.get(f"/t/c/{token}").status_code == 404
    assert client.post(f"/t/u/{token}").status_code == 404


def test_another_firms_token_is_404(client, acme, globex, sent):
    message, _ = sent
    for kind, path in (("open", "/t/o/{}.gif"), ("click", "/t/c/{}"), ("unsubscribe", "/t/u/{}")):
        url = "https://example.com/offer?a=1&b=2" if kind == "click" else ""
        token = make_token(kind, globex.id, message.id, url)
        assert client.get(path.format(token)).status_code == 404
    assert (
        client.post(f"/t/u/{make_token('unsubscribe', globex.id, message.id)}").status_code == 404
    )
    assert _events(acme) == [] and _events(globex) == []
    with firm_context(acme.id):
        assert db.session.get(Contact, message.contact_id).unsubscribed is False


def test_public_endpoints_need_no_csrf_token_or_login(app, acme, sent):
    _, links = sent
    csrf_client = app.test_client()
    with configured(app, WTF_CSRF_ENABLED=True):
        assert csrf_client.post(links["unsubscribe"]).status_code == 200
