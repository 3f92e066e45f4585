"""The stuck-work monitor's memory: which problems are open, so a problem
raises its notification once when it turns bad (docs/OPERATIONS.md)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.clock import now
from app.extensions import db
from app.models.base import UTCDateTime


class HealthAlert(db.Model):
    """One problem the monitor found (a check, and for most checks a
    workflow and step), open until a run no longer finds it. System data
    read only by the monitor's periodic job, across firms; ``firm_id`` is
    empty for problems of the whole deployment (a missing worker)."""

    __tablename__ = "health_alerts"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(300), unique=True)
    kind: Mapped[str] = mapped_column(String(40))  # the check that found it
    firm_id: Mapped[int | None] = mapped_column(
        ForeignKey("firms.id", ondelete="CASCADE"), index=True
    )
    summary: Mapped[str] = mapped_column(Text, default="")
    count: Mapped[int] = mapped_column(default=0)
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
