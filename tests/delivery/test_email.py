"""E-mail over a real SMTP server (aiosmtpd, in-process)."""

from __future__ import annotations

import re
from datetime import timedelta
from urllib.parse import urlsplit

import time_machine

from app.automation.delivery.dispatcher import deliver_due
from app.clock import now
from app.extensions import db
from app.models import WorkflowExecution
from tests.delivery.conftest import queue_message, reload

HTML = (
    "<html><body><p>Hi {{ contact.first_name }}, see "
    '<a href="https://example.com/offer?a=1&amp;b=2">the offer</a> or '
    '<a href="mailto:help@acme.test">write</a>.</p></body></html>'
)


def _html_part(message) -> str:
    return message.get_body(preferencelist=("html",)).get_content()


def _text_part(message) -> str:
    return message.get_body(preferencelist=("plain",)).get_content().replace("\r\n", "\n")


def test_an_email_is_sent_with_pixel_tracked_links_and_unsubscribe(acme, smtp_server):
    message = queue_message(acme, "send_email", {"subject": "Offer", "body_html": HTML})
    assert deliver_due() == 1

    [received] = smtp_server.messages
    assert received["Message-ID"] == message.message_id
    assert received["Subject"] == "Offer"
    body = _html_part(received)
    assert "Hi Ann" in body
    # The http link is rewritten to the click endpoint; mailto is left alone.
    assert "https://example.com/offer" not in body
    assert re.search(r'href="http://localhost/t/c/[^"]+"', body)
    assert 'href="mailto:help@acme.test"' in body
    assert re.search(r'<img src="http://localhost/t/o/[^"]+\.gif"', body)
    assert re.search(r'href="http://localhost/t/u/[^"]+">Unsubscribe', body)
    # The pixel goes inside the body element.
    assert body.rstrip().endswith("</body></html>")
    unsubscribe = received["List-Unsubscribe"]
    assert re.fullmatch(r"<http://localhost/t/u/[^>]+>", unsubscribe)
    assert received["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert urlsplit(unsubscribe[1:-1]).path in body
    assert "Unsubscribe: http://localhost/t/u/" in _text_part(received)
    # The text part's links are tracked too, to the same link.
    text = _text_part(received)
    click = re.search(r"the offer \((http://localhost/t/c/[^)\s]+)\)", text)
    assert click and "example.com/offer" not in text
    assert received["List-Id"] == '"Marketing" <marketing.0.localhost>'  # MAIL_FROM's domain

    fresh = reload(message)
    assert fresh.status == "sent" and fresh.attempts == 1 and fresh.sent_at is not None


def test_a_text_only_email_gets_an_html_part_with_the_pixel(acme, smtp_server):
    queue_message(
        acme,
        "send_email",
        {"subject": "Hi", "body_text": "Hello {{ contact.first_name }}\nhttps://example.com/x"},
    )
    deliver_due()
    [received] = smtp_server.messages
    assert _text_part(received).startswith("Hello Ann\nhttp://localhost/t/c/")
    body = _html_part(received)
    assert "/t/o/" in body and "/t/c/" in body and "/t/u/" in body


def test_the_message_id_is_the_same_on_a_retry(acme, smtp_server):
    smtp_server.refusals = ["451 4.3.0 try again later"]
    message = queue_message(
        acme, "send_email", {"subject": "Hi", "body_text": "Hi", "retry_backoff_seconds": 10}
    )
    assert deliver_due() == 1
    first = reload(message)
    assert first.status == "pending" and first.attempts == 1
    assert "451" in first.last_error
    assert not smtp_server.messages

    with time_machine.travel(now() + timedelta(seconds=11), tick=False):
        assert deliver_due() == 1
    [received] = smtp_server.messages
    assert received["Message-ID"] == message.message_id
    assert reload(message).status == "sent"


def test_a_permanent_refusal_fails_at_once_and_wakes_the_execution(acme, smtp_server):
    smtp_server.refusals = ["550 5.1.1 no such user"]
    message = queue_message(acme, "send_email", {"subject": "Hi", "body_text": "Hi"})
    deliver_due()
    fresh = reload(message)
    assert fresh.status == "failed" and fresh.attempts == 1
    assert "550" in fresh.last_error
    db.session.expire_all()
    execution = db.session.get(
        WorkflowExecution, message.execution_id, execution_options={"all_firms": True}
    )
    assert execution.status == "running"  # woken: the engine reads the failed row


def test_one_connection_carries_many_messages(acme, smtp_server):
    for _ in range(5):
        queue_message(acme, "send_email", {"subject": "Hi", "body_text": "Hi"})
    assert deliver_due() == 5
    assert len(smtp_server.messages) == 5
    assert len(smtp_server.sessions) == 1


def test_a_sent_message_is_not_sent_again(acme, smtp_server):
    queue_message(acme, "send_email", {"subject": "Hi", "body_text": "Hi"})
    assert deliver_due() == 1
    assert deliver_due() == 0
    assert len(smtp_server.messages) == 1


def test_an_unreachable_server_is_retried_with_backoff(app, acme, smtp_server):
    message = queue_message(
        acme, "send_email", {"subject": "Hi", "body_text": "Hi", "retry_backoff_seconds": 60}
    )
    app.config["SMTP_PORT"] = 9  # nothing listens there
    started = now()
    deliver_due()
    fresh = reload(message)
    assert fresh.status == "pending" and fresh.attempts == 1
    assert "SMTP connection failed" in fresh.last_error
    assert timedelta(seconds=59) <= fresh.next_attempt_at - started <= timedelta(seconds=62)
