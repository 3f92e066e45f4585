"""Goals and stored analytics."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import Date, ForeignKey, Numeric, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.clock import now
from app.extensions import db
from app.models.base import JSONType, Timestamps, UTCDateTime
from app.tenancy import FirmScoped


class WorkflowGoal(FirmScoped, Timestamps, db.Model):
    __tablename__ = "workflow_goals"

    id: Mapped[int] = mapped_column(primary_key=True)
    workflow_id: Mapped[int] = mapped_column(
        ForeignKey("workflows.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    goal_node_id: Mapped[int | None] = mapped_column(
        ForeignKey("workflow_nodes.id", ondelete="SET NULL"), index=True
    )
    goal_value: Mapped[Decimal] = mapped_column(Numeric(14, 2), default=Decimal("0"))
    total_conversions: Mapped[int] = mapped_column(default=0)
    conversion_rate: Mapped[float] = mapped_column(default=0.0)
    total_value: Mapped[Decimal] = mapped_column(Numeric(16, 2), default=Decimal("0"))

    workflow = relationship("Workflow")
    goal_node = relationship("WorkflowNode")


class WorkflowAnalytics(FirmScoped, db.Model):
    __tablename__ = "workflow_analytics"
    __table_args__ = (UniqueConstraint("workflow_id", "period_start", "period_end"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    workflow_id: Mapped[int] = mapped_column(
        ForeignKey("workflows.id", ondelete="CASCADE"), index=True
    )
    period_start: Mapped[date] = mapped_column(Date)
    period_end: Mapped[date] = mapped_column(Date)
    total_executions: Mapped[int] = mapped_column(default=0)
    completed_executions: Mapped[int] = mapped_column(default=0)
    failed_executions: Mapped[int] = mapped_column(default=0)
    goal_reached_executions: Mapped[int] = mapped_column(default=0)
    avg_completion_time_seconds: Mapped[float | None] = mapped_column()
    median_completion_time_seconds: Mapped[float | None] = mapped_column()
    drop_off_points: Mapped[list] = mapped_column(JSONType, default=list)
    node_performance: Mapped[dict] = mapped_column(JSONType, default=dict)
    goal_conversion_rate: Mapped[float] = mapped_column(default=0.0)
    computed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)

    workflow = relationship("Workflow")
