"""Public e-mail tracking endpoints (no login, no CSRF token, rate-limited).

- ``GET /t/o/<token>.gif``: the open pixel;
- ``GET /t/c/<token>``: a tracked link -> 302 to the link that was sent,
  and the ``atv`` visitor cookie that ties this browser to the contact;
- ``GET /t/u/<token>``: the preference page (topics, all marketing);
  ``POST`` saves its form, or (an RFC 8058 one-click POST from the mail
  client) opts out of the message's topic;
- ``POST /hooks/email-events``: provider callbacks signed like our outgoing
  webhooks (Standard Webhooks, key ``EMAIL_EVENTS_SECRET``).

Rate limits follow the token, never the address: opens, clicks and
unsubscribes count per message (``TRACKING_RATE_LIMIT``; a pixel counts
once per message anyway), because the image proxies of Gmail and Apple
Mail fetch every open of a large send from a handful of addresses and a
mail provider's one-click unsubscribes come from a few servers. Only
tokens that fail their signature (cheap to refuse: no database) are
counted per address (``TRACKING_BAD_TOKEN_LIMIT``).

The tokens carry their own authority (HMAC-signed), so CSRF protection adds
nothing here, and a one-click POST from a mail provider could not carry a
CSRF token anyway. Bad, tampered or foreign tokens get a plain 404; nothing
from the request is echoed back.
"""

from __future__ import annotations

import json

from flask import (
    Blueprint,
    abort,
    current_app,
    g,
    jsonify,
    redirect,
    render_template,
    request,
)
from flask_limiter.util import get_remote_address

from app.automation.delivery import preferences, tracking_events, tracking_hits
from app.automation.delivery.bounces import UnknownBounceType
from app.automation.delivery.engagement import DECOY_PATH
from app.automation.delivery.signing import InvalidSignature, verify
from app.automation.delivery.tracking import BadToken, read_token
from app.automation.triggers.visitor import set_visitor_cookie
from app.extensions import csrf, limiter

bp = Blueprint("public_tracking", __name__)
csrf.exempt(bp)

# The smallest transparent GIF.
PIXEL = (
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00"
    b",\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
)
NO_STORE = {"Cache-Control": "no-store, private", "X-Robots-Tag": "noindex"}


def _user_agent() -> str:
    return request.user_agent.string or ""


KIND_OF_ENDPOINT = {
    "public_tracking.open_pixel": "open",
    "public_tracking.click": "click",
    "public_tracking.unsubscribe_page": "unsubscribe",
    "public_tracking.unsubscribe": "unsubscribe",
}


def _outbox_id() -> int | None:
    """The message the request's token names, or None for a bad token
    (checked once per request: both limits below ask)."""
    if "_tracked_outbox" not in g:
        kind = KIND_OF_ENDPOINT.get(request.endpoint or "")
        try:
            token = read_token(kind, (request.view_args or {}).get("token", ""))
            g._tracked_outbox = token.outbox_id
        except BadToken:
            g._tracked_outbox = None
    return g._tracked_outbox


def _message_key() -> str:
    return f"message:{_outbox_id()}"


def _address_key() -> str:
    return "bad-token:" + (get_remote_address() or "unknown")


def _per_message() -> str:
    return current_app.config.get("TRACKING_RATE_LIMIT") or "30 per minute"


def _bad_tokens() -> str:
    return current_app.config.get("TRACKING_BAD_TOKEN_LIMIT") or "300 per minute"


def _tracking_limit() -> str:
    return _per_message() if _good_token() else _bad_tokens()


def _tracking_key() -> str:
    return _message_key() if _good_token() else _address_key()


def limited_by_token(view):
    """Per message for good tokens, per address for bad ones: one limit,
    whose value and key follow the token (one check a request)."""
    return limiter.limit(_tracking_limit, key_func=_tracking_key)(view)


def _good_token() -> bool:
    return _outbox_id() is not None


@bp.get("/t/o/<token>.gif")
@limited_by_token
def open_pixel(token: str):
    if tracking_hits.record("open", token, _user_agent()) is None:
        abort(404)
    return current_app.response_class(PIXEL, mimetype="image/gif", headers=NO_STORE)


@bp.get("/t/c/<token>")
@limited_by_token
def click(token: str):
    tracked = tracking_hits.record("click", token, _user_agent())
    if tracked is None:
        abort(404)
    response = redirect(tracked.url, code=302)
    response.headers.update(NO_STORE)
    if tracked.contact_id is not None:
        set_visitor_cookie(response, tracked.firm_id, tracked.contact_id)
    return response


@bp.get(DECOY_PATH)
def decoy():
    """Where the hidden link of every e-mail leads (only machines follow it)."""
    return "", 204, NO_STORE


@bp.get("/t/u/<token>")
@limited_by_token
def unsubscribe_page(token: str):
    """The preference page; following the link (or a scanner doing so)
    changes nothing."""
    details = preferences.page(token)
    if details is None:
        abort(404)
    return render_template("public/preferences.html", details=details), 200, NO_STORE


@bp.post("/t/u/<token>")
@limited_by_token
def unsubscribe(token: str):
    """The page's form (``preferences`` set), or RFC 8058 one-click (any
    other POST): out of the message's topic only."""
    if request.form.get("preferences"):
        wanted = {int(v) for v in request.form.getlist("topic") if v.isdigit()}
        done = preferences.save(
            token, wanted, bool(request.form.get("all_marketing")), _user_agent()
        )
        template = "public/preferences_saved.html"
    else:
        done = preferences.one_click(token, _user_agent())
        template = "public/unsubscribe_done.html"
    details = preferences.page(token) if done else None
    if details is None:
        abort(404)
    return render_template(template, details=details), 200, NO_STORE


@bp.post("/hooks/email-events")
@limiter.limit("1200 per minute")
def email_events():
    secret = current_app.config.get("EMAIL_EVENTS_SECRET")
    if not secret:
        return _error(401, "unauthorized", "provider callbacks are not configured")
    body = request.get_data(cache=False)
    try:
        msg_id = verify(secret, request.headers, body)
    except InvalidSignature:
        return _error(401, "unauthorized", "missing, stale or invalid signature")
    try:
        payload = json.loads(body or b"null")
    except (ValueError, UnicodeDecodeError, RecursionError):
        payload = None
    if not isinstance(payload, dict):
        return _error(400, "validation_error", "the body must be a JSON object")
    event_id = str(payload.get("event_id") or msg_id)
    try:
        result = tracking_events.handle_provider_event(payload, event_id)
    except tracking_events.UnknownMessage as exc:
        return _error(404, "not_found", str(exc), {"message_id": ["no matching e-mail"]})
    except UnknownBounceType as exc:
        return _error(422, "validation_error", str(exc), {"bounce_type": [str(exc)]})
    except ValueError as exc:
        return _error(422, "validation_error", str(exc), {"type": [str(exc)]})
    return jsonify(result), 200


def _error(status: int, code: str, message: str, fields: dict | None = None):
    response = jsonify({"error": {"code": code, "message": message, "fields": fields or {}}})
    response.status_code = status
    return response
