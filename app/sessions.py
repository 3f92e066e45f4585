"""Signed-in sessions that the server can revoke (app/models/sessions.py).

Flask-Login keeps whatever ``User.get_id()`` returns in the session cookie
and, with "keep me signed in", in the remember cookie. Here that value is
``<session row id>.<random key>``: a cookie opens the app only while its
row exists and has not expired, so logout, a password change,
deactivation and "sign out everywhere" revoke every copy of the cookie.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta

from flask import current_app
from sqlalchemy import delete, select

from app.clock import ensure_utc, now
from app.extensions import db
from app.models import User, UserSession
from app.models.accounts import check_password_of_nobody


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _lifetime(remember: bool) -> timedelta:
    if remember:
        return current_app.config["REMEMBER_COOKIE_DURATION"]
    return timedelta(hours=current_app.config["SESSION_LIFETIME_HOURS"])


def start_session(user: User, remember: bool) -> None:
    """A new session row for ``user``; sets ``user.session_key`` for
    ``login_user``. The caller commits."""
    key = secrets.token_urlsafe(32)
    row = UserSession(
        user_id=user.id,
        firm_id=user.firm_id,
        key_hash=_hash(key),
        remember=remember,
        expires_at=now() + _lifetime(remember),
    )
    db.session.add(row)
    db.session.flush()
    user.session_key = f"{row.id}.{key}"


def user_for_session(value: str) -> User | None:
    """The user a session or remember cookie stands for, if still valid."""
    row_id, _, key = (value or "").partition(".")
    if not row_id.isdigit() or not key:
        return None  # a cookie from before sessions were revocable
    stmt = select(UserSession).where(UserSession.id == int(row_id))
    row = db.session.scalars(stmt.execution_options(all_firms=True)).first()
    if row is None or not hmac.compare_digest(row.key_hash, _hash(key)):
        return None
    if ensure_utc(row.expires_at) <= now() or not row.user.is_active:
        return None
    row.user.session_key = value
    return row.user


def end_session(user: User) -> None:
    """Revoke the session ``user`` was loaded for (logout)."""
    row_id = (user.session_key or "").partition(".")[0]
    if row_id.isdigit():
        db.session.execute(
            delete(UserSession)
            .where(UserSession.id == int(row_id), UserSession.user_id == user.id)
            .execution_options(all_firms=True)
        )


def end_all_sessions(user: User, keep_current: bool = False) -> int:
    """Revoke every session of ``user`` (all browsers, all remember
    cookies), or all but the one in use. Returns how many were revoked."""
    stmt = delete(UserSession).where(UserSession.user_id == user.id)
    current = (user.session_key or "").partition(".")[0]
    if keep_current and current.isdigit():
        stmt = stmt.where(UserSession.id != int(current))
    return db.session.execute(stmt.execution_options(all_firms=True)).rowcount or 0


def authenticate(email: str, password: str) -> list[User]:
    """The accounts with this address whose password matches. Every
    candidate's password is checked (and a decoy's when there is none), so
    the answer takes as long for an unknown address as for a known one."""
    candidates = User.all_with_email(email) if email else []
    if not candidates:
        check_password_of_nobody(password)
        return []
    return [user for user in candidates if user.check_password(password) and user.is_active]


def change_password(user: User, current: str, new: str) -> bool:
    """Set a new password if ``current`` is right; signs out every other
    session of the user. The caller commits."""
    if not user.check_password(current):
        return False
    user.set_password(new)
    end_all_sessions(user, keep_current=True)
    return True
