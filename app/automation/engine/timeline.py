"""What happened to a contact in each workflow, step by step, and why.

The contact page and the execution page read the same story: each
execution's flow states (one per node visit: time, result, the branch taken
and the rule values that decided it, as stored by the engine from
``rules.explain``), with the e-mails, SMS and webhooks each step wrote to
the outbox and what the recipient did with them (opens, clicks...).
Loaded with one query per kind of row, never one per execution or step.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from app.extensions import db
from app.models import (
    ContactFlowState,
    OutboxMessage,
    TrackingEvent,
    WorkflowExecution,
    WorkflowNode,
)

# Where an engine may keep a decision's explanation inside action_result.
_EXPLANATION_KEYS = ("explanation", "explain", "why", "rules")


@dataclass
class MessageView:
    message: OutboxMessage
    events: list[TrackingEvent] = field(default_factory=list)

    def count(self, kind: str, machine: bool = False) -> int:
        """A person's events of ``kind`` (or, ``machine``, a proxy's or scanner's)."""
        return sum(1 for e in self.events if e.kind == kind and bool(e.machine) == machine)

    @property
    def by_machines(self) -> int:
        return self.count("open", machine=True) + self.count("click", machine=True)

    @property
    def opened(self) -> int:
        return self.count("open")

    @property
    def clicked(self) -> int:
        return self.count("click")


@dataclass
class StepView:
    state: ContactFlowState
    label: str
    messages: list[MessageView] = field(default_factory=list)
    # The name of the step it went on to ("" at the end).
    next_label: str = ""

    @property
    def explanation(self) -> list[dict] | None:
        """The rule-by-rule verdicts that chose this step's branch, if any."""
        result = self.state.action_result or {}
        if not isinstance(result, dict):
            return None
        for key in _EXPLANATION_KEYS:
            value = result.get(key)
            if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
                return value
        return None

    @property
    def verdict(self) -> Any:
        result = self.state.action_result or {}
        return result.get("result") if isinstance(result, dict) else None

    @property
    def details(self) -> dict:
        """Everything else the step recorded (what it did or would do)."""
        result = self.state.action_result or {}
        if not isinstance(result, dict):
            return {"result": result}
        skip = {*_EXPLANATION_KEYS, "result"} if self.explanation is not None else set()
        # Empty values and a false "test" flag are noise for a marketer.
        return {
            key: value
            for key, value in result.items()
            if key not in skip
            and value not in (None, "", [], {})
            and not (key == "test" and value is False)
        }


@dataclass
class ExecutionView:
    execution: WorkflowExecution
    steps: list[StepView] = field(default_factory=list)
    # Messages not tied to a recorded step (should be rare: kept visible).
    loose_messages: list[MessageView] = field(default_factory=list)

    @property
    def message_count(self) -> int:
        return sum(len(step.messages) for step in self.steps) + len(self.loose_messages)


def timelines(executions: Iterable[WorkflowExecution]) -> list[ExecutionView]:
    """Timelines for these executions, in the order given (four queries)."""
    executions = list(executions)
    if not executions:
        return []
    ids = [execution.id for execution in executions]
    workflow_ids = {execution.workflow_id for execution in executions}

    labels = {
        (workflow_id, node_id): label
        for workflow_id, node_id, label in db.session.execute(
            select(WorkflowNode.workflow_id, WorkflowNode.node_id, WorkflowNode.label).where(
                WorkflowNode.workflow_id.in_(workflow_ids)
            )
        )
    }
    states = db.session.scalars(
        select(ContactFlowState)
        .where(ContactFlowState.execution_id.in_(ids))
        .order_by(ContactFlowState.entered_at, ContactFlowState.id)
    ).all()
    messages = db.session.scalars(
        select(OutboxMessage)
        .where(OutboxMessage.execution_id.in_(ids))
        .order_by(OutboxMessage.created_at, OutboxMessage.id)
    ).all()
    events_by_message: dict[int, list[TrackingEvent]] = defaultdict(list)
    if messages:
        for event in db.session.scalars(
            select(TrackingEvent)
            .where(TrackingEvent.outbox_id.in_([message.id for message in messages]))
            .order_by(TrackingEvent.created_at, TrackingEvent.id)
        ):
            events_by_message[event.outbox_id].append(event)

    message_views: dict[tuple, list[MessageView]] = defaultdict(list)
    for message in messages:
        key = (message.execution_id, message.node_id, message.visit)
        message_views[key].append(MessageView(message, events_by_message.get(message.id, [])))

    views = {execution.id: ExecutionView(execution) for execution in executions}
    workflow_of = {execution.id: execution.workflow_id for execution in executions}
    for state in states:
        key = (state.execution_id, state.node_id, state.visit)
        workflow_id = workflow_of[state.execution_id]
        label = labels.get((workflow_id, state.node_id)) or state.node_id
        step = StepView(state, label, message_views.pop(key, []))
        if state.next_node:
            step.next_label = labels.get((workflow_id, state.next_node)) or state.next_node
        views[state.execution_id].steps.append(step)
    for (execution_id, _node, _visit), leftovers in message_views.items():
        views[execution_id].loose_messages.extend(leftovers)
    return [views[execution.id] for execution in executions]
