"""Everyday workflow operations shared by the browser pages and the API:
create, rename, change settings (and archive), duplicate, delete, and the
per-row figures of the list.

Each public function validates, changes, records an audit entry and commits
once. Errors are :class:`WorkflowOpError` with the field they concern, so a
form can show them inline and the API can answer 400/409 naming the field.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import case, func, select

from app.automation.graph import edit_history
from app.automation.graph.editing import label_of
from app.automation.lifecycle.publishing import activate_workflow
from app.clock import ensure_utc
from app.extensions import db
from app.models import (
    Workflow,
    WorkflowEdge,
    WorkflowExecution,
    WorkflowGoal,
    WorkflowNode,
    WorkflowTrigger,
)
from app.models.audit import record
from app.models.execution import ACTIVE_STATUSES

NAME_MAX = 200
# The API documents 10,000 (its schema reads these two limits).
DESCRIPTION_MAX = 10000
# What a new workflow may set beside its name and description.
SETTINGS = (
    "canvas_data",
    "allow_reentry",
    "exit_on_goal",
    "enroll_existing",
    "send_window",
    "priority",
)


class WorkflowOpError(ValueError):
    """A refused operation; ``field`` names the input at fault (or None)."""

    def __init__(
        self,
        message: str,
        field: str | None = None,
        conflict: bool = False,
        detail: str | None = None,
    ):
        super().__init__(message)
        self.message = message
        self.field = field
        # What is wrong with ``field`` in a word, for the API's ``fields``.
        self.detail = detail
        # True when the request was fine but the workflow's state forbids it (409).
        self.conflict = conflict


def clean_name(name: str | None) -> str:
    cleaned = " ".join((name or "").split())
    if not cleaned:
        raise WorkflowOpError("Give the workflow a name.", field="name")
    if len(cleaned) > NAME_MAX:
        raise WorkflowOpError(f"Keep the name under {NAME_MAX} characters.", field="name")
    return cleaned


def clean_description(description: str | None) -> str:
    cleaned = (description or "").strip()
    if len(cleaned) > DESCRIPTION_MAX:
        raise WorkflowOpError(
            f"Keep the description under {DESCRIPTION_MAX} characters.", field="description"
        )
    return cleaned


def create_workflow(
    name: str | None, description: str | None = "", user=None, **settings
) -> Workflow:
    """A new, empty draft owned by the current firm; ``settings`` among
    :data:`SETTINGS` (the API's create takes them, the page does not)."""
    unknown = sorted(set(settings) - set(SETTINGS))
    if unknown:
        raise WorkflowOpError(f"Unknown setting {unknown[0]!r}.", field=unknown[0])
    workflow = Workflow(
        name=clean_name(name),
        description=clean_description(description),
        status="draft",
        created_by_id=getattr(user, "id", None),
        **{key: value for key, value in settings.items() if value is not None},
    )
    db.session.add(workflow)
    db.session.flush()
    record("workflow.created", workflow, data={"name": workflow.name})
    db.session.commit()
    return workflow


def rename_workflow(workflow: Workflow, name: str | None, user=None) -> Workflow:
    new_name = clean_name(name)
    if new_name != workflow.name:
        old = workflow.name
        workflow.name = new_name
        record("workflow.renamed", workflow, data={"from": old, "to": new_name})
        db.session.commit()
    return workflow


def update_workflow(
    workflow: Workflow, changes: dict[str, Any], *, via: str | None = None, user=None
) -> Workflow:
    """Change a workflow's name, description and settings (:data:`SETTINGS`)
    from the builder's settings panel or the API, or archive it / bring it
    back to draft (``status``). One audit entry (``workflow.updated``) and
    one undo entry ("Change workflow settings"; the status is not kept for
    undo: archiving is a lifecycle step). ``None`` leaves a field as it is,
    except ``send_window`` (none). Commits."""
    changes = dict(changes)
    unknown = sorted(set(changes) - set(SETTINGS) - {"name", "description", "status"})
    if unknown:
        raise WorkflowOpError(f"Unknown setting {unknown[0]!r}.", field=unknown[0])
    if changes.get("name") is not None:
        changes["name"] = clean_name(changes["name"])
    if changes.get("description") is not None:
        changes["description"] = clean_description(changes["description"])
    status = changes.get("status")
    if status == "archived" and workflow.status == "active":
        raise WorkflowOpError(
            "pause the workflow before archiving it",
            field="status",
            conflict=True,
            detail="workflow is active",
        )
    if status == "draft" and workflow.status not in ("draft", "archived"):
        raise WorkflowOpError(
            f"a {workflow.status} workflow goes back to work with activate, not as a draft",
            field="status",
            conflict=True,
            detail=f"workflow is {workflow.status}",
        )
    if status not in (None, "draft", "archived"):
        raise WorkflowOpError("activate and pause have their own steps", field="status")
    before = edit_history.settings_state(workflow)
    for name, value in changes.items():
        if value is None and name != "send_window":
            continue
        setattr(workflow, name, value)
    record("workflow.updated", workflow, data={"fields": sorted(changes)})
    edit_history.record_change(
        workflow.id,
        label_of("change workflow settings", via),
        {"settings": {"workflow": before}},
        {"settings": {"workflow": edit_history.settings_state(workflow)}},
        user,
    )
    db.session.commit()
    return workflow


def delete_workflow(workflow: Workflow, user=None) -> None:
    """Delete a workflow that is not live, with its executions and history.

    An active workflow is refused: contacts are inside it and triggers would
    stop silently. Pausing first makes that a deliberate choice."""
    if workflow.status == "active":
        raise WorkflowOpError("Pause the workflow before deleting it.", conflict=True)
    record("workflow.deleted", workflow, data={"name": workflow.name})
    db.session.delete(workflow)
    db.session.commit()


def duplicate_workflow(workflow: Workflow, user=None) -> Workflow:
    """A draft copy: same graph (node ids kept), triggers, goals and settings;
    no executions, no versions. Copied triggers only fire once the copy is
    activated."""
    copy = Workflow(
        name=_copy_name(workflow.name),
        description=workflow.description or "",
        status="draft",
        version=0,
        canvas_data=dict(workflow.canvas_data or {}),
        allow_reentry=workflow.allow_reentry,
        exit_on_goal=workflow.exit_on_goal,
        enroll_existing=workflow.enroll_existing,
        send_window=workflow.send_window,
        priority=workflow.priority,
        created_by_id=getattr(user, "id", None),
    )
    db.session.add(copy)
    db.session.flush()

    new_pk: dict[int, int] = {}
    for node in workflow.nodes:
        clone = WorkflowNode(
            workflow_id=copy.id,
            node_id=node.node_id,
            node_type=node.node_type,
            label=node.label,
            position_x=node.position_x,
            position_y=node.position_y,
            configuration=dict(node.configuration or {}),
        )
        db.session.add(clone)
        db.session.flush()
        new_pk[node.id] = clone.id
    for edge in workflow.edges:
        if edge.source_node_id not in new_pk or edge.target_node_id not in new_pk:
            continue
        db.session.add(
            WorkflowEdge(
                workflow_id=copy.id,
                source_node_id=new_pk[edge.source_node_id],
                target_node_id=new_pk[edge.target_node_id],
                condition_type=edge.condition_type,
                condition_config=dict(edge.condition_config or {}),
                label=edge.label,
            )
        )
    for trigger in workflow.triggers:
        db.session.add(
            WorkflowTrigger(
                workflow_id=copy.id,
                trigger_type=trigger.trigger_type,
                configuration=dict(trigger.configuration or {}),
                is_active=trigger.is_active,
            )
        )
    goals = db.session.scalars(select(WorkflowGoal).where(WorkflowGoal.workflow_id == workflow.id))
    for goal in goals:
        db.session.add(
            WorkflowGoal(
                workflow_id=copy.id,
                name=goal.name,
                goal_node_id=new_pk.get(goal.goal_node_id) if goal.goal_node_id else None,
                goal_value=goal.goal_value,
            )
        )
    record("workflow.duplicated", copy, data={"from": workflow.id})
    db.session.commit()
    db.session.refresh(copy)
    return copy


def activate_and_enroll(workflow: Workflow, user=None):
    """Go live (``Workflow.activate``: validation, version snapshot), commit,
    then honour "enroll existing contacts on activation". Returns
    ``(version, contacts enrolled)``. Raises what ``activate`` raises
    (``WorkflowInvalid`` with the problems, ``ApprovalRequired``...)."""
    version = activate_workflow(workflow, user)
    db.session.commit()
    enrolled = 0
    if workflow.enroll_existing:
        # Idempotent per contact, so activating again enrolls nobody twice.
        from app.automation.triggers.helpers import enroll_existing

        enrolled = enroll_existing(workflow)
    return version, enrolled


def _copy_name(name: str) -> str:
    return ("Copy of " + name)[:NAME_MAX]


@dataclass
class WorkflowFigures:
    """What the list shows per workflow beside its own columns."""

    triggers: list[tuple[str, bool]]
    # The latest edit of a step or trigger (the builder saves them one by one).
    last_edit: datetime | None = None
    active_now: int = 0
    completed: int = 0
    goal_reached: int = 0
    total: int = 0

    @property
    def conversion(self) -> float | None:
        """Goal conversion in percent of all (non-test) executions; None
        before anyone entered, so the list can show a dash rather than 0%."""
        if not self.total:
            return None
        return round(100.0 * self.goal_reached / self.total, 1)


def _note_edit(figure: WorkflowFigures, moment: datetime | None) -> None:
    moment = ensure_utc(moment) if moment is not None else None
    if moment is not None and (figure.last_edit is None or moment > figure.last_edit):
        figure.last_edit = moment


def list_figures(workflow_ids: list[int]) -> dict[int, WorkflowFigures]:
    """Figures for a page of workflows in three grouped queries, whatever its size."""
    figures = {wid: WorkflowFigures(triggers=[]) for wid in workflow_ids}
    if not workflow_ids:
        return figures
    trigger_rows = db.session.execute(
        select(
            WorkflowTrigger.workflow_id,
            WorkflowTrigger.trigger_type,
            WorkflowTrigger.is_active,
            WorkflowTrigger.updated_at,
        )
        .where(WorkflowTrigger.workflow_id.in_(workflow_ids))
        .order_by(WorkflowTrigger.id)
    )
    for workflow_id, trigger_type, is_active, updated_at in trigger_rows:
        figures[workflow_id].triggers.append((trigger_type, bool(is_active)))
        _note_edit(figures[workflow_id], updated_at)
    node_edits = db.session.execute(
        select(WorkflowNode.workflow_id, func.max(WorkflowNode.updated_at))
        .where(WorkflowNode.workflow_id.in_(workflow_ids))
        .group_by(WorkflowNode.workflow_id)
    )
    for workflow_id, updated_at in node_edits:
        _note_edit(figures[workflow_id], updated_at)

    status = WorkflowExecution.status
    counts = db.session.execute(
        select(
            WorkflowExecution.workflow_id,
            func.count(),
            func.sum(case((status.in_(ACTIVE_STATUSES), 1), else_=0)),
            func.sum(case((status.in_(("completed", "goal_reached")), 1), else_=0)),
            func.sum(case((status == "goal_reached", 1), else_=0)),
        )
        .where(
            WorkflowExecution.workflow_id.in_(workflow_ids),
            WorkflowExecution.test_mode.is_(False),
        )
        .group_by(WorkflowExecution.workflow_id)
    )
    for workflow_id, total, active, completed, reached in counts:
        row = figures[workflow_id]
        row.total = int(total or 0)
        row.active_now = int(active or 0)
        row.completed = int(completed or 0)
        row.goal_reached = int(reached or 0)
    return figures
