"""E-mail to a server that offers PIPELINING (RFC 2920): MAIL, RCPT and
DATA in one write, their answers read together, refusals still classified
and the connection kept in step for the next message."""

from __future__ import annotations

import smtplib

import pytest

from app.automation.delivery.dispatcher import deliver_due
from app.models import Suppression
from app.tenancy import firm_context
from tests.delivery.conftest import queue_message, reload
from tests.factories import make_contact


@pytest.fixture
def writes(monkeypatch):
    """Every write the client makes to an SMTP server."""
    sent: list[bytes] = []
    original = smtplib.SMTP.send

    def send(self, payload):
        sent.append(payload if isinstance(payload, bytes) else payload.encode())
        return original(self, payload)

    monkeypatch.setattr(smtplib.SMTP, "send", send)
    return sent


def _mail(firm, address: str | None = None):
    contact = make_contact(firm, email=address) if address else None
    return queue_message(
        firm, "send_email", {"subject": "Hi", "body_text": "Hi there"}, contact=contact
    )


def test_a_message_takes_two_writes(acme, pipelining_smtp_server, writes):
    message = _mail(acme)
    assert deliver_due() == 1

    [received] = pipelining_smtp_server.messages
    assert received["Message-ID"] == message.message_id
    transaction = [w for w in writes if not w.upper().startswith((b"EHLO", b"QUIT"))]
    assert len(transaction) == 2
    assert transaction[0].split(b"\r\n")[:3] == [
        f"MAIL FROM:<{message.from_address}>".encode(),
        f"RCPT TO:<{message.to_address}>".encode(),
        b"DATA",
    ]
    assert transaction[1].endswith(b"\r\n.\r\n")
    assert reload(message).status == "sent"


def test_a_server_without_pipelining_gets_one_command_a_write(acme, smtp_server, writes):
    _mail(acme)
    assert deliver_due() == 1
    transaction = [w for w in writes if not w.upper().startswith((b"EHLO", b"QUIT"))]
    assert [w.split(b":")[0].strip() for w in transaction[:3]] == [
        b"mail FROM",
        b"rcpt TO",
        b"data",
    ]
    assert len(smtp_server.messages) == 1


def test_a_hard_bounce_suppresses_and_the_next_message_still_goes(acme, pipelining_smtp_server):
    pipelining_smtp_server.refuse["gone@example.com"] = "550 5.1.1 <gone@example.com>: User unknown"
    gone = _mail(acme, "gone@example.com")
    kept = _mail(acme, "kept@example.com")
    assert deliver_due() == 2

    failed = reload(gone)
    assert failed.status == "failed" and failed.attempts == 1
    assert failed.response["smtp_code"] == 550 and failed.response["rcpt"] is True
    with firm_context(acme.id):
        assert Suppression.query.filter_by(address="gone@example.com").one().reason == "hard_bounce"
    assert reload(kept).status == "sent"
    assert [m["To"] for m in pipelining_smtp_server.messages] == ["kept@example.com"]
    assert len(pipelining_smtp_server.sessions) == 1


def test_a_temporary_refusal_is_retried(acme, pipelining_smtp_server):
    pipelining_smtp_server.refusals = ["451 4.7.1 greylisted, try again later"]
    message = _mail(acme)
    assert deliver_due() == 1
    fresh = reload(message)
    assert fresh.status == "pending" and fresh.attempts == 1 and "451" in fresh.last_error
    assert not pipelining_smtp_server.messages


def test_a_refused_sender_is_not_a_bounce(acme, pipelining_smtp_server):
    pipelining_smtp_server.mail_refusal = "553 5.7.1 sender not allowed"
    message = _mail(acme)
    deliver_due()
    fresh = reload(message)
    assert fresh.status == "failed" and "553" in fresh.last_error
    assert fresh.response["rcpt"] is False
    with firm_context(acme.id):
        assert Suppression.query.count() == 0


def test_data_taken_after_a_refused_recipient_is_ended_and_the_connection_reused(
    acme, pipelining_smtp_server
):
    pipelining_smtp_server.refuse_keeping_data["odd@example.com"] = "550 5.1.1 no such user"
    odd = _mail(acme, "odd@example.com")
    kept = _mail(acme, "kept@example.com")
    assert deliver_due() == 2
    assert reload(odd).status == "failed"
    assert reload(kept).status == "sent"
    # The empty message the server took is not ours; ours went on the
    # same connection, whole.
    [received] = [m for m in pipelining_smtp_server.messages if m["Message-ID"]]
    assert received["Message-ID"] == kept.message_id
    assert len(pipelining_smtp_server.sessions) == 1
