"""Outgoing messages (the outbox) and what recipients did with them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    ForeignKey,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Text,
    UniqueConstraint,
    event,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.clock import now
from app.extensions import db
from app.models import partitioning
from app.models.base import JSONType, UTCDateTime
from app.models.execution import BigId
from app.tenancy import FirmScoped

CHANNELS = ("email", "sms", "webhook")
# pending: to be sent; sent: handed over; failed: gave up after retries;
# recorded: kept only (no transport configured); skipped: e.g. unsubscribed;
# test: a test run's message, never sent.
OUTBOX_STATUSES = ("pending", "sent", "failed", "recorded", "skipped", "test")


class OutboxMessage(FirmScoped, db.Model):
    """One step's e-mail, SMS or webhook, written in the same transaction as
    the step. Its (execution, node, visit) key makes a re-run find it instead
    of sending a second message; ``message_id`` is the e-mail Message-ID or
    the webhook Idempotency-Key, identical on every retry."""

    __tablename__ = "outbox_messages"
    __table_args__ = (
        UniqueConstraint("execution_id", "node_id", "visit"),
        Index("ix_outbox_status_next", "status", "next_attempt_at"),
        Index("ix_outbox_firm_created", "firm_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    execution_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("workflow_executions.id", ondelete="CASCADE")
    )
    # Only the engine writes messages, always for an execution: its cascade
    # removes them, so the firm and workflow need no foreign key here (each
    # is a parent-row check per inserted message), and ix_outbox_firm_created
    # serves lookups by firm.
    firm_id: Mapped[int] = mapped_column(Integer)
    workflow_id: Mapped[int | None] = mapped_column(Integer, index=True)
    contact_id: Mapped[int | None] = mapped_column(
        ForeignKey("contacts.id", ondelete="SET NULL"), index=True
    )
    node_id: Mapped[str] = mapped_column(String(100), default="")
    visit: Mapped[int] = mapped_column(default=1)
    channel: Mapped[str] = mapped_column(String(10))
    # The topic an e-mail is sent under (List-Id, one-click opt-out).
    topic_id: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(10), default="pending")
    to_address: Mapped[str] = mapped_column(String(2000), default="")
    from_address: Mapped[str] = mapped_column(String(320), default="")
    subject: Mapped[str] = mapped_column(Text, default="")
    body_text: Mapped[str] = mapped_column(Text, default="")
    body_html: Mapped[str] = mapped_column(Text, default="")
    # Webhook: {"method", "headers", "body"}; SMS: {"to", "body"}.
    payload: Mapped[dict] = mapped_column(JSONType, default=dict)
    message_id: Mapped[str] = mapped_column(String(200), index=True)
    attempts: Mapped[int] = mapped_column(default=0)
    max_attempts: Mapped[int] = mapped_column(default=3)
    # The node's retry_backoff_seconds: the first retry waits this long, doubling after.
    retry_backoff_seconds: Mapped[float] = mapped_column(default=30)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    response: Mapped[dict] = mapped_column(JSONType, default=dict)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)

    MASK = "••••••"

    @property
    def shown_payload(self) -> dict:
        """The payload as pages show it: a webhook's rendered header values
        are masked (any of them may be a credential, and every user of the
        firm can read the outbox); the names stay, so the set-up shows."""
        payload = dict(self.payload or {})
        if isinstance(payload.get("headers"), dict):
            payload["headers"] = {name: self.MASK for name in payload["headers"]}
        return payload

    contact = relationship("Contact")


TRACKING_KINDS = ("open", "click", "unsubscribe", "bounce", "reply", "complaint")


class TrackingHit(FirmScoped, db.Model):
    """An open or a click as the public endpoint took it, committed before
    the answer; a worker turns hits into ``TrackingEvent`` rows and trigger
    bus events in batches and deletes them in the same transaction
    (docs/ARCHITECTURE.md, "Tracking hits")."""

    __tablename__ = "tracking_hits"
    __table_args__ = (Index("ix_tracking_hits_firm_id_id", "firm_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    # No foreign keys: the endpoint's one INSERT pays no parent-row checks,
    # and a hit whose message is gone is dropped when it is processed.
    firm_id: Mapped[int] = mapped_column(Integer)
    outbox_id: Mapped[int] = mapped_column(BigId)
    contact_id: Mapped[int | None] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(20))
    url: Mapped[str] = mapped_column(Text, default="")
    user_agent: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)


class TrackingEvent(FirmScoped, db.Model):
    """An open, click, unsubscribe, bounce or reply for a sent message."""

    __tablename__ = "tracking_events"
    __table_args__ = (
        Index("ix_tracking_workflow_node_kind", "workflow_id", "node_id", "kind"),
        # A provider callback's event id: a replayed callback is a no-op
        # (EventKey holds the key on PostgreSQL, where the table is
        # partitioned by month and this key also holds created_at).
        UniqueConstraint("firm_id", "event_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    outbox_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("outbox_messages.id", ondelete="CASCADE"), index=True
    )
    contact_id: Mapped[int | None] = mapped_column(
        ForeignKey("contacts.id", ondelete="CASCADE"), index=True
    )
    execution_id: Mapped[int | None] = mapped_column(BigId, index=True)
    workflow_id: Mapped[int | None] = mapped_column(index=True)
    node_id: Mapped[str | None] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(20))
    url: Mapped[str] = mapped_column(Text, default="")
    user_agent: Mapped[str] = mapped_column(Text, default="")
    event_id: Mapped[str | None] = mapped_column(String(200))
    # An open or click by a machine (a privacy proxy, a link scanner), not
    # the contact: kept, shown as such, not counted as engagement.
    machine: Mapped[bool] = mapped_column(default=False)
    # A bounce's kind and answer, a machine event's why.
    detail: Mapped[dict] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now, index=True)


class EventLog(FirmScoped, db.Model):
    """Every event fed to the trigger bus; a repeated ``event_id`` is a no-op."""

    __tablename__ = "event_log"
    __table_args__ = (
        UniqueConstraint("firm_id", "event_id"),
        Index("ix_event_log_firm_created", "firm_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    event_id: Mapped[str] = mapped_column(String(200))
    event_type: Mapped[str] = mapped_column(String(50))
    contact_id: Mapped[int | None] = mapped_column(
        ForeignKey("contacts.id", ondelete="CASCADE"), index=True
    )
    data: Mapped[dict] = mapped_column(JSONType, default=dict)
    source: Mapped[str] = mapped_column(String(30), default="")
    executions_started: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)


# PostgreSQL: both partitioned by month of created_at (app/models/partitioning.py).
event.listen(TrackingEvent.__table__, "after_create", partitioning.after_create)
event.listen(EventLog.__table__, "after_create", partitioning.after_create)

EVENT_KEY_SCOPES = ("event", "tracking")


class EventKey(FirmScoped, db.Model):
    """An event id seen, for every month: what makes a replayed event a
    no-op once ``event_log`` and ``tracking_events`` are partitioned by
    month (their own unique keys then hold the month). A key is claimed in
    the transaction that writes its event row and kept as long as events
    are (docs/OPERATIONS.md "Data that grows")."""

    __tablename__ = "event_keys"
    __table_args__ = (
        PrimaryKeyConstraint("scope", "firm_id", "event_id"),
        Index("ix_event_keys_created", "created_at"),
    )

    # "event": the trigger bus's event_log; "tracking": tracking_events.
    scope: Mapped[str] = mapped_column(String(20))
    event_id: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)

    @classmethod
    def claim(cls, session, scope: str, firm_id: int, event_ids, at: datetime) -> set[str]:
        """Insert the keys not seen before (``ON CONFLICT DO NOTHING``) in
        the session's transaction; returns those inserted."""
        rows = [
            {"scope": scope, "firm_id": firm_id, "event_id": event_id, "created_at": at}
            for event_id in dict.fromkeys(event_ids)
        ]
        if not rows:
            return set()
        dialect = session.get_bind().dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        table = cls.__table__
        stmt = insert(table).on_conflict_do_nothing().returning(table.c.event_id)
        return set(session.scalars(stmt, rows))


class SiteVisit(FirmScoped, db.Model):
    """A page view from the tracking snippet, tied to a contact when known."""

    __tablename__ = "site_visits"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    contact_id: Mapped[int | None] = mapped_column(
        ForeignKey("contacts.id", ondelete="CASCADE"), index=True
    )
    visitor_id: Mapped[str] = mapped_column(String(64), index=True)
    url: Mapped[str] = mapped_column(Text, default="")
    referrer: Mapped[str] = mapped_column(Text, default="")
    user_agent: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now, index=True)
