"""Who is asking: a browser session (Flask-Login) or a Bearer token.

The request's user decides the current firm for tenancy (app/tenancy.py);
this module is the only place that sets it for web requests.
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from functools import wraps

from flask import abort, current_app, g, redirect, request, url_for
from flask_login import current_user

from app.clock import ensure_utc, now
from app.extensions import db, login_manager
from app.models import ApiToken
from app.models.accounts import hash_token
from app.sessions import user_for_session
from app.tenancy import current_actor, reset_current_firm, set_current_firm  # noqa: F401


@login_manager.user_loader
def _load_user(session_value: str):
    return user_for_session(session_value)


def bearer_token() -> str | None:
    """The raw token of an ``Authorization: Bearer`` header, if any."""
    header = request.headers.get("Authorization", "")
    if header[:7].lower() == "bearer " and header[7:].strip():
        return header[7:].strip()
    return None


# Tokens checked in the last AUTH_CACHE_SECONDS, per process: a client
# calling many times a second is authenticated by one query every few
# seconds, not one (token + user join) per call. A revoked token or a
# deactivated user is refused within that time (at once by the process that
# revoked it, see forget_tokens). The entries are detached ORM objects,
# merged into each request's session without a query.
_cache: dict[str, tuple[float, object]] = {}
_cache_lock = threading.Lock()
_CACHE_MAX = 10_000


def cached_token(raw: str):
    """The active, unrevoked ApiToken (user loaded) for ``raw``, attached to
    this request's session; None when the token is unknown or revoked or
    its user inactive."""
    memo = g.get("_bearer")
    if memo is not None and memo[0] == raw:
        return memo[1]  # the rate limiter asked already this request
    token = _cached_token(raw)
    g._bearer = (raw, token)
    return token


def _cached_token(raw: str):
    key = hash_token(raw)
    ttl = float(current_app.config.get("AUTH_CACHE_SECONDS") or 0)
    moment = time.monotonic()
    hit = _cache.get(key) if ttl > 0 else None
    if hit is not None and hit[0] > moment:
        token = hit[1]
        return db.session.merge(token, load=False) if token is not None else None
    token = ApiToken.authenticate(raw)
    if token is not None and not token.user.is_active:
        token = None
    if token is not None:
        _stamp_use(token)
    if ttl <= 0:
        return token
    if token is not None:
        db.session.expunge(token.user)
        db.session.expunge(token)
    with _cache_lock:
        if len(_cache) >= _CACHE_MAX:
            _cache.clear()
        _cache[key] = (moment + ttl, token)
    return db.session.merge(token, load=False) if token is not None else None


def forget_tokens() -> None:
    """Drop this process's cached tokens (after a revocation or a change of
    a user's role or status)."""
    with _cache_lock:
        _cache.clear()


def authenticate_request() -> None:
    """Resolve the caller once per request and set the current firm."""
    g.user = None
    g.api_token = None
    raw = bearer_token()
    if raw is not None:
        token = cached_token(raw)
        if token is not None:
            g.user = token.user
            g.api_token = token
    elif request.headers.get("Authorization", "")[:7].lower() == "bearer ":
        pass  # an empty bearer token: nobody
    elif current_user.is_authenticated:
        g.user = current_user._get_current_object()
    g.firm_token = set_current_firm(g.user.firm_id if g.user is not None else None)


# "Last used" is for admins spotting stale tokens; minute-level precision is
# plenty, and stamping every request would dirty the session on every read.
_STAMP_EVERY = timedelta(minutes=5)


def _stamp_use(token) -> None:
    """An UPDATE in the request's transaction (committed with its writes);
    the object itself stays clean, so it can be cached."""
    from sqlalchemy import update
    from sqlalchemy.orm.attributes import set_committed_value

    moment = now()
    last = ensure_utc(token.last_used_at)
    if last is None or moment - last >= _STAMP_EVERY:
        db.session.execute(
            update(ApiToken)
            .where(ApiToken.id == token.id)
            .values(last_used_at=moment)
            .execution_options(synchronize_session=False, all_firms=True)
        )
        set_committed_value(token, "last_used_at", moment)


def forget_request() -> None:
    g.pop("_bearer", None)
    token = g.pop("firm_token", None)
    if token is not None:
        reset_current_firm(token)


def login_required_page(view):
    """Browser pages: anonymous -> login page; portal users -> 403."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        user = g.get("user")
        if user is None:
            return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
        if user.is_portal:
            abort(403)
        return view(*args, **kwargs)

    return wrapper


def admin_required_page(view):
    @wraps(view)
    @login_required_page
    def wrapper(*args, **kwargs):
        if not g.user.is_admin:
            abort(403)
        return view(*args, **kwargs)

    return wrapper
