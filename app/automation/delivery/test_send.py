""" "Send a test to me": an e-mail step's message, rendered for a chosen or
sample contact, to the signed-in user's own address.

It goes through the normal SMTP transport, right away, and is kept in the
outbox with status "test" (analytics count only sent and recorded rows)
and no execution or contact: it is never counted, and never tracked as the
contact (no open pixel, no rewritten links, no unsubscribe link bound to
them). The subject says "[Test]" and an ``X-Automation-Test`` header marks
it for filters.
"""

from __future__ import annotations

from dataclasses import dataclass
from email.utils import format_datetime, make_msgid
from typing import Any

from flask import current_app

from app.automation.delivery.errors import SendFailed
from app.automation.delivery.mime import build_message
from app.automation.delivery.smtp import SmtpSender, html_to_text
from app.automation.delivery.tracking import text_to_html
from app.automation.engine.context import render_context
from app.automation.templating.render import TemplateError, render_isolated
from app.clock import now
from app.extensions import db
from app.models import OutboxMessage, User, Workflow
from app.models.audit import record


@dataclass
class TestSend:
    sent: bool
    message: str
    outbox_id: int | None = None


class TestSendRefused(ValueError):
    """The test cannot be sent as it stands (a template error, no body)."""


def _render(values: dict, contact: Any, workflow: Workflow) -> tuple[str, str, str]:
    context = render_context(contact, workflow)
    # A web request's render: in a forked child with a memory and CPU
    # limit (templating/isolation.py).
    outputs = render_isolated(
        [
            (values.get("subject") or "", context, False),
            (values.get("body_html") or "", context, True),
            (values.get("body_text") or "", context, False),
        ]
    )
    for output in outputs:
        if isinstance(output, TemplateError):
            raise TestSendRefused(f"The message does not render: {output}")
    subject, body_html, body_text = outputs
    subject = " ".join(subject.split())[:990]
    if not (body_html.strip() or body_text.strip()):
        raise TestSendRefused("Write a body first: the message is empty.")
    return subject, body_html, body_text


def send_test_email(
    workflow: Workflow, node_id: str, values: dict, contact: Any, user: User
) -> TestSend:
    """Render ``values`` (the step's subject, bodies, from address) for
    ``contact`` and send them to ``user``; records a "test" outbox row."""
    subject, body_html, body_text = _render(values, contact, workflow)
    config = current_app.config
    from_address = (values.get("from_email") or "").strip() or config["MAIL_FROM"]
    message_id = make_msgid(domain=from_address.rpartition("@")[2].strip("> ") or "localhost")
    headers = [
        ("From", from_address),
        ("To", user.email),
        ("Subject", f"[Test] {subject}"),
        ("Date", format_datetime(now())),
        ("Message-ID", message_id),
        ("X-Automation-Test", "yes"),
    ]
    row = OutboxMessage(
        workflow_id=workflow.id,
        node_id=node_id,
        channel="email",
        status="test",
        to_address=user.email,
        from_address=from_address,
        subject=f"[Test] {subject}",
        body_html=body_html,
        body_text=body_text,
        message_id=message_id,
        max_attempts=1,
        response={"test_for": contact.get("email") if isinstance(contact, dict) else contact.email},
    )
    result = TestSend(False, "")
    if not config.get("SMTP_HOST"):
        result.message = "No SMTP server is configured: the test is kept in the outbox only."
    else:
        message = build_message(
            headers, body_text or html_to_text(body_html), body_html or text_to_html(body_text)
        )
        sender = SmtpSender.from_config(config)
        try:
            sender.send(message, from_address, user.email)
            row.attempts, row.sent_at = 1, now()
            result = TestSend(True, f"Test sent to {user.email}.")
        except SendFailed as exc:
            row.attempts, row.last_error = 1, str(exc)
            result.message = f"The test could not be sent: {exc}"
        finally:
            sender.close()
    db.session.add(row)
    record("email.test_sent", workflow, data={"node_id": node_id, "to": user.email})
    db.session.commit()
    result.outbox_id = row.id
    return result
