"""Who is asking: a browser session (Flask-Login) or a Bearer token.

The request's user decides the current firm for tenancy (app/tenancy.py);
this module is the only place that sets it for web requests.
"""

from __future__ import annotations

from datetime import timedelta
from functools import wraps

from flask import abort, g, redirect, request, url_for
from flask_login import current_user
from sqlalchemy import select

from app.clock import ensure_utc, now
from app.extensions import db, login_manager
from app.tenancy import reset_current_firm, set_current_firm


@login_manager.user_loader
def _load_user(user_id: str):
    from app.models import User

    stmt = select(User).where(User.id == int(user_id))
    user = db.session.scalars(stmt.execution_options(all_firms=True)).first()
    return user if user is not None and user.is_active else None


def authenticate_request() -> None:
    """Resolve the caller once per request and set the current firm."""
    g.user = None
    g.api_token = None
    header = request.headers.get("Authorization", "")
    if header[:7].lower() == "bearer ":
        from app.models import ApiToken

        token = ApiToken.authenticate(header[7:].strip())
        if token is not None and token.user.is_active:
            g.user = token.user
            g.api_token = token
            _stamp_use(token)
    elif current_user.is_authenticated:
        g.user = current_user._get_current_object()
    g.firm_token = set_current_firm(g.user.firm_id if g.user is not None else None)


# "Last used" is for admins spotting stale tokens; minute-level precision is
# plenty, and stamping every request would dirty the session on every read.
_STAMP_EVERY = timedelta(minutes=5)


def _stamp_use(token) -> None:
    moment = now()
    last = ensure_utc(token.last_used_at)
    if last is None or moment - last >= _STAMP_EVERY:
        token.last_used_at = moment


def forget_request() -> None:
    token = g.pop("firm_token", None)
    if token is not None:
        reset_current_firm(token)


def current_actor() -> tuple[int | None, str]:
    """(user id, actor label) for the audit log."""
    try:
        user = g.get("user")
        api_token = g.get("api_token")
    except RuntimeError:  # outside a request: a job or the CLI
        return None, "system"
    if user is None:
        return None, "public" if request else "system"
    if api_token is not None:
        return user.id, f"token:{api_token.prefix}"
    return user.id, user.email


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
