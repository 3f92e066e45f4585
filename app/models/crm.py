"""The CRM records that triggers watch and actions change."""

from __future__ import annotations

import secrets
from datetime import datetime
from decimal import Decimal

from sqlalchemy import (
    Column,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.clock import now
from app.extensions import db
from app.models.base import JSONType, Timestamps, UTCDateTime
from app.tenancy import FirmScoped

# Association rows carry no firm of their own: they are reached only through
# a firm-scoped contact, tag or list.
contact_tags = Table(
    "contact_tags",
    db.metadata,
    Column("contact_id", Integer, ForeignKey("contacts.id", ondelete="CASCADE"), primary_key=True),
    Column(
        "tag_id", Integer, ForeignKey("tags.id", ondelete="CASCADE"), primary_key=True, index=True
    ),
    Column("created_at", UTCDateTime, default=now),
)

list_members = Table(
    "list_members",
    db.metadata,
    Column(
        "list_id", Integer, ForeignKey("contact_lists.id", ondelete="CASCADE"), primary_key=True
    ),
    Column(
        "contact_id",
        Integer,
        ForeignKey("contacts.id", ondelete="CASCADE"),
        primary_key=True,
        index=True,
    ),
    Column("created_at", UTCDateTime, default=now),
)


class Contact(FirmScoped, Timestamps, db.Model):
    __tablename__ = "contacts"
    __table_args__ = (
        UniqueConstraint("firm_id", "email"),
        Index("ix_contacts_firm_created", "firm_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320))
    first_name: Mapped[str] = mapped_column(String(100), default="")
    last_name: Mapped[str] = mapped_column(String(100), default="")
    phone: Mapped[str] = mapped_column(String(40), default="")
    score: Mapped[int] = mapped_column(default=0)
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    custom_fields: Mapped[dict] = mapped_column(JSONType, default=dict)
    unsubscribed: Mapped[bool] = mapped_column(default=False)
    unsubscribed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    tags: Mapped[list[Tag]] = relationship(secondary=contact_tags, order_by="Tag.name")
    lists: Mapped[list[ContactList]] = relationship(
        secondary=list_members, back_populates="contacts"
    )
    deals: Mapped[list[Deal]] = relationship(back_populates="contact", order_by="Deal.id")

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()

    @property
    def tag_names(self) -> list[str]:
        return [tag.name for tag in self.tags]

    def __repr__(self) -> str:
        return f"<Contact {self.id} {self.email}>"


class Tag(FirmScoped, db.Model):
    __tablename__ = "tags"
    __table_args__ = (UniqueConstraint("firm_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)


class ContactList(FirmScoped, Timestamps, db.Model):
    __tablename__ = "contact_lists"
    __table_args__ = (UniqueConstraint("firm_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")

    contacts: Mapped[list[Contact]] = relationship(secondary=list_members, back_populates="lists")


def _form_key() -> str:
    return secrets.token_urlsafe(12)


class Form(FirmScoped, Timestamps, db.Model):
    """A public form; ``fields`` name contact columns or ``custom.<key>``."""

    __tablename__ = "forms"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    form_key: Mapped[str] = mapped_column(String(32), unique=True, default=_form_key)
    fields: Mapped[list] = mapped_column(JSONType, default=list)
    success_message: Mapped[str] = mapped_column(Text, default="Thank you!")
    redirect_url: Mapped[str] = mapped_column(String(2000), default="")
    # fill_empty: a post for a known address fills only its empty fields;
    # overwrite: it replaces them.
    update_existing: Mapped[str] = mapped_column(String(12), default="fill_empty")
    double_opt_in: Mapped[bool] = mapped_column(default=False)
    confirm_subject: Mapped[str] = mapped_column(Text, default="")
    confirm_body: Mapped[str] = mapped_column(Text, default="")
    # The consent wording shown beside the form, kept with each consent record.
    consent_text: Mapped[str] = mapped_column(Text, default="")


class FormSubmission(FirmScoped, db.Model):
    __tablename__ = "form_submissions"

    id: Mapped[int] = mapped_column(primary_key=True)
    form_id: Mapped[int] = mapped_column(ForeignKey("forms.id", ondelete="CASCADE"), index=True)
    contact_id: Mapped[int | None] = mapped_column(
        ForeignKey("contacts.id", ondelete="SET NULL"), index=True
    )
    data: Mapped[dict] = mapped_column(JSONType, default=dict)
    user_agent: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now, index=True)


DEAL_STATUSES = ("open", "won", "lost")


class Deal(FirmScoped, Timestamps, db.Model):
    __tablename__ = "deals"
    __table_args__ = (Index("ix_deals_firm_status", "firm_id", "status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    contact_id: Mapped[int | None] = mapped_column(
        ForeignKey("contacts.id", ondelete="CASCADE"), index=True
    )
    title: Mapped[str] = mapped_column(String(200))
    value: Mapped[Decimal] = mapped_column(Numeric(14, 2), default=Decimal("0"))
    stage: Mapped[str] = mapped_column(String(100), default="new")
    status: Mapped[str] = mapped_column(String(10), default="open")
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    contact: Mapped[Contact | None] = relationship(back_populates="deals")


class Task(FirmScoped, Timestamps, db.Model):
    __tablename__ = "tasks"

    id: Mapped[int] = mapped_column(primary_key=True)
    contact_id: Mapped[int | None] = mapped_column(
        ForeignKey("contacts.id", ondelete="SET NULL"), index=True
    )
    assignee_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    execution_id: Mapped[int | None] = mapped_column(
        ForeignKey("workflow_executions.id", ondelete="SET NULL"), index=True
    )
    title: Mapped[str] = mapped_column(String(300))
    description: Mapped[str] = mapped_column(Text, default="")
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    status: Mapped[str] = mapped_column(String(10), default="open")

    contact: Mapped[Contact | None] = relationship()
    assignee = relationship("User")


class Notification(FirmScoped, db.Model):
    """An in-app message to a user (internal_notification action)."""

    __tablename__ = "notifications"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    execution_id: Mapped[int | None] = mapped_column(
        ForeignKey("workflow_executions.id", ondelete="SET NULL"), index=True
    )
    message: Mapped[str] = mapped_column(Text)
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)

    user = relationship("User")
