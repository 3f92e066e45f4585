"""Signed references for public, unauthenticated traffic.

- The visitor cookie ``atv`` ties a browser to a contact. It is set when
  the browser submits a form (here) or clicks a tracked e-mail link
  (the click redirect ``/t/c/<token>`` calls :func:`set_visitor_cookie`), and read
  by the site-tracking beacon ``POST /t/v``. Its value is HMAC-signed
  (:func:`app.automation.delivery.signing.signed_value`), so a visitor
  cannot pose as another contact by editing it.
- The public firm key (``data-firm`` on the tracking snippet) names a firm
  without exposing a guessable id: ``<id>-<hmac>``. It is derived, not
  stored, so no table holds it and it never changes for a given secret.
"""

from __future__ import annotations

from flask import current_app, request

from app.automation.delivery import signing

COOKIE = "atv"
MAX_AGE = 365 * 24 * 3600


COOKIE_PURPOSE = "visitor-cookie"


def visitor_cookie_value(firm_id: int, contact_id: int) -> str:
    return signing.signed_value(COOKIE_PURPOSE, f"{int(firm_id)}.{int(contact_id)}")


def read_visitor_cookie(value: str | None) -> tuple[int, int] | None:
    """(firm id, contact id) of a genuine cookie; None when absent or forged."""
    if not value or len(value) > 200:
        return None
    try:
        raw = signing.read_signed_value(COOKIE_PURPOSE, value)
        firm_id, contact_id = raw.split(".", 1)
        return int(firm_id), int(contact_id)
    except (signing.InvalidToken, ValueError):
        return None


def set_visitor_cookie(response, firm_id: int, contact_id: int) -> None:
    """Set ``atv`` on a response. Over HTTPS it is SameSite=None; Secure so the
    beacon from the firm's own site (another origin) still carries it."""
    secure = request.is_secure or current_app.config.get("BASE_URL", "").startswith("https://")
    response.set_cookie(
        COOKIE,
        visitor_cookie_value(firm_id, contact_id),
        max_age=MAX_AGE,
        httponly=True,
        secure=secure,
        samesite="None" if secure else "Lax",
        path="/",
    )


def _firm_mac(firm_id: int) -> str:
    return signing.short_mac(f"firm-public:{int(firm_id)}", 20)


def public_firm_key(firm_id: int) -> str:
    """The key a firm puts in its tracking snippet's ``data-firm``."""
    return f"{int(firm_id)}-{_firm_mac(firm_id)}"


def firm_id_from_public_key(key: str | None) -> int | None:
    if not key or len(key) > 64 or "-" not in key:
        return None
    firm_part, mac = key.split("-", 1)
    if not firm_part.isdigit():
        return None
    firm_id = int(firm_part)
    return firm_id if signing.same_mac(mac, _firm_mac(firm_id)) else None
