"""Who may call the API, how often, and loading objects the caller may see.

Authentication itself happens once per request in :mod:`app.auth` (Bearer
token or browser session -> ``g.user`` and the current firm). Here:

- no user -> 401; a portal user -> 403 (docs/CONTRACT.md);
- a session-authenticated write must carry the CSRF token (header
  ``X-CSRFToken``), a token-authenticated one need not: a browser never
  attaches a Bearer header on its own, so a cross-site request cannot
  forge one. Flask-WTF's automatic check is therefore switched off for
  the blueprint and :func:`flask_wtf.csrf.CSRFProtect.protect` is called
  here when there is no token;
- writes are rate limited per token (``API_WRITE_LIMIT_PER_TOKEN``, 100
  per 10 seconds, like HubSpot's per-app limit; a batch call counts once
  and carries up to 1,000 items) and, only when they carry no valid token
  (a browser session, an unknown or revoked token), per client address
  (``API_WRITE_LIMIT_PER_IP``): a backend behind one address may feed the
  API with several tokens. A refusal is a 429 with ``Retry-After``. The
  counters live in Redis when REDIS_URL is set (shared by every process).

Another firm's objects are never found: the tenancy filter hides them,
so :func:`get_or_404` answers 404, never 403.
"""

from __future__ import annotations

import hashlib

from flask import current_app, g, request
from flask_limiter.util import get_remote_address

from app.api.core import SAFE_METHODS, api_bp
from app.api.errors import ApiError, not_found
from app.auth import bearer_token, cached_token
from app.extensions import csrf, limiter
from app.tenancy import scoped_get

WRITE_METHODS = ["POST", "PUT", "PATCH", "DELETE"]


def require_api_user() -> None:
    user = g.get("user")
    if user is None:
        raise ApiError(
            401,
            "unauthorized",
            "authentication required: send 'Authorization: Bearer <token>' or sign in",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if user.is_portal:
        raise ApiError(403, "forbidden", "portal users cannot use the API")
    if request.method not in SAFE_METHODS and g.get("api_token") is None:
        csrf.protect()


def _token_key() -> str:
    """The rate-limit bucket of the caller's token (its hash, never the token).

    The limiter runs before :func:`app.auth.authenticate_request`, so the
    key is taken from the header itself; without a token it is the
    session's client address."""
    raw = bearer_token()
    if raw is not None:
        return "token:" + hashlib.sha256(raw.encode()).hexdigest()[:32]
    return "addr:" + (get_remote_address() or "unknown")


def _ip_key() -> str:
    return "ip:" + (get_remote_address() or "unknown")


def _has_valid_token() -> bool:
    """Whether the request carries a token that authenticates (the check is
    cached per token, see app.auth.cached_token, and reused by it)."""
    raw = bearer_token()
    return raw is not None and cached_token(raw) is not None


def _token_limit() -> str:
    return current_app.config.get("API_WRITE_LIMIT_PER_TOKEN") or "100 per 10 seconds"


def _ip_limit() -> str:
    return current_app.config.get("API_WRITE_LIMIT_PER_IP") or "300 per minute"


def install() -> None:
    csrf.exempt(api_bp)
    api_bp.before_request(require_api_user)
    limiter.limit(_token_limit, key_func=_token_key, methods=WRITE_METHODS)(api_bp)
    limiter.limit(_ip_limit, key_func=_ip_key, methods=WRITE_METHODS, exempt_when=_has_valid_token)(
        api_bp
    )


def get_or_404(model, object_id: int, *options, what: str | None = None):
    """The current firm's ``model`` row with this id, or a 404 ApiError.

    An id beyond the column's range cannot exist: 404 without asking the
    database (PostgreSQL would refuse the comparison)."""
    obj = scoped_get(model, object_id, *options)
    if obj is None:
        raise not_found(what or model.__name__.lower())
    return obj
