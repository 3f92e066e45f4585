"""All signing: webhooks, and the tokens in links and cookies.

Standard Webhooks signatures (https://www.standardwebhooks.com):

``webhook-signature: v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">``.

Secrets: a firm's ``webhook_secret`` (and ``EMAIL_EVENTS_SECRET``) look like
``whsec_<base64>``. As the specification says, the key is the base64-decoded
part after the ``whsec_`` prefix; the URL-safe alphabet is accepted too
(older secrets were made with ``token_urlsafe``). A secret that is not
base64 at all is used as its UTF-8 bytes, so an operator may set
``EMAIL_EVENTS_SECRET`` to any string -- the sender must then sign with the
same bytes. Secrets never appear in logs, results or error messages.

Tokens the app hands out (tracking links, the visitor cookie, public form
pages, double opt-in confirmations, the public firm key) are signed under
``SECRET_KEY`` with a purpose each, so a token made for one purpose is never
accepted for another; see the second half of this module.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence

from flask import current_app
from itsdangerous import BadData, BadSignature, Signer, URLSafeTimedSerializer

from app.clock import now

PREFIX = "whsec_"
TOLERANCE_SECONDS = 300
COMPACT_SIGNATURE_BYTES = 24  # 192 bits of HMAC-SHA256: far beyond guessing


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


# Tokens in links and cookies, all signed under the app's SECRET_KEY with a
# purpose of their own, so a token made for one purpose (a form page) is
# never accepted for another (a double opt-in confirmation). The formats
# are the ones already sent out: links in old e-mails keep working.


class InvalidToken(Exception):
    """A token that is malformed, forged, of another purpose or too old."""


def _app_secret() -> str:
    return current_app.config["SECRET_KEY"]


_derived: dict[tuple[str, str], bytes] = {}


def _derived_key(purpose: str) -> bytes:
    secret = _app_secret()
    key = _derived.get((secret, purpose))
    if key is None:
        key = _derived[(secret, purpose)] = hmac.new(
            str(secret).encode(), purpose.encode(), hashlib.sha256
        ).digest()
    return key


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _compact_mac(purpose: str, body: str) -> str:
    # hmac.digest: OpenSSL's one-shot HMAC, without the hmac.HMAC object.
    digest = hmac.digest(_derived_key(purpose), body.encode(), "sha256")
    return _b64(digest[:COMPACT_SIGNATURE_BYTES])


# json.dumps with separators builds a new encoder per call; this one is
# built once and writes the same text.
_compact_json = json.JSONEncoder(separators=(",", ":")).encode


def compact_token(purpose: str, payload) -> str:
    """``<base64url JSON>.<base64url HMAC-SHA256, 24 bytes>`` under a key
    derived per purpose (the e-mail tracking tokens). Written by hand
    rather than with itsdangerous: every e-mail carries several tokens and
    itsdangerous re-derives its key and tries zlib on each, which was a
    third of the dispatcher's CPU per message in the delivery benchmark."""
    body = _b64(_compact_json(payload).encode())
    return f"{body}.{_compact_mac(purpose, body)}"


def read_compact_token(purpose: str, token: str):
    """The payload of a :func:`compact_token`; :class:`InvalidToken` if not genuine."""
    body, _, mac = token.partition(".")
    if not hmac.compare_digest(mac.encode(), _compact_mac(purpose, body).encode()):
        raise InvalidToken
    try:
        return json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    except (ValueError, UnicodeDecodeError):
        raise InvalidToken from None


def timed_token(purpose: str, payload) -> str:
    """A URL-safe token carrying ``payload`` and when it was made
    (itsdangerous ``URLSafeTimedSerializer``, ``purpose`` its salt)."""
    return URLSafeTimedSerializer(_app_secret(), salt=purpose).dumps(payload)


def read_timed_token(purpose: str, token: str, max_age: int | float):
    """The payload of a :func:`timed_token` at most ``max_age`` seconds old."""
    try:
        return URLSafeTimedSerializer(_app_secret(), salt=purpose).loads(token, max_age=max_age)
    except BadData as exc:
        raise InvalidToken(str(exc)) from exc


def _signer(purpose: str) -> Signer:
    return Signer(_app_secret(), salt=purpose, digest_method=hashlib.sha256)


def signed_value(purpose: str, value: str) -> str:
    """``value`` with its signature appended (itsdangerous ``Signer``; cookies)."""
    return _signer(purpose).sign(value.encode()).decode()


def read_signed_value(purpose: str, signed: str) -> str:
    """The value of a :func:`signed_value`; :class:`InvalidToken` if forged."""
    try:
        return _signer(purpose).unsign(signed.encode()).decode()
    except (BadSignature, UnicodeDecodeError) as exc:
        raise InvalidToken from exc


def message_key(*parts) -> str:
    """The key of one outgoing message (its ``Message-ID``, ``webhook-id``,
    ``Idempotency-Key``): 32 hex characters of an HMAC-SHA256 of ``parts``
    under a key derived from SECRET_KEY. The same on every retry of the
    same message, unguessable, and different on another installation with
    the same ids, so a receiver that drops repeats never drops a message of
    another install (docs/SENDING.md)."""
    raw = ":".join(str(part) for part in parts)
    return hmac.new(_derived_key("message-key"), raw.encode(), hashlib.sha256).hexdigest()[:32]


def short_mac(message: str, length: int = 20) -> str:
    """A hex HMAC-SHA256 of ``message`` under SECRET_KEY, cut to ``length``
    characters (derived identifiers such as the public firm key)."""
    key = _app_secret().encode()
    return hmac.new(key, message.encode(), hashlib.sha256).hexdigest()[:length]


def same_mac(given: str, expected: str) -> bool:
    """Constant-time comparison of two signatures."""
    return hmac.compare_digest(given.encode(), expected.encode())
