"""Audiences: saved dynamic segments, their members and enrollment jobs
(docs/CONTRACT.md "Experiments, audiences, forecasts, integrations")."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, ForeignKey, Index, Integer, String, Table, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.clock import now
from app.extensions import db
from app.models.base import JSONType, Timestamps, UTCDateTime
from app.tenancy import FirmScoped


class Audience(FirmScoped, Timestamps, db.Model):
    """A saved rule group over contacts; who matches is kept in
    ``audience_members`` as contacts change (app/automation/audiences/)."""

    __tablename__ = "audiences"
    __table_args__ = (UniqueConstraint("firm_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    match: Mapped[str] = mapped_column(String(3), default="all")
    rules: Mapped[list] = mapped_column(JSONType, default=list)
    # Its rules have a time window ("opened in the last 30 days"): the
    # periodic refresh re-checks it as time passes.
    timed: Mapped[bool] = mapped_column(default=False)

    @property
    def rule_group(self) -> dict:
        return {"match": self.match, "rules": list(self.rules or [])}


# Who is in an audience now: a row is inserted on entry and deleted on
# leaving, and that insert or delete is what fires segment_entered /
# segment_left, once. Reached only through a firm-scoped audience.
audience_members = Table(
    "audience_members",
    db.metadata,
    Column(
        "audience_id", Integer, ForeignKey("audiences.id", ondelete="CASCADE"), primary_key=True
    ),
    Column("contact_id", Integer, ForeignKey("contacts.id", ondelete="CASCADE"), primary_key=True),
    Column("entered_at", UTCDateTime, default=now, nullable=False),
    Index("ix_audience_members_contact", "contact_id"),
)


class AudienceEnrollment(FirmScoped, Timestamps, db.Model):
    """ "Enroll this audience now" into a workflow: the job's progress."""

    __tablename__ = "audience_enrollments"

    id: Mapped[int] = mapped_column(primary_key=True)
    audience_id: Mapped[int] = mapped_column(
        ForeignKey("audiences.id", ondelete="CASCADE"), index=True
    )
    workflow_id: Mapped[int] = mapped_column(ForeignKey("workflows.id", ondelete="CASCADE"))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    status: Mapped[str] = mapped_column(String(20), default="queued")
    total: Mapped[int | None] = mapped_column()
    processed: Mapped[int] = mapped_column(default=0)
    enrolled: Mapped[int] = mapped_column(default=0)
    # The last contact id handled: a re-run of the job resumes after it.
    last_contact_id: Mapped[int] = mapped_column(default=0)
    # Recoveries in a row with no batch done in between (a worker dying on
    # the same batch each time); the job fails at the limit.
    stalls: Mapped[int] = mapped_column(default=0, server_default="0")
    error: Mapped[str | None] = mapped_column(Text)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    @property
    def percent(self) -> int:
        if self.status == "done":
            return 100
        if not self.total:
            return 0
        return min(99, int(100 * self.processed / self.total))

    @property
    def finished(self) -> bool:
        return self.status in ("done", "failed")
