"""What a node executor gets (a :class:`Step`) and gives back (an
:class:`Outcome`); what a walk collects for the write-back (:class:`Effects`).

Executors never write to the database: they change the batch's in-memory
facts and record the writes on ``step.effects``; the engine writes every
execution's effects together, or none of them (engine_write).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from app.automation.templating.render import render_text


@dataclass
class Outcome:
    status: str = "success"  # success | skipped | failed | waiting | deferred
    result: dict = field(default_factory=dict)
    branch: str | None = None  # the condition_type of the exit taken
    variant: str | None = None
    wake_at: datetime | None = None
    wait_reason: str | None = None
    error: str | None = None
    retryable: bool = True
    goal: bool = False

    @classmethod
    def wait(cls, wake_at: datetime | None, reason: str, **result) -> Outcome:
        return cls(status="waiting", wake_at=wake_at, wait_reason=reason, result=result)

    @classmethod
    def defer(cls, until: datetime, reason: str, **result) -> Outcome:
        """Held by a send gate: the execution waits at this step until
        ``until`` (``wait_reason`` "held"), then the step runs again and
        passes the gates again (docs/SENDING.md)."""
        return cls(
            status="deferred",
            wake_at=until,
            wait_reason="held",
            result={**result, "reason": reason, "held_until": until.isoformat()},
        )

    @classmethod
    def fail(cls, error: str, retryable: bool = False, **result) -> Outcome:
        return cls(status="failed", error=error, retryable=retryable, result=result)


@dataclass
class Effects:
    """One execution's writes, kept apart so that an execution whose lease
    was lost (or that was canceled) can be left out of the write-back."""

    execution_id: int
    firm_id: int
    contact_id: int | None = None
    workflow_id: int | None = None
    test_mode: bool = False
    flow: list[dict] = field(default_factory=list)
    outbox: list[dict] = field(default_factory=list)
    tag_adds: list[tuple[int, str]] = field(default_factory=list)  # (contact, name)
    tag_removes: list[tuple[int, str]] = field(default_factory=list)
    list_adds: list[tuple[int, int]] = field(default_factory=list)  # (contact, list)
    list_removes: list[tuple[int, int]] = field(default_factory=list)
    # contact id -> {"score": delta, "set": {column: value}, "custom": {key: value}}
    contact_changes: dict[int, dict] = field(default_factory=dict)
    tasks: list[dict] = field(default_factory=list)
    deals_new: list[dict] = field(default_factory=list)
    deal_updates: list[tuple[int, dict]] = field(default_factory=list)
    notifications: list[dict] = field(default_factory=list)
    events: list[dict] = field(default_factory=list)
    dead_letter: dict | None = None
    execution: dict = field(default_factory=dict)
    steps: int = 0
    delivery_pending: bool = False
    # (node type, outcome status, seconds in the executor) per step run,
    # for the step metrics (app/automation/operations/metrics.py).
    step_log: list[tuple[str, str, float]] = field(default_factory=list)
    # REST hook events of this walk ("execution.started", ...), written as
    # deliveries with the batch (app/automation/hooks/facts.py).
    hook_facts: tuple[str, ...] = ()


class NodeView(dict):
    """A node as plain data that also reads like an object
    (``node.node_id`` or ``node["node_id"]``)."""

    __getattr__ = dict.get


class ExecutionView(dict):
    """The execution as plain data (id, firm_id, workflow_id, contact_id,
    version, test_mode, context_data), readable as attributes too."""

    __getattr__ = dict.get


@dataclass
class Step:
    row: dict  # the claimed execution row
    workflow: Any  # engine_state.WorkflowInfo
    node: Any  # engine_state.NodeSpec
    visit: int
    state: Any  # engine_state.BatchState
    contact: Any  # engine_state.ContactState
    effects: Effects
    context: dict  # the execution's context data (mutable)
    moment: datetime
    resuming: str | None = None  # the wait_reason being resumed
    waiting: dict | None = None  # the waiting flow state being resumed
    test_mode: bool = False

    @property
    def config(self) -> Any:
        return self.node.config

    @property
    def firm_id(self) -> int:
        return self.row["firm_id"]

    @property
    def contact_id(self) -> int:
        return self.row["contact_id"]

    def facts(self):
        return self.state.facts(self.contact, self.row, self.context)

    def execution_view(self) -> ExecutionView:
        row = self.row
        return ExecutionView(
            id=row["id"],
            firm_id=row["firm_id"],
            workflow_id=row["workflow_id"],
            contact_id=row["contact_id"],
            version=row["version"],
            test_mode=self.test_mode,
            context_data=self.context,
            current_node=self.node.node_id,
            trigger_type=row.get("trigger_type"),
            started_at=row.get("started_at"),
        )

    def node_view(self) -> NodeView:
        return NodeView(
            node_id=self.node.node_id,
            node_type=self.node.node_type,
            configuration=self.node.configuration,
            config=self.node.config,
        )

    def template_context(self) -> dict:
        contact = dict(self.contact.contact)
        contact["tags"] = sorted(self.contact.tags)
        row = self.row
        return {
            "contact": contact,
            "deal": dict(self.contact.deal or {}),
            "workflow": dict(self.workflow.as_dict),
            "execution": {
                "id": row["id"],
                "trigger_type": row.get("trigger_type"),
                "started_at": row.get("started_at"),
                "test_mode": self.test_mode,
            },
            "context": dict(self.context),
        }

    def render(self, text: str | None) -> str:
        """A templated text (task title, notification, deal title) rendered in
        the templating sandbox (app/automation/templating/)."""
        if not text or ("{{" not in text and "{%" not in text):
            return text or ""
        return render_text(text, self.template_context())


def would(step: Step, **what) -> Outcome | None:
    """In test mode, the outcome saying what the step would have done."""
    if step.test_mode:
        return Outcome(result={"test": True, "would": what})
    return None
