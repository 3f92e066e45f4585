"""Goals (with update_analytics) and stored analytics (seed endpoints)."""

from __future__ import annotations

from sqlalchemy import select

from app.api.access import get_or_404
from app.api.core import endpoint
from app.api.errors import validation_error
from app.api.graph import ByWorkflow, referenced
from app.api.pagination import page_of, paginate
from app.api.schemas.automation import AnalyticsOut, GoalCreate, GoalOut, GoalUpdate
from app.automation.analytics import goals as analytics_goals
from app.extensions import db
from app.models import Workflow, WorkflowAnalytics, WorkflowGoal, WorkflowNode
from app.models.audit import record

G_LIST = "/automation/goals/"
G_ONE = "/automation/goals/<int:goal_id>/"


def _goal_node(node_pk: int | None, workflow_id: int) -> int | None:
    """A goal's node must belong to the goal's workflow (422 otherwise)."""
    node = referenced(WorkflowNode, node_pk, "goal_node")
    if node is None:
        return None
    if node.workflow_id != workflow_id:
        raise validation_error({"goal_node": ["is a node of another workflow"]}, status=422)
    return node.id


@endpoint(G_LIST, tag="Goals", summary="List goals", query=ByWorkflow, response=page_of(GoalOut))
def list_goals(query: ByWorkflow):
    stmt = select(WorkflowGoal)
    if query.workflow is not None:
        stmt = stmt.where(WorkflowGoal.workflow_id == query.workflow)
    return paginate(stmt, WorkflowGoal.id, query)


@endpoint(
    G_LIST,
    "POST",
    tag="Goals",
    summary="Create a goal",
    body=GoalCreate,
    response=GoalOut,
    status=201,
    errors=(422,),
)
def create_goal(body: GoalCreate):
    referenced(Workflow, body.workflow, "workflow")
    goal = WorkflowGoal(
        workflow_id=body.workflow,
        name=body.name,
        goal_node_id=_goal_node(body.goal_node, body.workflow),
        goal_value=body.goal_value,
    )
    db.session.add(goal)
    db.session.flush()
    record("goal.created", goal, data={"workflow": body.workflow, "name": body.name})
    db.session.commit()
    return goal


@endpoint(G_ONE, tag="Goals", summary="Get a goal", response=GoalOut)
def get_goal(goal_id: int):
    return get_or_404(WorkflowGoal, goal_id, what="goal")


@endpoint(
    G_ONE,
    "PATCH",
    tag="Goals",
    summary="Update a goal",
    body=GoalUpdate,
    response=GoalOut,
    errors=(422,),
)
def update_goal(goal_id: int, body: GoalUpdate):
    goal = get_or_404(WorkflowGoal, goal_id, what="goal")
    changes = body.model_dump(exclude_unset=True)
    if "goal_node" in changes:
        goal.goal_node_id = _goal_node(changes.pop("goal_node"), goal.workflow_id)
    for name, value in changes.items():
        if value is not None:
            setattr(goal, name, value)
    record("goal.updated", goal, data={"fields": sorted(body.model_fields_set)})
    db.session.commit()
    return goal


@endpoint(G_ONE, "DELETE", tag="Goals", summary="Delete a goal", status=204)
def delete_goal(goal_id: int):
    goal = get_or_404(WorkflowGoal, goal_id, what="goal")
    record("goal.deleted", goal, data={"workflow": goal.workflow_id})
    db.session.delete(goal)
    db.session.commit()


@endpoint(
    G_ONE + "update_analytics/",
    "POST",
    tag="Goals",
    summary="Recalculate a goal's conversions, rate and value",
    response=GoalOut,
)
def update_goal_analytics(goal_id: int):
    goal = get_or_404(WorkflowGoal, goal_id, what="goal")
    return analytics_goals.update_goal_analytics(goal)


@endpoint(
    "/automation/analytics/",
    tag="Analytics",
    summary="List stored analytics",
    query=ByWorkflow,
    response=page_of(AnalyticsOut),
)
def list_analytics(query: ByWorkflow):
    stmt = select(WorkflowAnalytics)
    if query.workflow is not None:
        stmt = stmt.where(WorkflowAnalytics.workflow_id == query.workflow)
    return paginate(stmt, WorkflowAnalytics.id, query, newest_first=True)


@endpoint(
    "/automation/analytics/<int:analytics_id>/",
    tag="Analytics",
    summary="Get stored analytics",
    response=AnalyticsOut,
)
def get_analytics(analytics_id: int):
    return get_or_404(WorkflowAnalytics, analytics_id, what="analytics")
