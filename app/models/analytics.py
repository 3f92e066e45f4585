"""Goals and stored analytics."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import Date, ForeignKey, Numeric, String, Text, UniqueConstraint
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
    # A day's completion times in fixed buckets (app/automation/analytics/
    # completion.py); None on rows stored before they were kept.
    completion_times: Mapped[dict | None] = mapped_column(JSONType, nullable=True)
    # A day's path outcomes and entry-week cohort counts, summed for a
    # period's funnels and cohorts; None on rows stored before them.
    breakdowns: Mapped[dict | None] = mapped_column(JSONType, nullable=True)
    goal_conversion_rate: Mapped[float] = mapped_column(default=0.0)
    computed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)

    workflow = relationship("Workflow")


# queued: the job is on its way; running; done; failed (``error`` says why).
FORECAST_STATUSES = ("queued", "running", "done", "failed")


class WorkflowForecast(FirmScoped, Timestamps, db.Model):
    """A forecast of a workflow's draft over the last ``days`` of recorded
    events (app/automation/analytics/forecast.py): its job's progress and,
    once done, its figures in ``result``."""

    __tablename__ = "workflow_forecasts"

    id: Mapped[int] = mapped_column(primary_key=True)
    workflow_id: Mapped[int] = mapped_column(
        ForeignKey("workflows.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    days: Mapped[int] = mapped_column()
    status: Mapped[str] = mapped_column(String(20), default="queued")
    total_events: Mapped[int | None] = mapped_column()
    processed_events: Mapped[int] = mapped_column(default=0)
    result: Mapped[dict] = mapped_column(JSONType, default=dict)
    error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    @property
    def percent(self) -> int:
        if self.status == "done":
            return 100
        if not self.total_events:
            return 0
        return min(99, int(100 * self.processed_events / self.total_events))

    @property
    def finished(self) -> bool:
        return self.status in ("done", "failed")


class SplitDecision(FirmScoped, db.Model):
    """The winner of a split's experiment, decided once
    (docs/EXPERIMENTS.md): the numbers it was decided on and the moment.
    Unique per workflow and split, so two workers deciding at once write one
    row; from then on every new entrant takes the winner's edge."""

    __tablename__ = "split_decisions"
    __table_args__ = (UniqueConstraint("workflow_id", "node_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    workflow_id: Mapped[int] = mapped_column(
        ForeignKey("workflows.id", ondelete="CASCADE"), index=True
    )
    node_id: Mapped[str] = mapped_column(String(100))
    winner: Mapped[str] = mapped_column(String(50))
    p_value: Mapped[float] = mapped_column()
    alpha: Mapped[float] = mapped_column()
    test: Mapped[str] = mapped_column(String(200))
    metric: Mapped[str] = mapped_column(String(120))
    # variant name -> {"entered": n, "conversions": n} at the decision.
    numbers: Mapped[dict] = mapped_column(JSONType, default=dict)
    decided_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)
