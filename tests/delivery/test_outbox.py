"""Rendering message steps into outbox rows."""

from __future__ import annotations

import pytest

from app.automation.delivery.outbox import build_outbox_row, requeue
from app.automation.templating.render import TemplateError
from app.extensions import db
from app.models import OutboxMessage
from app.tenancy import firm_context
from tests.delivery.conftest import configured, make_execution, queue_message, reload
from tests.factories import make_contact, make_workflow

EMAIL = {
    "subject": "Hi {{ contact.first_name }}",
    "body_html": "<p>Hello {{ contact.first_name }}</p>",
    "body_text": "Hello {{ contact.first_name }}",
}


def _row(firm, node_type, configuration, contact=None, visit=1, **execution_fields):
    contact = contact or make_contact(firm, first_name="<Ann>", phone="+15550100")
    workflow = make_workflow(
        firm, nodes=[{"node_id": "step", "node_type": node_type, "configuration": configuration}]
    )
    execution = make_execution(firm, workflow, contact, **execution_fields)
    with firm_context(firm.id):
        return build_outbox_row(
            firm_id=firm.id,
            execution=execution,
            node=workflow.nodes[0],
            visit=visit,
            context=None,
            contact=contact,
        ), execution


def test_an_email_is_rendered_and_pending_when_smtp_is_configured(app, acme):
    with configured(app, SMTP_HOST="127.0.0.1", MAIL_FROM="news@acme.test"):
        row, execution = _row(acme, "send_email", EMAIL)
    assert row["status"] == "pending"
    assert row["channel"] == "email"
    assert row["subject"] == "Hi <Ann>"
    assert row["body_html"] == "<p>Hello &lt;Ann&gt;</p>"
    assert row["body_text"] == "Hello <Ann>"
    assert row["from_address"] == "news@acme.test"
    assert row["message_id"].startswith("<") and row["message_id"].endswith("@acme.test>")
    assert row["execution_id"] == execution.id
    assert row["max_attempts"] == 3 and row["retry_backoff_seconds"] == 30


def test_an_email_is_recorded_when_no_smtp_is_configured(app, acme):
    with configured(app, SMTP_HOST=None):
        row, _ = _row(acme, "send_email", EMAIL)
    assert row["status"] == "recorded"
    assert row["next_attempt_at"] is None


def test_an_unsubscribed_contact_is_skipped_with_a_reason(app, acme):
    contact = make_contact(acme, unsubscribed=True)
    with configured(app, SMTP_HOST="127.0.0.1"):
        row, _ = _row(acme, "send_email", EMAIL, contact=contact)
    assert row["status"] == "skipped"
    assert row["response"] == {"reason": "unsubscribed from all marketing", "gate": "consent"}
    assert row["body_text"] == ""  # a skipped message is not rendered


def test_a_test_run_message_never_leaves(app, acme):
    with configured(app, SMTP_HOST="127.0.0.1"):
        row, _ = _row(acme, "send_email", EMAIL, test_mode=True)
    assert row["status"] == "test"


def test_the_message_id_is_stable_per_execution_node_and_visit(app, acme):
    contact = make_contact(acme)
    workflow = make_workflow(
        acme, nodes=[{"node_id": "step", "node_type": "send_email", "configuration": EMAIL}]
    )
    execution = make_execution(acme, workflow, contact)
    with firm_context(acme.id):
        node = workflow.nodes[0]

        def build(visit):
            return build_outbox_row(
                firm_id=acme.id,
                execution=execution,
                node=node,
                visit=visit,
                context=None,
                contact=contact,
            )["message_id"]

        assert build(1) == build(1)
        assert build(1) != build(2)


def test_an_sms_goes_to_the_contacts_phone(app, acme):
    with configured(app, SMS_GATEWAY_URL="http://127.0.0.1:9/sms"):
        row, _ = _row(acme, "send_sms", {"body": "Hi {{ contact.first_name }}"})
    assert row["status"] == "pending"
    assert row["to_address"] == "+15550100"
    assert row["payload"] == {"to": "+15550100", "body": "Hi <Ann>"}


def test_an_sms_to_a_contact_without_phone_is_skipped(app, acme):
    contact = make_contact(acme, phone="")
    with configured(app, SMS_GATEWAY_URL="http://127.0.0.1:9/sms"):
        row, _ = _row(acme, "send_sms", {"body": "Hi"}, contact=contact)
    assert row["status"] == "skipped"
    assert "phone" in row["response"]["reason"]


def test_an_sms_is_recorded_without_a_gateway(app, acme):
    with configured(app, SMS_GATEWAY_URL=None):
        row, _ = _row(acme, "send_sms", {"body": "Hi"})
    assert row["status"] == "recorded"


def test_webhook_payload_strings_are_templates(acme):
    row, _ = _row(
        acme,
        "webhook",
        {
            "url": "https://example.com/hook",
            "headers": {"X-Contact": "{{ contact.email }}"},
            "payload": {"name": "{{ contact.first_name }}", "n": 3, "tags": ["{{ 1 + 1 }}"]},
            "timeout_seconds": 5,
            "max_attempts": 5,
        },
    )
    assert row["status"] == "pending"
    assert row["message_id"].startswith("msg_")
    assert row["payload"]["body"] == {"name": "<Ann>", "n": 3, "tags": ["2"]}
    assert row["payload"]["headers"]["X-Contact"].endswith("@example.com")
    assert row["payload"]["timeout_seconds"] == 5
    assert row["max_attempts"] == 5


def test_the_default_webhook_payload_summarises_contact_workflow_and_execution(acme):
    row, execution = _row(acme, "webhook", {"url": "https://example.com/hook"})
    body = row["payload"]["body"]
    assert body["contact"]["first_name"] == "<Ann>"
    assert body["execution"]["id"] == execution.id
    assert set(body) == {"contact", "workflow", "execution"}


def test_a_broken_template_raises_a_clear_error(acme):
    with pytest.raises(TemplateError, match="not allowed"):
        _row(acme, "send_sms", {"body": "{{ ''.__class__.__mro__ }}"})


def test_requeue_makes_a_failed_message_due_again_with_the_same_id(app, acme):
    message = queue_message(acme, "webhook", {"url": "https://example.com/hook"})
    with firm_context(acme.id):
        row = db.session.get(OutboxMessage, message.id)
        row.status, row.attempts, row.last_error = "failed", 3, "receiver answered HTTP 500"
        db.session.commit()
        assert requeue(row.execution_id, "step", 1) is True
        db.session.commit()
        assert requeue(row.execution_id, "step", 1) is False  # only failed rows
    fresh = reload(message)
    assert (fresh.status, fresh.attempts, fresh.last_error) == ("pending", 0, None)
    assert fresh.message_id == message.message_id
