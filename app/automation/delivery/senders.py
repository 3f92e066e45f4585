"""Who a firm may send as: ``from_email`` addresses and sending domains.

A sender is an address with an optional display name, kept as written
(``"Acme Team <news@acme.example>"``). Its domain must be one of the firm's
sending domains (or a subdomain of one), or ``MAIL_FROM``'s domain: a firm
never sends as another firm's domain. Sending domains are unique across
firms for the same reason.
"""

from __future__ import annotations

import re
from email.utils import formataddr, parseaddr

from flask import current_app
from sqlalchemy import select

from app.extensions import db
from app.models import SendingDomain

SENDER_FORMAT = 'an e-mail address, optionally with a display name: "Team <news@example.com>"'
_DOMAIN = re.compile(
    r"^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{1,62}$"
)


def parse_sender(value: str) -> str:
    """The sender as it will be written in From:, or ValueError."""
    from email_validator import EmailNotValidError, validate_email

    text = " ".join(str(value or "").split())
    if not text or "\r" in str(value) or "\n" in str(value):
        raise ValueError(f"must be {SENDER_FORMAT}")
    name, address = parseaddr(text)
    if not address or ("<" in text and not text.endswith(">")):
        raise ValueError(f"must be {SENDER_FORMAT}")
    try:
        validate_email(address, check_deliverability=False, test_environment=True)
    except EmailNotValidError:
        raise ValueError(f"must be {SENDER_FORMAT}") from None
    return formataddr((name, address)) if name else address


def address_of(sender: str) -> str:
    return parseaddr(sender)[1] or sender


def domain_of(sender: str) -> str:
    return address_of(sender).rpartition("@")[2].lower()


def valid_domain(value: str) -> str:
    domain = (value or "").strip().lower().rstrip(".")
    if not _DOMAIN.match(domain):
        raise ValueError("must be a domain name such as mail.example.com")
    return domain


def allowed_domains() -> list[str]:
    """The current firm's sending domains, then MAIL_FROM's."""
    own = list(db.session.scalars(select(SendingDomain.domain).order_by(SendingDomain.domain)))
    return [*own, domain_of(current_app.config["MAIL_FROM"])]


def on_allowed_domain(domain: str, allowed: list[str]) -> bool:
    return any(domain == d or domain.endswith(f".{d}") for d in allowed)


def sender_problem(value: str | None) -> str | None:
    """Why the current firm may not send as ``value`` (None: it may)."""
    if value in (None, ""):
        return None
    try:
        sender = parse_sender(value)
    except ValueError as exc:
        return str(exc)
    allowed = allowed_domains()
    if on_allowed_domain(domain_of(sender), allowed):
        return None
    return (
        f"{domain_of(sender)} is not one of your sending domains "
        f"({', '.join(allowed)}); add it under Sending domains first"
    )
