"""REST hook subscriptions (Zapier / Make style) and their deliveries.

A subscription asks for one event of the firm (optionally of one
workflow) to be POSTed to ``target_url``, signed with the subscription's
own secret. A delivery is one fact for one subscription, written in the
transaction that records the fact (docs/CONTRACT.md "REST hooks"); its
(subscription, fact) key keeps a fact from being delivered twice.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.clock import now
from app.extensions import db
from app.models.accounts import new_webhook_secret
from app.models.base import JSONType, Timestamps, UTCDateTime
from app.models.execution import BigId
from app.tenancy import FirmScoped

HOOK_EVENTS = (
    "execution.started",
    "execution.completed",
    "goal.reached",
    "contact.unsubscribed",
    "form.submitted",
)
# pending: to be sent (again) at next_attempt_at; delivered: a 2xx answer;
# dead: gave up after the last retry; gone: the receiver answered 410 and
# the subscription was ended.
HOOK_DELIVERY_STATUSES = ("pending", "delivered", "dead", "gone")


class HookSubscription(FirmScoped, Timestamps, db.Model):
    """Where one event of the firm goes. ``active`` is cleared (with
    ``ended_reason``) when the receiver answers 410 Gone; its deliveries
    stay for the Integrations page."""

    __tablename__ = "hook_subscriptions"
    __table_args__ = (Index("ix_hook_subscriptions_firm_event", "firm_id", "event", "active"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    target_url: Mapped[str] = mapped_column(String(2000))
    event: Mapped[str] = mapped_column(String(40))
    workflow_id: Mapped[int | None] = mapped_column(
        ForeignKey("workflows.id", ondelete="CASCADE"), index=True
    )
    # Signs this subscription's deliveries (Standard Webhooks); answered
    # once, to the caller that made the subscription.
    secret: Mapped[str] = mapped_column(String(100), default=new_webhook_secret)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    active: Mapped[bool] = mapped_column(default=True)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ended_reason: Mapped[str | None] = mapped_column(Text)

    workflow = relationship("Workflow", lazy="joined")


class HookDelivery(FirmScoped, db.Model):
    """One fact for one subscription. ``payload`` is made at the first
    attempt and kept, so every retry sends the same body under the same
    ``webhook-id``."""

    __tablename__ = "hook_deliveries"
    __table_args__ = (
        UniqueConstraint("subscription_id", "fact_key"),
        Index("ix_hook_deliveries_status_next", "status", "next_attempt_at"),
        # Retention deletes the oldest first (operations/retention.py).
        Index("ix_hook_deliveries_created", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    subscription_id: Mapped[int] = mapped_column(
        ForeignKey("hook_subscriptions.id", ondelete="CASCADE")
    )
    event: Mapped[str] = mapped_column(String(40))
    # What happened, once per subscription: "execution:12", "submission:7" ...
    fact_key: Mapped[str] = mapped_column(String(100))
    # The fact's rows, read when the payload is made (no foreign keys: the
    # delivery outlives a removed contact or execution).
    execution_id: Mapped[int | None] = mapped_column(BigId)
    workflow_id: Mapped[int | None] = mapped_column(Integer)
    contact_id: Mapped[int | None] = mapped_column(Integer)
    data: Mapped[dict | None] = mapped_column(JSONType)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)
    # The JSON body as sent, text: JSONB would reorder its keys, and a
    # retry must send the same bytes.
    payload: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(10), default="pending")
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    status_code: Mapped[int | None] = mapped_column(Integer)
    answer: Mapped[str | None] = mapped_column(Text)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)

    subscription = relationship("HookSubscription")
