"""A workflow's goals (a named conversion, with a value, reached at a goal
step): create, change, delete. The API's goal endpoints call these; a
goal's analytics are ``app/automation/analytics/goals.py``.

Each function checks, changes, writes one audit entry (``goal.created``,
``goal.updated``, ``goal.deleted``) and commits. A refusal is a
:class:`~app.automation.lifecycle.workflow_ops.WorkflowOpError` naming the
field.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from app.automation.lifecycle.workflow_ops import WorkflowOpError
from app.extensions import db
from app.models import Workflow, WorkflowGoal, WorkflowNode
from app.models.audit import record

FIELDS = ("name", "goal_node", "goal_value")


def _node_id(workflow_id: int, node: WorkflowNode | None) -> int | None:
    """A goal's step must be one of the goal's workflow."""
    if node is None:
        return None
    if node.workflow_id != workflow_id:
        raise WorkflowOpError("is a node of another workflow", field="goal_node")
    return node.id


def create_goal(
    workflow: Workflow,
    name: str,
    goal_node: WorkflowNode | None = None,
    goal_value: Decimal | int = 0,
) -> WorkflowGoal:
    goal = WorkflowGoal(
        workflow_id=workflow.id,
        name=name,
        goal_node_id=_node_id(workflow.id, goal_node),
        goal_value=goal_value,
    )
    db.session.add(goal)
    db.session.flush()
    record("goal.created", goal, data={"workflow": workflow.id, "name": name})
    db.session.commit()
    return goal


def update_goal(goal: WorkflowGoal, changes: dict[str, Any]) -> WorkflowGoal:
    """``changes`` among :data:`FIELDS`; ``goal_node`` is a node row (or
    None: no step), a ``None`` name or value leaves it as it is."""
    unknown = sorted(set(changes) - set(FIELDS))
    if unknown:
        raise WorkflowOpError(f"unknown field {unknown[0]!r}", field=unknown[0])
    if "goal_node" in changes:
        goal.goal_node_id = _node_id(goal.workflow_id, changes["goal_node"])
    for name in ("name", "goal_value"):
        if changes.get(name) is not None:
            setattr(goal, name, changes[name])
    record("goal.updated", goal, data={"fields": sorted(changes)})
    db.session.commit()
    return goal


def delete_goal(goal: WorkflowGoal) -> None:
    record("goal.deleted", goal, data={"workflow": goal.workflow_id})
    db.session.delete(goal)
    db.session.commit()
