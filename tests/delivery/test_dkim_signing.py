"""The DKIM signer gives dkimpy the header block and the body as written
(dkim_signing.signer): its signature must be the one dkimpy makes over the
whole message, and verify, whatever the headers and body look like."""

from __future__ import annotations

import datetime

import dkim
import pytest
import time_machine

from app.automation.delivery import dkim_signing
from app.automation.delivery.mime import build_message

PEM = dkim_signing.generate_key()
MOMENT = datetime.datetime(2026, 3, 4, 5, 6, 7, tzinfo=datetime.UTC)


def _dns(name, timeout=5):
    if name.decode().rstrip(".") == dkim_signing.record_name("s1", "acme.example"):
        return dkim_signing.public_record(PEM).encode()
    return b""


def _message(subject: str, text: str, html: str) -> bytes:
    return build_message(
        [
            ("From", "Acme Team <news@acme.example>"),
            ("To", "ada@example.com"),
            ("Subject", subject),
            ("Date", "Wed, 04 Mar 2026 05:06:07 +0000"),
            ("Message-ID", "<k1@acme.example>"),
            ("List-Unsubscribe", "<https://x.test/t/u/abc>"),
            ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
        ],
        text,
        html,
    )


@pytest.mark.parametrize(
    "subject, text, html",
    [
        ("News", "Hi", "<p>Hi</p>"),
        # Encoded words folded over several header lines.
        ("Prénom " * 40, "Hi", "<p>Hi</p>"),
        # Lines that start with a dot, trailing blank lines, long lines.
        ("Dots", ".leading\n..two\n\n\n\n", "<p>" + "x" * 300 + "</p>\n\n\n"),
    ],
)
def test_signature_is_dkimpys_over_the_whole_message_and_verifies(subject, text, html):
    message = _message(subject, text, html)
    sign = dkim_signing.signer("s1", "acme.example", PEM)
    with time_machine.travel(MOMENT, tick=False):
        signed = sign(message)
        whole = dkim.sign(
            message,
            b"s1",
            b"acme.example",
            PEM.encode(),
            canonicalize=(b"relaxed", b"simple"),
            include_headers=list(dkim_signing.SIGNED_HEADERS),
        )
    assert signed == whole + message
    assert dkim.verify(signed, dnsfunc=_dns)
    # A changed body (here its HTML part's type) no longer verifies.
    assert not dkim.verify(signed.replace(b"text/html", b"text/htmx"), dnsfunc=_dns)
