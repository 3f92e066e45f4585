"""Consent as given: the record kept per contact, and double opt-in
sign-ups waiting for their confirmation link."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.clock import now
from app.extensions import db
from app.models.base import JSONType, UTCDateTime
from app.tenancy import FirmScoped


class ConsentRecord(FirmScoped, db.Model):
    """When and how a contact agreed to be mailed: the form, the address
    and browser it came from, and the words it was shown."""

    __tablename__ = "consent_records"

    id: Mapped[int] = mapped_column(primary_key=True)
    contact_id: Mapped[int] = mapped_column(
        ForeignKey("contacts.id", ondelete="CASCADE"), index=True
    )
    form_id: Mapped[int | None] = mapped_column(ForeignKey("forms.id", ondelete="SET NULL"))
    method: Mapped[str] = mapped_column(String(20), default="double_opt_in")
    wording: Mapped[str] = mapped_column(Text, default="")
    ip: Mapped[str] = mapped_column(String(64), default="")
    user_agent: Mapped[str] = mapped_column(Text, default="")
    given_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class PendingSignup(FirmScoped, db.Model):
    """A double opt-in form post not confirmed yet: nothing of it reaches a
    contact (no new contact, no changed field, no trigger) until its signed
    link is followed; unconfirmed ones expire."""

    __tablename__ = "pending_signups"

    id: Mapped[int] = mapped_column(primary_key=True)
    form_id: Mapped[int] = mapped_column(ForeignKey("forms.id", ondelete="CASCADE"), index=True)
    email: Mapped[str] = mapped_column(String(320))
    data: Mapped[dict] = mapped_column(JSONType, default=dict)
    wording: Mapped[str] = mapped_column(Text, default="")
    ip: Mapped[str] = mapped_column(String(64), default="")
    user_agent: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id", ondelete="SET NULL"))
