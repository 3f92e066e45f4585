"""Provider callbacks teach the suppression list: hard bounces and
complaints at once, soft bounces after SOFT_BOUNCE_LIMIT in a row. Signed
with the official Standard Webhooks library, as a provider would."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import select
from standardwebhooks import Webhook

from app.automation.delivery.dispatcher import deliver_due
from app.automation.lifecycle.publishing import activate_workflow
from app.clock import now
from app.extensions import db
from app.models import EventLog, OutboxMessage, Suppression, TrackingEvent
from app.tenancy import firm_context
from tests.delivery.conftest import configured, queue_message
from tests.factories import make_contact, make_workflow

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@pytest.fixture
def signed_post(app, client):
    def post(payload: dict, msg_id: str):
        body = json.dumps(payload)
        stamp = now()
        headers = {
            "webhook-id": msg_id,
            "webhook-timestamp": str(int(stamp.timestamp())),
            "webhook-signature": Webhook(SECRET).sign(msg_id, stamp, body),
        }
        return client.post(
            "/hooks/email-events", data=body, headers=headers, content_type="application/json"
        )

    with configured(app, EMAIL_EVENTS_SECRET=SECRET):
        yield post


def _sent(firm, contact):
    message = queue_message(firm, "send_email", {"subject": "Hi", "body_text": "Hi"}, contact)
    with firm_context(firm.id):
        row = db.session.get(OutboxMessage, message.id)
        row.status, row.sent_at = "sent", now()
        db.session.commit()
    return message


def _suppressions(firm):
    with firm_context(firm.id):
        return list(db.session.scalars(select(Suppression)))


def test_a_hard_bounce_suppresses_with_the_providers_answer(acme, signed_post):
    message = _sent(acme, make_contact(acme, email="Gone@Yahoo.test"))
    payload = {
        "type": "email_bounced",
        "message_id": message.message_id,
        "bounce_type": "hard",
        "diagnostic": "554 delivery error: dd This user doesn't have a yahoo.com account",
    }
    response = signed_post(payload, "evt_hard")
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["bounce_type"] == "hard"
    [entry] = _suppressions(acme)
    assert (entry.address, entry.reason, entry.source) == (
        "gone@yahoo.test",
        "hard_bounce",
        "provider",
    )
    assert entry.outbox_id == message.id and entry.detail["code"] == 554
    with firm_context(acme.id):
        [event] = db.session.scalars(select(EventLog).where(EventLog.event_type == "email_bounced"))
    assert event.data["bounce_type"] == "hard"


def test_a_complaint_suppresses_and_fires_its_trigger(acme, alice, signed_post):
    from tests.triggers.conftest import WELCOME_EDGES, WELCOME_NODES

    workflow = make_workflow(
        acme,
        nodes=WELCOME_NODES,
        edges=WELCOME_EDGES,
        triggers=[{"trigger_type": "email_complained", "configuration": {}}],
    )
    with firm_context(acme.id):
        activate_workflow(workflow, alice)
        db.session.commit()
    message = _sent(acme, make_contact(acme))
    response = signed_post({"type": "email_complained", "message_id": message.message_id}, "c1")
    assert response.status_code == 200
    assert [s.reason for s in _suppressions(acme)] == ["complaint"]
    with firm_context(acme.id):
        kinds = db.session.scalars(select(TrackingEvent.kind)).all()
        started = db.session.scalars(
            select(EventLog.executions_started).where(EventLog.event_type == "email_complained")
        ).all()
    assert kinds == ["complaint"] and started == [1]
    # The provider repeats its callback: nothing new.
    assert (
        signed_post(
            {"type": "email_complained", "message_id": message.message_id}, "c1"
        ).status_code
        == 200
    )
    assert len(_suppressions(acme)) == 1


def test_soft_bounces_suppress_only_in_a_row(app, acme, signed_post, smtp_server):
    contact = make_contact(acme, email="busy@example.test")

    def soft(message, n):
        payload = {"type": "email_bounced", "message_id": message.message_id, "bounce_type": "soft"}
        assert signed_post(payload, f"s{n}").status_code == 200

    first, second = _sent(acme, contact), _sent(acme, contact)
    soft(first, 1)
    soft(second, 2)
    assert _suppressions(acme) == []
    delivered = _sent(acme, contact)  # handed over, not bounced: the row is broken
    soft(_sent(acme, contact), 3)
    assert _suppressions(acme) == []
    soft(_sent(acme, contact), 4)
    soft(delivered, 5)  # a late bounce of the earlier message completes three in a row
    [entry] = _suppressions(acme)
    assert entry.reason == "soft_bounce"


@pytest.mark.parametrize(
    "payload, field",
    [({"bounce_type": "medium"}, "bounce_type"), ({"type": "email_exploded"}, "type")],
)
def test_an_unknown_bounce_type_or_event_is_refused_and_changes_nothing(
    acme, signed_post, payload, field
):
    message = _sent(acme, make_contact(acme))
    body = {"type": "email_bounced", "message_id": message.message_id, **payload}
    response = signed_post(body, "bad")
    assert response.status_code == 422
    assert field in response.get_json()["error"]["fields"]
    with firm_context(acme.id):
        assert db.session.scalars(select(TrackingEvent)).all() == []
    assert _suppressions(acme) == []


def test_a_forged_callback_is_refused(acme, client, app):
    message = _sent(acme, make_contact(acme))
    body = json.dumps({"type": "email_complained", "message_id": message.message_id})
    stamp = now() - timedelta(minutes=10)
    headers = {
        "webhook-id": "old",
        "webhook-timestamp": str(int(stamp.timestamp())),
        "webhook-signature": Webhook(SECRET).sign("old", stamp, body),
    }
    with configured(app, EMAIL_EVENTS_SECRET=SECRET):
        response = client.post(
            "/hooks/email-events", data=body, headers=headers, content_type="application/json"
        )
    assert response.status_code == 401
    assert _suppressions(acme) == []
    assert deliver_due() == 0
