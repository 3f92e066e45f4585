"""Signed-in browser sessions, one row per login.

The session cookie and the remember cookie carry ``<row id>.<random key>``
(Flask-Login's user id); only the key's SHA-256 is stored. Deleting the
row signs that browser out wherever its cookies went: logout, a password
change, deactivation and "sign out everywhere" all do that.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.clock import now
from app.extensions import db
from app.models.accounts import User
from app.models.base import UTCDateTime
from app.tenancy import FirmScoped


class UserSession(FirmScoped, db.Model):
    __tablename__ = "user_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    remember: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)

    # Loaded with the session row in the one cross-firm query per request.
    user: Mapped[User] = relationship(lazy="joined")


__all__ = ["UserSession"]
