"""The one failure type the transports raise to the dispatcher."""

from __future__ import annotations

import base64
from collections.abc import Iterable


class SendFailed(Exception):
    """A send that did not succeed. ``permanent`` failures (a refused
    address, an unsafe URL) are not retried. The message is recorded on the
    outbox row: it never carries secrets, credentials or request headers."""

    def __init__(self, message: str, response: dict | None = None, permanent: bool = False):
        super().__init__(message)
        self.response = response or {}
        self.permanent = permanent


REDACTED = "[redacted]"


def _forms(secret: str, username: str | None) -> list[str]:
    """A secret as it may come back: plain, base64 (SMTP AUTH LOGIN), and
    base64 of ``\\0user\\0secret`` (SMTP AUTH PLAIN)."""
    forms = [secret, base64.b64encode(secret.encode()).decode()]
    if username:
        forms.append(base64.b64encode(f"\0{username}\0{secret}".encode()).decode())
    return forms


def redact(value, secrets: Iterable[str | None], username: str | None = None):
    """``value`` (a string, or dicts/lists of them) with every secret
    replaced: a remote server may quote back what it was sent (an SMTP
    server refusing a login with the password in its answer), and what we
    record is shown on pages, in the API and in logs."""
    forms = [f for s in secrets if s and len(s) >= 4 for f in _forms(s, username)]
    if not forms:
        return value

    def clean(item):
        if isinstance(item, str):
            for form in forms:
                item = item.replace(form, REDACTED)
            return item
        if isinstance(item, dict):
            return {key: clean(val) for key, val in item.items()}
        if isinstance(item, list):
            return [clean(val) for val in item]
        return item

    return clean(value)
