"""Provider callbacks (``POST /hooks/email-events``) under attack: a bad or
forged signature, an old or future timestamp, malformed signature headers
and replays are rejected, and nothing is recorded -- no tracking event, no
bus event, no unsubscribe (asserted on the database)."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from app.automation.delivery.signing import sign_headers
from app.clock import now
from app.extensions import db
from app.models import Contact, EventLog, OutboxMessage, TrackingEvent
from app.tenancy import firm_context
from tests.delivery.conftest import configured, queue_message

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
OTHER = "whsec_" + "B" * 43
URL = "/hooks/email-events"
TYPES = ("email_bounced", "email_replied", "email_opened", "email_clicked", "email_unsubscribed")


@pytest.fixture
def sent(acme, app):
    with configured(app, EMAIL_EVENTS_SECRET=SECRET, SMTP_HOST="127.0.0.1"):
        message = queue_message(acme, "send_email", {"subject": "Hi", "body_text": "Hi"})
        with firm_context(acme.id):
            row = db.session.get(OutboxMessage, message.id)
            row.status, row.sent_at = "sent", now()
            db.session.commit()
        yield message


def _state(firm, contact_id) -> tuple:
    with firm_context(firm.id):
        db.session.expire_all()
        return (
            db.session.scalar(select(func.count()).select_from(TrackingEvent)),
            db.session.scalar(select(func.count()).select_from(EventLog)),
            db.session.get(Contact, contact_id).unsubscribed,
        )


def _post(client, body: bytes, headers: dict):
    return client.post(URL, data=body, headers=headers, content_type="application/json")


def _payload(kind: str, message, event_id: str | None = None) -> bytes:
    payload = {"type": kind, "message_id": message.message_id, "url": "https://example.com/x"}
    if event_id:
        payload["event_id"] = event_id
    return json.dumps(payload).encode()


def _bad_requests(body: bytes) -> list[tuple[str, bytes, dict]]:
    good = sign_headers(SECRET, "evt_1", body)
    stamp = int(good["webhook-timestamp"])
    other_body = body.replace(b"}", b', "x": 1}')
    v1 = good["webhook-signature"]
    return [
        ("another secret", body, sign_headers(OTHER, "evt_1", body)),
        ("the body changed", other_body, good),
        ("a trailing byte", body + b" ", good),
        ("the id changed", body, {**good, "webhook-id": "evt_2"}),
        ("the timestamp changed", body, {**good, "webhook-timestamp": str(stamp + 1)}),
        ("no signature", body, {k: v for k, v in good.items() if k != "webhook-signature"}),
        ("no id", body, {k: v for k, v in good.items() if k != "webhook-id"}),
        ("no timestamp", body, {k: v for k, v in good.items() if k != "webhook-timestamp"}),
        ("no headers", body, {}),
        ("empty signature", body, {**good, "webhook-signature": "v1,"}),
        ("another version", body, {**good, "webhook-signature": "v2" + v1[2:]}),
        ("bare digest", body, {**good, "webhook-signature": v1[3:]}),
        ("truncated", body, {**good, "webhook-signature": v1[:-4]}),
        ("many wrong", body, {**good, "webhook-signature": " ".join(["v1,AAAA"] * 50)}),
        ("text timestamp", body, {**good, "webhook-timestamp": "yesterday"}),
        ("float timestamp", body, {**good, "webhook-timestamp": f"{stamp}.0"}),
        ("huge timestamp", body, {**good, "webhook-timestamp": "9" * 400}),
        ("negative timestamp", body, {**good, "webhook-timestamp": "-1"}),
        ("old", body, sign_headers(SECRET, "evt_1", body, timestamp=stamp - 6 * 60)),
        ("ancient", body, sign_headers(SECRET, "evt_1", body, timestamp=1)),
        ("future", body, sign_headers(SECRET, "evt_1", body, timestamp=stamp + 6 * 60)),
        ("long id", body, sign_headers(SECRET, "e" * 201, body)),
    ]


def test_unsigned_forged_or_stale_callbacks_are_401_and_record_nothing(client, acme, sent):
    before = _state(acme, sent.contact_id)
    assert before[2] is False
    tried = 0
    for kind in TYPES:
        body = _payload(kind, sent, event_id=f"{kind}-1")
        for why, data, headers in _bad_requests(body):
            response = _post(client, data, headers)
            tried += 1
            assert response.status_code == 401, (kind, why, response.status_code)
            assert response.get_json()["error"]["code"] == "unauthorized", (kind, why)
    assert _state(acme, sent.contact_id) == before
    print(f"\nprovider callbacks: {tried} bad requests, 401 each, recorded 0")


def test_without_a_configured_secret_even_a_signed_callback_is_refused(app, client, acme, sent):
    before = _state(acme, sent.contact_id)
    body = _payload("email_unsubscribed", sent, "u-1")
    for secret in (None, ""):
        with configured(app, EMAIL_EVENTS_SECRET=secret):
            assert _post(client, body, sign_headers(SECRET, "evt_1", body)).status_code == 401
            assert _post(client, body, sign_headers("", "evt_1", body)).status_code == 401
    assert _state(acme, sent.contact_id) == before


def test_a_replayed_callback_is_recorded_once(client, acme, sent):
    before = _state(acme, sent.contact_id)
    body = _payload("email_bounced", sent, event_id="bounce-1")
    headers = sign_headers(SECRET, "evt_1", body)
    first = _post(client, body, headers)
    assert first.status_code == 200 and first.get_json()["status"] == "recorded"
    after_first = _state(acme, sent.contact_id)
    assert after_first[0] == before[0] + 1
    # The same request again, and re-sent by the provider under a new
    # delivery id: the same event, recorded once.
    assert _post(client, body, headers).get_json()["status"] == "duplicate"
    again = _post(client, body, sign_headers(SECRET, "evt_2", body))
    assert again.get_json()["status"] == "duplicate"
    assert _state(acme, sent.contact_id) == after_first


def test_a_replay_without_an_event_id_is_known_by_its_delivery_id(client, acme, sent):
    body = _payload("email_opened", sent)
    headers = sign_headers(SECRET, "evt_open_1", body)
    assert _post(client, body, headers).get_json()["status"] == "recorded"
    recorded = _state(acme, sent.contact_id)
    for _ in range(3):
        assert _post(client, body, headers).get_json()["status"] == "duplicate"
    assert _state(acme, sent.contact_id) == recorded


def test_a_replayed_unsubscribe_cannot_be_stretched_to_another_contact(client, acme, sent):
    other = queue_message(acme, "send_email", {"subject": "Hi", "body_text": "Hi"})
    body = _payload("email_unsubscribed", sent, "u-1")
    headers = sign_headers(SECRET, "evt_u", body)
    assert _post(client, body, headers).status_code == 200
    # The signed body names one message; nothing in the request can retarget it.
    retargeted = json.loads(body)
    retargeted["message_id"] = other.message_id
    assert _post(client, json.dumps(retargeted).encode(), headers).status_code == 401
    assert _state(acme, sent.contact_id)[2] is True
    assert _state(acme, other.contact_id)[2] is False
