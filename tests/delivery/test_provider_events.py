"""POST /hooks/email-events: signed provider callbacks."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import select

from app.automation.delivery.signing import sign_headers
from app.clock import now
from app.extensions import db
from app.models import Contact, EventLog, OutboxMessage, TrackingEvent
from app.tenancy import firm_context
from tests.delivery.conftest import configured, queue_message

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@pytest.fixture
def events_secret(app):
    with configured(app, EMAIL_EVENTS_SECRET=SECRET):
        yield SECRET


@pytest.fixture
def sent_email(acme, app):
    with configured(app, SMTP_HOST="127.0.0.1"):
        message = queue_message(acme, "send_email", {"subject": "Hi", "body_text": "Hi"})
    with firm_context(acme.id):
        row = db.session.get(OutboxMessage, message.id)
        row.status, row.sent_at = "sent", now()
        db.session.commit()
    return message


def _post(client, payload, secret=SECRET, msg_id="evt_1", timestamp=None):
    body = json.dumps(payload).encode()
    headers = sign_headers(secret, msg_id, body, timestamp=timestamp)
    return client.post(
        "/hooks/email-events", data=body, headers=headers, content_type="application/json"
    )


def _tracking(firm, kind):
    with firm_context(firm.id):
        return list(db.session.scalars(select(TrackingEvent).where(TrackingEvent.kind == kind)))


def _bus(firm, event_type):
    with firm_context(firm.id):
        return list(db.session.scalars(select(EventLog).where(EventLog.event_type == event_type)))


def test_a_signed_bounce_is_recorded_and_emitted(client, acme, events_secret, sent_email):
    payload = {"type": "email_bounced", "message_id": sent_email.message_id, "event_id": "b-1"}
    response = _post(client, payload)
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["status"] == "recorded"
    [bounce] = _tracking(acme, "bounce")
    assert bounce.outbox_id == sent_email.id and bounce.contact_id == sent_email.contact_id
    [event] = _bus(acme, "email_bounced")
    assert event.data["node"] == "step" and event.contact_id == sent_email.contact_id


def test_a_reply_is_matched_by_email_address(client, acme, events_secret, sent_email):
    payload = {"type": "email_replied", "email": sent_email.to_address, "event_id": "r-1"}
    assert _post(client, payload).status_code == 200
    assert len(_tracking(acme, "reply")) == 1
    assert len(_bus(acme, "email_replied")) == 1


def test_a_message_id_without_angle_brackets_matches(client, acme, events_secret, sent_email):
    payload = {"type": "email_opened", "message_id": sent_email.message_id.strip("<>")}
    assert _post(client, payload, msg_id="o-1").status_code == 200
    assert len(_tracking(acme, "open")) == 1


def test_a_provider_unsubscribe_unsubscribes_the_contact(client, acme, events_secret, sent_email):
    payload = {"type": "email_unsubscribed", "message_id": sent_email.message_id, "event_id": "u-1"}
    assert _post(client, payload).status_code == 200
    with firm_context(acme.id):
        assert db.session.get(Contact, sent_email.contact_id).unsubscribed is True
    assert len(_tracking(acme, "unsubscribe")) == 1
    assert len(_bus(acme, "email_unsubscribed")) == 1


def test_a_replayed_event_is_a_no_op(client, acme, events_secret, sent_email):
    payload = {"type": "email_bounced", "message_id": sent_email.message_id, "event_id": "b-1"}
    assert _post(client, payload).status_code == 200
    again = _post(client, payload, msg_id="another-delivery")
    assert again.status_code == 200 and again.get_json()["status"] == "duplicate"
    assert len(_tracking(acme, "bounce")) == 1
    assert len(_bus(acme, "email_bounced")) == 1


def test_a_bad_signature_is_401(client, acme, events_secret, sent_email):
    payload = {"type": "email_bounced", "message_id": sent_email.message_id}
    assert _post(client, payload, secret="whsec_" + "A" * 43).status_code == 401
    body = json.dumps(payload).encode()
    headers = sign_headers(SECRET, "evt", body)
    tampered = client.post(
        "/hooks/email-events", data=body + b" ", headers=headers, content_type="application/json"
    )
    assert tampered.status_code == 401
    assert client.post("/hooks/email-events", json=payload).status_code == 401
    assert _tracking(acme, "bounce") == []


def test_a_stale_signature_is_401(client, acme, events_secret, sent_email):
    payload = {"type": "email_bounced", "message_id": sent_email.message_id}
    stale = int((now() - timedelta(minutes=6)).timestamp())
    response = _post(client, payload, timestamp=stale)
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "unauthorized"
    future = int((now() + timedelta(minutes=6)).timestamp())
    assert _post(client, payload, timestamp=future).status_code == 401


def test_without_a_configured_secret_everything_is_401(client, app, sent_email):
    with configured(app, EMAIL_EVENTS_SECRET=None):
        payload = {"type": "email_bounced", "message_id": sent_email.message_id}
        assert _post(client, payload).status_code == 401


def test_an_unknown_type_is_422_and_an_unknown_message_404(client, events_secret, sent_email):
    response = _post(client, {"type": "email_exploded", "message_id": sent_email.message_id})
    assert response.status_code == 422
    assert "type" in response.get_json()["error"]["fields"]
    missing = _post(client, {"type": "email_bounced", "message_id": "<nope@x>"}, msg_id="e2")
    assert missing.status_code == 404
    not_json = client.post(
        "/hooks/email-events",
        data=b"[1, 2]",
        headers=sign_headers(SECRET, "e3", b"[1, 2]"),
        content_type="application/json",
    )
    assert not_json.status_code == 400
