"""Firms, their users and API tokens."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import secrets
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask_login import UserMixin
from sqlalchemy import ForeignKey, String, UniqueConstraint, select
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.clock import ensure_utc, now
from app.extensions import db
from app.models.base import JSONType, Timestamps, UTCDateTime
from app.tenancy import FirmScoped

ROLES = ("admin", "marketer", "portal")
_hasher = PasswordHasher()
_decoy: tuple[PasswordHasher, str] | None = None


def check_password_of_nobody(password: str) -> bool:
    """Spend what checking a real password costs, and fail. Login calls it
    for an address with no account, so an unknown address answers in the
    same time as a known one with a wrong password."""
    global _decoy
    if _decoy is None or _decoy[0] is not _hasher:
        _decoy = (_hasher, _hasher.hash(secrets.token_urlsafe(16)))
    with contextlib.suppress(VerificationError, InvalidHashError):
        _hasher.verify(_decoy[1], password)
    return False


def new_webhook_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


# After a rotation, deliveries are signed with the old secret too for this
# long, so receivers can switch at their own pace (Standard Webhooks allows
# several signatures in one header).
WEBHOOK_SECRET_OVERLAP = timedelta(hours=24)


class Firm(Timestamps, db.Model):
    __tablename__ = "firms"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    # Signs outgoing webhooks (Standard Webhooks); shown to the firm's admins,
    # never in logs.
    webhook_secret: Mapped[str] = mapped_column(String(100), default=new_webhook_secret)
    webhook_secret_previous: Mapped[str | None] = mapped_column(String(100))
    webhook_secret_rotated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Firm settings, e.g. {"require_approval": true}.
    settings: Mapped[dict] = mapped_column(JSONType, default=dict)

    def previous_secret_expires_at(self) -> datetime | None:
        """Until when the secret before the last rotation still signs."""
        if not self.webhook_secret_previous or self.webhook_secret_rotated_at is None:
            return None
        until = ensure_utc(self.webhook_secret_rotated_at) + WEBHOOK_SECRET_OVERLAP
        return until if until > now() else None

    def signing_secrets(self) -> list[str]:
        """The secrets a delivery is signed with now: the current one, and
        for a day after a rotation the one before it."""
        if self.previous_secret_expires_at() is None:
            return [self.webhook_secret]
        return [self.webhook_secret, self.webhook_secret_previous]

    def rotate_webhook_secret(self) -> None:
        """A new signing secret; the current one keeps signing for a day.
        The caller commits."""
        self.webhook_secret_previous = self.webhook_secret
        self.webhook_secret = new_webhook_secret()
        self.webhook_secret_rotated_at = now()

    def __repr__(self) -> str:
        return f"<Firm {self.id} {self.name!r}>"


class User(FirmScoped, UserMixin, Timestamps, db.Model):
    """A person who signs in to one firm. An address is unique within a firm,
    not across firms: a firm's admin adding a user must not learn whether
    that address has an account elsewhere (so the same person may have an
    account in two firms; login tells them apart by password, then firm)."""

    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("firm_id", "email"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), index=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    password_hash: Mapped[str] = mapped_column(String(200), default="")
    role: Mapped[str] = mapped_column(String(20), default="marketer")
    is_active_user: Mapped[bool] = mapped_column(default=True)
    # IANA zone the pages show times in; None: the firm's (settings.timezone).
    timezone: Mapped[str | None] = mapped_column(String(64))

    firm: Mapped[Firm] = relationship(lazy="joined")

    # The signed-in session this object was loaded for (app/sessions.py);
    # Flask-Login stores it as the "user id" in the session and remember
    # cookies, so revoking the session row revokes both cookies.
    session_key = None  # str, set per loaded object

    def get_id(self) -> str | None:  # Flask-Login
        return self.session_key

    @property
    def is_active(self) -> bool:  # Flask-Login
        return self.is_active_user

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def is_portal(self) -> bool:
        return self.role == "portal"

    def set_password(self, password: str) -> None:
        self.password_hash = _hasher.hash(password)

    def check_password(self, password: str) -> bool:
        if not self.password_hash:
            return False
        try:
            return _hasher.verify(self.password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    @classmethod
    def all_with_email(cls, email: str) -> list[User]:
        """Every firm's account with this address (login looks across firms)."""
        stmt = select(cls).where(cls.email == email.strip().lower()).order_by(cls.id)
        return list(db.session.scalars(stmt.execution_options(all_firms=True)))

    def __repr__(self) -> str:
        return f"<User {self.email} ({self.role})>"


def hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


class ApiToken(FirmScoped, db.Model):
    """A bearer token. Only its SHA-256 is stored; the token is shown once."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(12))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    # Loaded with the token, in authenticate()'s cross-firm query: a lazy load
    # would run before any firm is current and find no user.
    user: Mapped[User] = relationship(lazy="joined")

    @classmethod
    def issue(cls, user: User, name: str = "") -> tuple[ApiToken, str]:
        """Create a token for ``user``; returns the row and the raw token."""
        raw = "atk_" + secrets.token_urlsafe(32)
        token = cls(
            user_id=user.id,
            firm_id=user.firm_id,
            name=name,
            token_hash=hash_token(raw),
            prefix=raw[:10],
        )
        db.session.add(token)
        return token, raw

    @classmethod
    def authenticate(cls, raw: str) -> ApiToken | None:
        stmt = select(cls).where(cls.token_hash == hash_token(raw), cls.revoked_at.is_(None))
        return db.session.scalars(stmt.execution_options(all_firms=True)).first()


__all__ = ["ApiToken", "Firm", "ROLES", "User", "check_password_of_nobody", "hash_token"]
