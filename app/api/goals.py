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
from app.automation.lifecycle import goals
from app.automation.lifecycle.workflow_ops import WorkflowOpError
from app.extensions import db
from app.models import Workflow, WorkflowAnalytics, WorkflowGoal, WorkflowNode

G_LIST = "/automation/goals/"
G_ONE = "/automation/goals/<int:goal_id>/"


def _goal_node(node_pk: int | None) -> WorkflowNode | None:
    return referenced(WorkflowNode, node_pk, "goal_node")


def _refused(exc: WorkflowOpError):
    return validation_error({exc.field or "__root__": [exc.message]}, status=422)


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
    workflow = referenced(Workflow, body.workflow, "workflow")
    try:
        return goals.create_goal(workflow, body.name, _goal_node(body.goal_node), body.goal_value)
    except WorkflowOpError as exc:
        db.session.rollback()
        raise _refused(exc) from None


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
        changes["goal_node"] = _goal_node(changes["goal_node"])
    try:
        return goals.update_goal(goal, changes)
    except WorkflowOpError as exc:
        db.session.rollback()
        raise _refused(exc) from None


@endpoint(G_ONE, "DELETE", tag="Goals", summary="Delete a goal", status=204)
def delete_goal(goal_id: int):
    goals.delete_goal(get_or_404(WorkflowGoal, goal_id, what="goal"))


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
