"""Workflows: the graph a marketer draws (nodes, edges) and its triggers."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint, event
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from app.clock import now
from app.extensions import db
from app.models.base import JSONType, Timestamps, UTCDateTime
from app.tenancy import FirmScoped

WORKFLOW_STATUSES = ("draft", "active", "paused", "archived")


class Workflow(FirmScoped, Timestamps, db.Model):
    __tablename__ = "workflows"
    __table_args__ = (
        Index("ix_workflows_firm_status", "firm_id", "status"),
        Index("ix_workflows_firm_updated", "firm_id", "updated_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(20), default="draft")
    # The number of the latest published version (0: never published).
    version: Mapped[int] = mapped_column(default=0)
    canvas_data: Mapped[dict] = mapped_column(JSONType, default=dict)
    allow_reentry: Mapped[bool] = mapped_column(default=False)
    exit_on_goal: Mapped[bool] = mapped_column(default=True)
    enroll_existing: Mapped[bool] = mapped_column(default=False)
    # When its messages may go out ({"days", "start", "end", "timezone"});
    # None: any time. Steps may override it (docs/SENDING.md).
    send_window: Mapped[dict | None] = mapped_column(JSONType, nullable=True)
    # 1 (highest) .. 10: which held message takes a freed frequency-cap slot.
    priority: Mapped[int] = mapped_column(default=5, server_default="5")
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    activated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    created_by = relationship("User", foreign_keys=[created_by_id])
    triggers: Mapped[list[WorkflowTrigger]] = relationship(
        back_populates="workflow", cascade="all, delete-orphan", order_by="WorkflowTrigger.id"
    )
    nodes: Mapped[list[WorkflowNode]] = relationship(
        back_populates="workflow", cascade="all, delete-orphan", order_by="WorkflowNode.id"
    )
    edges: Mapped[list[WorkflowEdge]] = relationship(
        back_populates="workflow", cascade="all, delete-orphan", order_by="WorkflowEdge.id"
    )

    def node_by_key(self, node_id: str) -> WorkflowNode | None:
        return next((node for node in self.nodes if node.node_id == node_id), None)

    def __repr__(self) -> str:
        return f"<Workflow {self.id} {self.name!r} {self.status}>"


class WorkflowTrigger(FirmScoped, Timestamps, db.Model):
    __tablename__ = "workflow_triggers"
    __table_args__ = (
        Index("ix_workflow_triggers_firm_type", "firm_id", "trigger_type", "is_active"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    workflow_id: Mapped[int] = mapped_column(
        ForeignKey("workflows.id", ondelete="CASCADE"), index=True
    )
    trigger_type: Mapped[str] = mapped_column(String(50))
    configuration: Mapped[dict] = mapped_column(JSONType, default=dict)
    is_active: Mapped[bool] = mapped_column(default=True)

    workflow: Mapped[Workflow] = relationship(back_populates="triggers")


class PublishedTrigger(FirmScoped, Timestamps, db.Model):
    """A trigger as the published version has it: what the event bus, the
    scheduler and the direct starts read. ``WorkflowTrigger`` rows are the
    draft, edited like nodes and edges; publishing (and only publishing,
    app/automation/lifecycle/publishing.py) writes these rows from them, so
    an edit of an active workflow's trigger waits for its publication
    (docs/ARCHITECTURE.md, "The route of a contact")."""

    __tablename__ = "published_triggers"
    __table_args__ = (
        Index("ix_published_triggers_firm_type", "firm_id", "trigger_type", "is_active"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    workflow_id: Mapped[int] = mapped_column(
        ForeignKey("workflows.id", ondelete="CASCADE"), index=True
    )
    # The id of the draft trigger it was published from. No foreign key:
    # deleting the draft trigger must not touch what is live until the
    # deletion is published.
    draft_id: Mapped[int | None] = mapped_column()
    trigger_type: Mapped[str] = mapped_column(String(50))
    configuration: Mapped[dict] = mapped_column(JSONType, default=dict)
    is_active: Mapped[bool] = mapped_column(default=True)
    # Date triggers: the moment up to which the scheduler has enrolled
    # contacts (its next run looks at what fell due after it).
    scheduled_through: Mapped[datetime | None] = mapped_column(UTCDateTime)

    workflow: Mapped[Workflow] = relationship()


class WorkflowNode(FirmScoped, Timestamps, db.Model):
    __tablename__ = "workflow_nodes"
    __table_args__ = (UniqueConstraint("workflow_id", "node_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    workflow_id: Mapped[int] = mapped_column(
        ForeignKey("workflows.id", ondelete="CASCADE"), index=True
    )
    # The node's key in the graph, stable across versions ("send_welcome").
    node_id: Mapped[str] = mapped_column(String(100))
    node_type: Mapped[str] = mapped_column(String(50))
    label: Mapped[str] = mapped_column(String(200), default="")
    position_x: Mapped[float] = mapped_column(default=0.0)
    position_y: Mapped[float] = mapped_column(default=0.0)
    configuration: Mapped[dict] = mapped_column(JSONType, default=dict)

    workflow: Mapped[Workflow] = relationship(back_populates="nodes")

    def __repr__(self) -> str:
        return f"<WorkflowNode {self.node_id} ({self.node_type})>"


class WorkflowEdge(FirmScoped, db.Model):
    __tablename__ = "workflow_edges"

    id: Mapped[int] = mapped_column(primary_key=True)
    workflow_id: Mapped[int] = mapped_column(
        ForeignKey("workflows.id", ondelete="CASCADE"), index=True
    )
    source_node_id: Mapped[int] = mapped_column(
        ForeignKey("workflow_nodes.id", ondelete="CASCADE"), index=True
    )
    target_node_id: Mapped[int] = mapped_column(
        ForeignKey("workflow_nodes.id", ondelete="CASCADE"), index=True
    )
    # None for a plain edge; "yes"/"no", "timeout", "variant".
    condition_type: Mapped[str | None] = mapped_column(String(20))
    condition_config: Mapped[dict] = mapped_column(JSONType, default=dict)
    label: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)

    workflow: Mapped[Workflow] = relationship(back_populates="edges")
    source_node: Mapped[WorkflowNode] = relationship(foreign_keys=[source_node_id])
    target_node: Mapped[WorkflowNode] = relationship(foreign_keys=[target_node_id])


class WorkflowVersion(FirmScoped, db.Model):
    """An immutable snapshot of a workflow's graph, taken at each publish."""

    __tablename__ = "workflow_versions"
    __table_args__ = (UniqueConstraint("workflow_id", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    workflow_id: Mapped[int] = mapped_column(
        ForeignKey("workflows.id", ondelete="CASCADE"), index=True
    )
    number: Mapped[int] = mapped_column()
    definition: Mapped[dict] = mapped_column(JSONType)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)

    created_by = relationship("User")


class ImmutableVersion(RuntimeError):
    """A published version was about to be changed."""


@event.listens_for(WorkflowVersion, "before_update")
def _versions_are_immutable(mapper, connection, target) -> None:
    """Executions run on a version's definition for weeks: changing it
    under them would move contacts through steps nobody published. A
    change is a new version (app.automation.lifecycle.publishing.publish)."""
    state = sa_inspect(target)
    changed = [attr.key for attr in state.attrs if attr.history.has_changes()]
    if changed:
        raise ImmutableVersion(
            f"version {target.number} of workflow {target.workflow_id} is immutable "
            f"(tried to change {', '.join(changed)})"
        )


@event.listens_for(Session, "do_orm_execute")
def _no_bulk_version_updates(state) -> None:
    """The same rule for ORM bulk ``update(WorkflowVersion)`` statements."""
    mapper = state.bind_mapper if state.is_update else None
    if mapper is not None and mapper.class_ is WorkflowVersion:
        raise ImmutableVersion("workflow versions are immutable (bulk UPDATE refused)")
