"""The audit log: who changed what, and every trigger firing."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from app.clock import now
from app.extensions import db
from app.models.base import JSONType, UTCDateTime
from app.models.execution import BigId
from app.tenancy import FirmScoped, current_actor


class AuditLog(FirmScoped, db.Model):
    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_firm_created", "firm_id", "created_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    # "alice@example.com", "token:atk_abc123", "system", "public"
    actor: Mapped[str] = mapped_column(String(320), default="system")
    action: Mapped[str] = mapped_column(String(100))
    object_type: Mapped[str] = mapped_column(String(50), default="")
    object_id: Mapped[str] = mapped_column(String(50), default="")
    data: Mapped[dict] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)


def record(
    action: str, obj=None, *, data: dict | None = None, actor: str | None = None
) -> AuditLog:
    """Add an audit entry to the session (committed with the change)."""
    user_id, default_actor = current_actor()
    entry = AuditLog(
        user_id=user_id,
        actor=actor or default_actor,
        action=action,
        object_type=type(obj).__name__ if obj is not None else "",
        object_id=str(getattr(obj, "id", "") or "") if obj is not None else "",
        data=data or {},
    )
    if obj is not None and getattr(obj, "firm_id", None):
        entry.firm_id = obj.firm_id
    db.session.add(entry)
    return entry
