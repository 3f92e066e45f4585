"""Bounce classification over answers real servers give."""

from __future__ import annotations

import pytest

from app.automation.delivery.bounces import UnknownBounceType, classify_provider, classify_smtp

ANSWERS = [
    # Gmail
    (
        550,
        "5.1.1 The email account that you tried to reach does not exist. Please try "
        "double-checking the recipient's email address for typos or unnecessary spaces. "
        "Learn more at https://support.google.com/mail/?p=NoSuchUser",
        "hard",
        "5.1.1",
    ),
    (550, "5.2.1 The email account that you tried to reach is disabled.", "hard", "5.2.1"),
    (452, "4.2.2 The email account that you tried to reach is over quota.", "soft", "4.2.2"),
    (552, "5.2.2 The email account that you tried to reach is over quota.", "soft", "5.2.2"),
    (
        421,
        "4.7.0 [192.0.2.1] Our system has detected an unusual rate of unsolicited mail "
        "originating from your IP address.",
        "soft",
        "4.7.0",
    ),
    (
        550,
        "5.7.1 [192.0.2.1] Our system has detected that this message is likely unsolicited mail.",
        "block",
        "5.7.1",
    ),
    (
        550,
        "5.7.26 This mail is unauthenticated, which poses a security risk to the sender "
        "and Gmail users.",
        "block",
        "5.7.26",
    ),
    # Outlook.com / Office 365
    (550, "5.5.0 Requested action not taken: mailbox unavailable (S2017062302).", "hard", "5.5.0"),
    (
        550,
        "5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup",
        "hard",
        "5.1.10",
    ),
    (550, "5.4.1 Recipient address rejected: Access denied. AS(201806281)", "hard", "5.4.1"),
    (
        451,
        "4.7.500 Server busy. Please try again later from [192.0.2.1]. (AS843)",
        "soft",
        "4.7.500",
    ),
    (
        550,
        "5.7.1 Unfortunately, messages from [192.0.2.1] weren't sent. Please contact your "
        "Internet service provider since part of their network is on our block list (S3150).",
        "block",
        "5.7.1",
    ),
    # Yahoo / AOL
    (
        554,
        "delivery error: dd This user doesn't have a yahoo.com account (x@yahoo.com) [0] "
        "- mta1234.mail.gq1.yahoo.com",
        "hard",
        "",
    ),
    (
        421,
        "4.7.0 [TSS04] Messages from 192.0.2.1 temporarily deferred due to unexpected "
        "volume or user complaints",
        "soft",
        "4.7.0",
    ),
    (
        553,
        "5.7.1 [BL21] Connections will not be accepted from 192.0.2.1, because the ip is "
        "in Spamhaus's list",
        "block",
        "5.7.1",
    ),
    (552, "1 Requested mail action aborted, mailbox not found", "hard", ""),
    # iCloud, Postfix, Exim
    (550, "5.1.1 <x@icloud.com>: user does not exist", "hard", "5.1.1"),
    (
        550,
        "5.1.1 <x@example.org>: Recipient address rejected: User unknown in virtual mailbox table",
        "hard",
        "5.1.1",
    ),
    (554, "5.7.1 <x@example.org>: Relay access denied", "block", "5.7.1"),
    (
        450,
        "4.2.0 <x@example.org>: Recipient address rejected: Greylisted, see "
        "http://postgrey.schweikert.ch/help/example.org.html",
        "soft",
        "4.2.0",
    ),
    (550, "No Such User Here", "hard", ""),
]


@pytest.mark.parametrize("code, text, kind, status", ANSWERS)
def test_smtp_answers_are_classified(code, text, kind, status):
    bounce = classify_smtp(code, text)
    assert (bounce.kind, bounce.status) == (kind, status)
    assert bounce.suppresses == (kind == "hard")


def test_the_basic_code_is_read_from_the_answer_when_not_given():
    bounce = classify_smtp(None, "550 5.1.1 <x@example.org>: User unknown")
    assert (bounce.code, bounce.kind) == (550, "hard")


@pytest.mark.parametrize(
    "payload, kind",
    [
        ({"bounce_type": "hard"}, "hard"),
        ({"bounce_type": "Soft"}, "soft"),
        ({"bounceType": "Permanent"}, "hard"),  # Amazon SES
        ({"bounceType": "Transient"}, "soft"),
        ({"Type": "HardBounce"}, "hard"),  # Postmark
        ({"severity": "temporary"}, "soft"),  # Mailgun
        ({"diagnostic": "smtp; 550 5.1.1 user unknown"}, "hard"),
        ({}, "soft"),  # the older form: counted, not suppressed at once
    ],
)
def test_provider_payloads_are_classified(payload, kind):
    assert classify_provider(payload).kind == kind


def test_an_unknown_provider_kind_is_an_error():
    with pytest.raises(UnknownBounceType, match="bounce_type"):
        classify_provider({"bounce_type": "medium"})
