"""E-mail triggers from their real sources: the pixel, the click redirect,
the unsubscribe page and the signed provider callbacks (the public
endpoints that feed the bus)."""

from __future__ import annotations

import json

import pytest

from app.automation.delivery.signing import sign_headers
from app.automation.delivery.tracking import make_token
from app.automation.triggers.visitor import public_firm_key
from app.clock import now
from app.extensions import db
from app.models import OutboxMessage
from app.tenancy import firm_context
from tests.delivery.conftest import configured, queue_message
from tests.triggers.conftest import executions_of

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@pytest.fixture
def sent(acme, app):
    """A sent e-mail of some workflow: (outbox id, contact id, node id)."""
    with configured(app, SMTP_HOST="127.0.0.1"):
        message = queue_message(acme, "send_email", {"subject": "Hi", "body_text": "Hi"})
    with firm_context(acme.id):
        row = db.session.get(OutboxMessage, message.id)
        row.status, row.sent_at = "sent", now()
        db.session.commit()
        return row.id, row.contact_id, row.message_id


def _started(firm, workflow):
    return [(e.contact_id, e.trigger_type) for e in executions_of(firm, workflow)]


def test_the_open_pixel_fires_email_opened(client, acme, live_workflow, sent):
    outbox_id, contact_id, _ = sent
    workflow = live_workflow(acme, "email_opened")
    response = client.get(f"/t/o/{make_token('open', acme.id, outbox_id)}.gif")
    assert response.status_code == 200
    assert _started(acme, workflow) == [(contact_id, "email_opened")]
    assert executions_of(acme, workflow)[0].context_data["email_id"] == outbox_id


def test_a_click_fires_email_clicked_with_the_link_and_ties_the_browser(
    client, acme, live_workflow, sent
):
    outbox_id, contact_id, _ = sent
    clicked = live_workflow(acme, "email_clicked", {"url_contains": "/pricing"}, name="Clicked")
    visited = live_workflow(acme, "page_visited", {"url_contains": "/pricing"}, name="Visited")
    link = "https://acme.example/pricing?plan=pro"
    response = client.get(f"/t/c/{make_token('click', acme.id, outbox_id, link)}")
    assert response.status_code == 302 and response.headers["Location"] == link
    (execution,) = executions_of(acme, clicked)
    assert (execution.contact_id, execution.context_data["url"]) == (contact_id, link)
    # The redirect set the visitor cookie: the page view is now the contact's.
    client.post("/t/v", json={"firm": public_firm_key(acme.id), "url": link})
    assert _started(acme, visited) == [(contact_id, "page_visited")]


def test_a_one_click_unsubscribe_fires_email_unsubscribed(client, acme, live_workflow, sent):
    outbox_id, contact_id, _ = sent
    workflow = live_workflow(acme, "email_unsubscribed")
    token = make_token("unsubscribe", acme.id, outbox_id)
    assert client.get(f"/t/u/{token}").status_code == 200
    assert executions_of(acme, workflow) == []  # the confirmation page changes nothing
    response = client.post(f"/t/u/{token}", data={"List-Unsubscribe": "One-Click"})
    assert response.status_code == 200
    assert _started(acme, workflow) == [(contact_id, "email_unsubscribed")]


@pytest.mark.parametrize("event_type", ["email_bounced", "email_replied"])
def test_signed_provider_callbacks_fire_bounced_and_replied(
    app, client, acme, live_workflow, sent, event_type
):
    outbox_id, contact_id, message_id = sent
    workflow = live_workflow(acme, event_type)
    body = json.dumps({"type": event_type, "message_id": message_id, "event_id": "p-1"}).encode()
    with configured(app, EMAIL_EVENTS_SECRET=SECRET):
        response = client.post(
            "/hooks/email-events",
            data=body,
            headers=sign_headers(SECRET, "msg_1", body),
            content_type="application/json",
        )
        assert response.status_code == 200, response.get_json()
        # The provider retries the same callback: nothing new starts.
        client.post(
            "/hooks/email-events",
            data=body,
            headers=sign_headers(SECRET, "msg_1", body),
            content_type="application/json",
        )
    assert _started(acme, workflow) == [(contact_id, event_type)]


def test_a_tampered_token_is_404_and_fires_nothing(client, acme, live_workflow, sent):
    outbox_id, _, _ = sent
    workflow = live_workflow(acme, "email_opened")
    token = make_token("open", acme.id, outbox_id)
    assert client.get(f"/t/o/{token[:-2]}xx.gif").status_code == 404
    assert executions_of(acme, workflow) == []
