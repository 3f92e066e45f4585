"""What decides whether a firm may send to an address: its suppression
list, the topics contacts opt in or out of, and the domains it sends from."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.clock import now
from app.extensions import db
from app.models.base import JSONType, UTCDateTime
from app.models.execution import BigId
from app.tenancy import FirmScoped

# hard_bounce: an SMTP 5xx or a provider's hard bounce; complaint: a spam
# report; manual: added by a person; unsubscribe: asked never to be mailed
# again; soft_bounce: SOFT_BOUNCE_LIMIT temporary failures in a row.
SUPPRESSION_REASONS = ("hard_bounce", "complaint", "manual", "unsubscribe", "soft_bounce")
SUPPRESSION_CHANNELS = ("email", "sms")


class Suppression(FirmScoped, db.Model):
    """An address the firm never sends to again, whatever the workflow or
    topic. ``address`` is kept lower-case (e-mail) so one lookup finds it."""

    __tablename__ = "suppressions"
    __table_args__ = (
        UniqueConstraint("firm_id", "channel", "address"),
        Index("ix_suppressions_address", "address"),
        Index("ix_suppressions_firm_created", "firm_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    channel: Mapped[str] = mapped_column(String(10), default="email")
    address: Mapped[str] = mapped_column(String(320))
    reason: Mapped[str] = mapped_column(String(20))
    note: Mapped[str] = mapped_column(Text, default="")
    # The server's or provider's answer: {"code": 550, "status": "5.1.1", "text": "..."}
    detail: Mapped[dict] = mapped_column(JSONType, default=dict)
    # "smtp", "provider", "api", "page", "import", "soft_bounces"
    source: Mapped[str] = mapped_column(String(20), default="")
    outbox_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("outbox_messages.id", ondelete="SET NULL")
    )
    created_by: Mapped[str] = mapped_column(String(320), default="system")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)


TOPIC_KINDS = ("marketing", "transactional")


class Topic(FirmScoped, db.Model):
    """What a message is about, as a contact can opt in or out of it.
    ``transactional`` topics (receipts, password resets) ignore marketing
    opt-outs, never suppressions. One marketing topic per firm is its
    default: a send_email step without a topic sends under it."""

    __tablename__ = "topics"
    __table_args__ = (UniqueConstraint("firm_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(Text, default="")
    kind: Mapped[str] = mapped_column(String(15), default="marketing")
    is_default: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)


# A contact's own choice per topic; no row means subscribed (a contact
# never asked is mailed as before topics existed). Reached only through a
# firm-scoped contact, like contact_tags.
contact_subscriptions = Table(
    "contact_subscriptions",
    db.metadata,
    Column("contact_id", Integer, ForeignKey("contacts.id", ondelete="CASCADE"), primary_key=True),
    Column(
        "topic_id",
        Integer,
        ForeignKey("topics.id", ondelete="CASCADE"),
        primary_key=True,
        index=True,
    ),
    Column("subscribed", Boolean, nullable=False, default=True),
    Column("source", String(30), default=""),
    Column("changed_at", UTCDateTime, default=now),
)


class SendingDomain(FirmScoped, db.Model):
    """A domain the firm sends from. ``domain`` is unique across firms: a
    firm never sends as another's domain. With a DKIM key, every message
    from it is signed; the key is write-only (never shown after saving)."""

    __tablename__ = "sending_domains"

    id: Mapped[int] = mapped_column(primary_key=True)
    domain: Mapped[str] = mapped_column(String(253), unique=True)
    dkim_selector: Mapped[str] = mapped_column(String(63), default="automation")
    dkim_private_key: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)


class SendRateSlot(db.Model):
    """The global rate limit's clock on the embedded default (Redis keeps
    it otherwise): per key (a firm, a firm's recipient domain) the moment,
    in seconds since the epoch, from which the next message may go
    (delivery/rate_limit.py). System state, not a firm's data."""

    __tablename__ = "send_rate_slots"

    key: Mapped[str] = mapped_column(String(300), primary_key=True)
    tat: Mapped[float] = mapped_column(default=0.0)
