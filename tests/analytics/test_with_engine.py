"""Analytics over executions the real engine ran (enroll -> drain)."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import func, select

from app.automation.analytics import AnalyticsCalculator, node_live_counts
from app.automation.analytics import goals as analytics_goals
from app.automation.engine.enrollment import enroll
from app.automation.engine.jobs import drain
from app.automation.lifecycle.publishing import activate_workflow
from app.clock import now
from app.extensions import db
from app.models import ContactFlowState, WorkflowExecution, WorkflowGoal
from app.tenancy import firm_context
from tests.factories import make_contact, make_workflow

NODES = [
    {"node_id": "tag", "node_type": "add_tag", "configuration": {"tag": "lead"}},
    {
        "node_id": "split",
        "node_type": "split",
        "configuration": {"variants": [{"name": "A", "weight": 50}, {"name": "B", "weight": 50}]},
    },
    {"node_id": "goal", "node_type": "goal", "configuration": {"goal_value": 20}},
    {"node_id": "wait", "node_type": "wait_time", "configuration": {"wait_duration_hours": 48}},
]
EDGES = [
    ("tag", "split"),
    ("split", "goal", "variant", {"variant": "A"}),
    ("split", "wait", "variant", {"variant": "B"}),
]


def test_the_numbers_match_what_the_engine_did(acme, alice):
    workflow = make_workflow(acme, nodes=NODES, edges=EDGES, triggers=[{"trigger_type": "manual"}])
    contacts = [make_contact(acme) for _ in range(12)]
    with firm_context(acme.id):
        activate_workflow(workflow, alice)
        db.session.commit()
        enroll(workflow, [c.id for c in contacts], trigger_type="manual")
    drain()
    db.session.expire_all()
    with firm_context(acme.id):
        went_a = db.session.scalar(
            select(func.count()).where(
                ContactFlowState.node_id == "split", ContactFlowState.variant == "A"
            )
        )
        went_b = 12 - went_a
        statuses = dict(
            db.session.execute(
                select(WorkflowExecution.status, func.count()).group_by(WorkflowExecution.status)
            ).all()
        )
        assert statuses.get("goal_reached", 0) == went_a
        assert statuses.get("waiting", 0) == went_b

        today = now().date()
        row = AnalyticsCalculator.calculate_workflow_analytics(workflow, today, today)
        assert row.total_executions == 12
        assert row.goal_reached_executions == went_a
        assert row.completed_executions == went_a
        assert row.goal_conversion_rate == round(100 * went_a / 12, 4)
        perf = row.node_performance
        assert perf["tag"]["successes"] == 12
        expected = {
            "A": {"entered": went_a, "conversions": went_a},
            "B": {"entered": went_b, "conversions": 0},
        }
        # The split is random: a variant nobody drew has no entry.
        assert perf["split"].get("variants", {}) == {
            name: counts for name, counts in expected.items() if counts["entered"]
        }

        data = AnalyticsCalculator.get_flow_visualization_data(workflow)
        edges = {(e["source"], e["target"]): e["transitions"] for e in data["edges"]}
        assert edges[("tag", "split")] == 12
        assert edges[("split", "goal")] == went_a
        assert edges[("split", "wait")] == went_b
        assert node_live_counts(workflow)["wait"] == {
            "waiting": went_b,
            "visits": went_b,
            "held": 0,
            "held_text": "",
        }

        goal = WorkflowGoal(
            workflow_id=workflow.id,
            name="Converted",
            goal_node_id=workflow.node_by_key("goal").id,
            goal_value=Decimal("20"),
        )
        db.session.add(goal)
        db.session.commit()
        analytics_goals.update_goal_analytics(goal)
        assert goal.total_conversions == went_a
        assert goal.total_value == Decimal(20 * went_a)
