"""Standard Webhooks signatures (https://www.standardwebhooks.com).

``webhook-signature: v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">``.

Secrets: a firm's ``webhook_secret`` (and ``EMAIL_EVENTS_SECRET``) look like
``whsec_<base64>``. As the specification says, the key is the base64-decoded
part after the ``whsec_`` prefix; the URL-safe alphabet is accepted too
(older secrets were made with ``token_urlsafe``). A secret that is not
base64 at all is used as its UTF-8 bytes, so an operator may set
``EMAIL_EVENTS_SECRET`` to any string -- the sender must then sign with the
same bytes. Secrets never appear in logs, results or error messages.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping, Sequence

from app.clock import now

PREFIX = "whsec_"
TOLERANCE_SECONDS = 300


class InvalidSignature(Exception):
    """Missing, malformed, stale or wrong signature headers."""


def secret_key(secret: str) -> bytes:
    encoded = secret[len(PREFIX) :] if secret.startswith(PREFIX) else secret
    candidate = encoded.replace("-", "+").replace("_", "/")
    candidate += "=" * (-len(candidate) % 4)
    try:
        key = base64.b64decode(candidate, validate=True)
    except (binascii.Error, ValueError):
        key = b""
    return key or encoded.encode()


def signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def sign_headers(
    secret: str | Sequence[str], msg_id: str, body: bytes, timestamp: int | None = None
) -> dict:
    """The Standard Webhooks headers. With several secrets (a rotation in
    progress) the signature header carries one ``v1,`` entry per secret,
    space-separated, and a receiver holding any of them verifies."""
    timestamp = int(now().timestamp()) if timestamp is None else timestamp
    keys = [secret] if isinstance(secret, str) else list(secret)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(signature(key, msg_id, timestamp, body) for key in keys),
    }


def verify(
    secret: str, headers: Mapping[str, str], body: bytes, tolerance: int = TOLERANCE_SECONDS
) -> str:
    """Check the headers of a signed request; returns its ``webhook-id``.
    Raises :class:`InvalidSignature` if anything is off."""
    msg_id = headers.get("webhook-id") or ""
    stamp = headers.get("webhook-timestamp") or ""
    given = headers.get("webhook-signature") or ""
    if not (msg_id and stamp and given) or len(msg_id) > 200:
        raise InvalidSignature("missing signature headers")
    try:
        timestamp = int(stamp)
        # A 400-digit timestamp does not fit a float: refuse, do not crash.
        stale = abs(now().timestamp() - timestamp) > tolerance
    except (ValueError, OverflowError):
        raise InvalidSignature("bad timestamp") from None
    if stale:
        raise InvalidSignature("stale timestamp")
    expected = signature(secret, msg_id, timestamp, body)
    # Several space-separated signatures may be sent (key rotation).
    for candidate in given.split():
        if hmac.compare_digest(candidate.encode(), expected.encode()):
            return msg_id
    raise InvalidSignature("signature mismatch")
