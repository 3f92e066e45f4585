"""A goal's conversions, rate and value (``WorkflowGoal.update_analytics``)."""

from __future__ import annotations

from decimal import Decimal

from app.automation.analytics.calculator import percent
from app.automation.analytics.queries import goal_conversions
from app.extensions import db
from app.models import WorkflowGoal


def update_goal_analytics(goal: WorkflowGoal) -> WorkflowGoal:
    """Recount from the executions, store and commit.

    Conversions are executions that reached a goal and, when the goal names
    a node, visited that node; the rate is conversions per execution of the
    workflow (0-100); the value is conversions times ``goal_value``."""
    node_key = goal.goal_node.node_id if goal.goal_node is not None else None
    executions, conversions = goal_conversions(goal.workflow_id, node_key)
    goal.total_conversions = conversions
    goal.conversion_rate = percent(conversions, executions)
    goal.total_value = Decimal(conversions) * Decimal(goal.goal_value or 0)
    db.session.commit()
    return goal
