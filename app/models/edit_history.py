"""The builder's undo history: one row per canvas edit of a workflow."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from app.clock import now
from app.extensions import db
from app.models.base import JSONType, UTCDateTime
from app.tenancy import FirmScoped


class WorkflowEdit(FirmScoped, db.Model):
    """A canvas edit as the steps and connections it touched, before and
    after (``patch = {"before": part, "after": part}``, each part holding
    ``nodes`` by node_id and ``edges`` by "source|port", null where the
    thing did not exist). Undo writes ``before`` back and sets ``undone``;
    redo writes ``after``; a new edit drops the undone rows."""

    __tablename__ = "workflow_edits"
    __table_args__ = (Index("ix_workflow_edits_workflow_id_id", "workflow_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    workflow_id: Mapped[int] = mapped_column(ForeignKey("workflows.id", ondelete="CASCADE"))
    label: Mapped[str] = mapped_column(String(200))
    patch: Mapped[dict] = mapped_column(JSONType, default=dict)
    undone: Mapped[bool] = mapped_column(default=False)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)
