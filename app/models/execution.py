"""Executions: one contact's walk through one workflow version."""

from __future__ import annotations

import hashlib
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    event,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.clock import now
from app.extensions import db
from app.models import partitioning
from app.models.base import JSONType, Timestamps, UTCDateTime
from app.tenancy import FirmScoped

EXECUTION_STATUSES = ("running", "waiting", "completed", "goal_reached", "failed", "canceled")
ACTIVE_STATUSES = ("running", "waiting")
ONE_ACTIVE_WHERE = "status IN ('running', 'waiting') AND NOT test_mode"
CONDITION_WAIT_WHERE = "status = 'waiting' AND wait_reason = 'condition'"
# A visit still open: waiting, held by a send gate, or failed awaiting its
# retry (the flow states a resuming execution reads back, engine/state.py).
OPEN_VISIT_WHERE = "action_status IN ('waiting', 'deferred', 'failed')"
FINISHED_STATUSES = ("completed", "goal_reached", "failed", "canceled")

# BIGINT on PostgreSQL, INTEGER (the rowid alias) on SQLite.
BigId = BigInteger().with_variant(Integer(), "sqlite")


def idempotency_key_for(workflow_id: int, contact_id: int, trigger_id, event_id) -> str:
    """SHA-256 of what makes one enrollment unique."""
    raw = f"{workflow_id}:{contact_id}:{trigger_id or ''}:{event_id or ''}"
    return hashlib.sha256(raw.encode()).hexdigest()


