"""Working together on a workflow: comments and approval requests."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.clock import now
from app.extensions import db
from app.models.base import JSONType, UTCDateTime
from app.tenancy import FirmScoped

APPROVAL_STATUSES = ("pending", "approved", "rejected", "withdrawn")


class WorkflowComment(FirmScoped, db.Model):
    """A remark on a workflow, or on one of its steps when ``node_id`` is set.

    Comments name a node by its ``node_id`` (the graph key), not the row,
    so they survive versions and rollbacks that recreate node rows."""

    __tablename__ = "workflow_comments"
    __table_args__ = (Index("ix_workflow_comments_workflow_node", "workflow_id", "node_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    workflow_id: Mapped[int] = mapped_column(ForeignKey("workflows.id", ondelete="CASCADE"))
    node_id: Mapped[str | None] = mapped_column(String(100))
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)

    author = relationship("User")


class ApprovalRequest(FirmScoped, db.Model):
    """A marketer's request to publish a workflow, for an admin to decide.

    ``definition`` is the graph as it was when the request was made: an
    admin approves exactly what they were shown, so approving refuses when
    the workflow changed since."""

    __tablename__ = "workflow_approval_requests"
    __table_args__ = (Index("ix_approval_requests_firm_status", "firm_id", "status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    workflow_id: Mapped[int] = mapped_column(
        ForeignKey("workflows.id", ondelete="CASCADE"), index=True
    )
    status: Mapped[str] = mapped_column(String(20), default="pending")
    definition: Mapped[dict] = mapped_column(JSONType, default=dict)
    mapping: Mapped[dict] = mapped_column(JSONType, default=dict)
    keep_on_old_version: Mapped[bool] = mapped_column(Boolean, default=False)
    requested_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    note: Mapped[str] = mapped_column(Text, default="")
    # The version the approval published.
    version_number: Mapped[int | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)

    workflow = relationship("Workflow")
    requested_by = relationship("User", foreign_keys=[requested_by_id])
    decided_by = relationship("User", foreign_keys=[decided_by_id])