class WorkflowExecution(FirmScoped, Timestamps, db.Model):
    """The database is the source of truth: ``status``, ``current_node`` and
    ``wake_at`` say what happens next; a job only carries the id."""

    __tablename__ = "workflow_executions"
    __table_args__ = (
        # The sweeper's and the engine's claim queries.
        Index("ix_executions_status_wake", "status", "wake_at"),
        # The engine's claim walks ready rows in id order and stops at its
        # limit; without this it sorted every running row per claim (100,000
        # after a fan-out or a mass wake: seconds per claim).
        Index(
            "ix_executions_running_id",
            "id",
            postgresql_where=text("status = 'running'"),
            sqlite_where=text("status = 'running'"),
        ),
        # Executions waiting for a condition on a contact, woken when the
        # contact changes (engine/wakes.py); small, and empty when no
        # workflow waits for a condition.
        Index(
            "ix_executions_condition_waits",
            "contact_id",
            postgresql_where=text(CONDITION_WAIT_WHERE),
            sqlite_where=text(CONDITION_WAIT_WHERE),
        ),
        Index("ix_executions_firm_workflow_status", "firm_id", "workflow_id", "status"),
        Index("ix_executions_workflow_contact", "workflow_id", "contact_id"),
        # A contact is inside a workflow at most once at a time (test runs
        # aside): enrollments that race (a fan-out and an event, two events
        # in a re-entry workflow) cannot both start it, whatever their size,
        # and a start that rolls back leaves the way free for the other.
        Index(
            "uq_executions_one_active_per_contact",
            "workflow_id",
            "contact_id",
            unique=True,
            postgresql_where=text(ONE_ACTIVE_WHERE),
            sqlite_where=text(ONE_ACTIVE_WHERE),
        ),
        Index("ix_executions_firm_created", "firm_id", "created_at"),
        # Analytics: a workflow's executions started in a period, and its
        # (few) test runs, which never count.
        Index("ix_executions_workflow_started", "workflow_id", "started_at"),
        Index(
            "ix_executions_workflow_test_runs",
            "workflow_id",
            postgresql_where=text("test_mode"),
            sqlite_where=text("test_mode"),
        ),
        # Room in each page for the engine's claim (lease columns only, not
        # indexed) to be a HOT update: no new entry in any index.
        {"postgresql_with": {"fillfactor": 70}},
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    # No index of its own: the (firm_id, ...) indexes above serve it, and
    # each index costs every status change (a non-HOT update) an entry.
    firm_id: Mapped[int] = mapped_column(ForeignKey("firms.id", ondelete="CASCADE"))
    workflow_id: Mapped[int] = mapped_column(ForeignKey("workflows.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(default=1)
    contact_id: Mapped[int] = mapped_column(
        ForeignKey("contacts.id", ondelete="CASCADE"), index=True
    )
    status: Mapped[str] = mapped_column(String(20), default="running")
    # The node_id (graph key) the execution is at or waiting on.
    current_node: Mapped[str | None] = mapped_column(String(100))
    execution_path: Mapped[list] = mapped_column(JSONType, default=list)
    context_data: Mapped[dict] = mapped_column(JSONType, default=dict)
    trigger_type: Mapped[str] = mapped_column(String(50), default="manual")
    # The published trigger that started it (app/models/workflow.py).
    trigger_id: Mapped[int | None] = mapped_column(
        ForeignKey("published_triggers.id", ondelete="SET NULL")
    )
    event_id: Mapped[str | None] = mapped_column(String(200))
    goal_reached: Mapped[bool] = mapped_column(default=False)
    idempotency_key: Mapped[str] = mapped_column(String(64), unique=True)
    test_mode: Mapped[bool] = mapped_column(default=False)

    # Scheduling: when a waiting execution is due, why it waits, and the
    # lease a worker holds while it advances the execution.
    wake_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    wait_reason: Mapped[str | None] = mapped_column(String(30))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    lease_owner: Mapped[str | None] = mapped_column(String(100))
    # Attempts at the current node (retries with backoff).
    attempts: Mapped[int] = mapped_column(default=0)
    # Claims that found the previous lease expired, not given back: its
    # worker died, froze or lost the database mid-batch. Again and again on
    # one execution is a step that kills its worker (the monitor says so).
    lease_expiries: Mapped[int] = mapped_column(server_default="0")
    steps_taken: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(Text)

    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    workflow = relationship("Workflow")
    contact = relationship("Contact")
    flow_states: Mapped[list[ContactFlowState]] = relationship(
        back_populates="execution",
        order_by="ContactFlowState.id",
        cascade="all, delete-orphan",
        passive_deletes=True,
    )

    def compute_idempotency_key(self, event_id=None) -> str:
        """SHA-256 of workflow, contact, trigger and event id."""
        return idempotency_key_for(
            self.workflow_id, self.contact_id, self.trigger_id, event_id or self.event_id
        )

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED_STATUSES

    def __repr__(self) -> str:
        return f"<WorkflowExecution {self.id} wf={self.workflow_id} {self.status} at {self.current_node}>"


class ContactFlowState(FirmScoped, db.Model):
    """One visit of one node by one execution (the analytics' raw material)."""

    __tablename__ = "contact_flow_states"
    __table_args__ = (
        UniqueConstraint("execution_id", "node_id", "visit"),
        Index("ix_flow_states_workflow_node", "workflow_id", "node_id"),
        Index("ix_flow_states_workflow_entered", "workflow_id", "entered_at"),
        # The open visits of the executions a batch resumes: without it the
        # read went through the whole month's partition whenever its
        # statistics predated a bulk hold (100,000 messages held at a send
        # window, benchmarks/pacing.py: 15-50 ms a batch, growing with the
        # month). Small: a visit leaves it when it closes.
        Index(
            "ix_flow_states_open_visits",
            "execution_id",
            postgresql_where=text(OPEN_VISIT_WHERE),
            sqlite_where=text(OPEN_VISIT_WHERE),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    execution_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("workflow_executions.id", ondelete="CASCADE")
    )
    # Copies of the execution's firm and workflow, without foreign keys or
    # an index of their own: the execution's cascade removes flow states
    # with their execution (and a workflow or firm removes its executions),
    # and every query reaches them by workflow or execution. This is the
    # engine's busiest insert; two fewer parent-row checks per row halve
    # its cost on PostgreSQL.
    firm_id: Mapped[int] = mapped_column(Integer)
    workflow_id: Mapped[int] = mapped_column(Integer)
    node_id: Mapped[str] = mapped_column(String(100))
    node_type: Mapped[str] = mapped_column(String(50), default="")
    visit: Mapped[int] = mapped_column(default=1)
    entered_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)
    exited_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # success, failed, skipped, waiting, pending
    action_status: Mapped[str] = mapped_column(String(20), default="pending")
    action_result: Mapped[dict] = mapped_column(JSONType, default=dict)
    variant: Mapped[str | None] = mapped_column(String(50))
    # The branch taken on exit ("yes", "no", "timeout", a variant) and where to.
    branch: Mapped[str | None] = mapped_column(String(50))
    next_node: Mapped[str | None] = mapped_column(String(100))

    execution: Mapped[WorkflowExecution] = relationship(back_populates="flow_states")


# PostgreSQL: partitioned by month (app/models/partitioning.py).
event.listen(ContactFlowState.__table__, "after_create", partitioning.after_create)


class DeadLetter(FirmScoped, db.Model):
    """A failed execution's error, kept for inspection and bulk retry."""

    __tablename__ = "dead_letters"

    id: Mapped[int] = mapped_column(primary_key=True)
    execution_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("workflow_executions.id", ondelete="CASCADE"), index=True
    )
    workflow_id: Mapped[int] = mapped_column(
        ForeignKey("workflows.id", ondelete="CASCADE"), index=True
    )
    node_id: Mapped[str | None] = mapped_column(String(100))
    error: Mapped[str] = mapped_column(Text, default="")
    attempts: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now, index=True)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    execution = relationship("WorkflowExecution")
