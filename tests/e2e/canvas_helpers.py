"""Shared by the builder canvas browser tests: a workflow to look at, the
database read back, and every console error caught."""

from __future__ import annotations

from sqlalchemy import select

from app.extensions import db
from app.models import Workflow
from app.tenancy import firm_context
from tests.factories import make_workflow


def watch_console(page) -> list[str]:
    """Every console error and uncaught exception of ``page`` from now on."""
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    return errors


def open_builder(page, live_server, workflow) -> None:
    page.goto(f"{live_server.url}/automation/builder/{workflow.id}")
    page.locator("#builder[data-ready='true']").wait_for(state="attached")
    page.wait_for_load_state("networkidle")


def stored(firm, workflow_id: int) -> dict:
    """The workflow as the database has it now: nodes by id, edges as
    (source, port, target), positions."""
    db.session.expire_all()
    with firm_context(firm.id):
        row = db.session.scalars(select(Workflow).where(Workflow.id == workflow_id)).one()
        by_pk = {node.id: node for node in row.nodes}
        return {
            "nodes": {
                node.node_id: {
                    "type": node.node_type,
                    "label": node.label,
                    "config": dict(node.configuration or {}),
                    "xy": (node.position_x, node.position_y),
                }
                for node in row.nodes
            },
            "edges": {
                (
                    by_pk[edge.source_node_id].node_id,
                    edge.condition_type or "next",
                    by_pk[edge.target_node_id].node_id,
                )
                for edge in row.edges
            },
        }


def welcome_series(firm, name: str = "Welcome series"):
    """E-mail, wait, if/else; yes: tag, no: goal; two triggers."""
    return make_workflow(
        firm,
        name=name,
        nodes=[
            {
                "node_id": "welcome",
                "node_type": "send_email",
                "label": "Welcome e-mail with a very long name that cannot fit on its card",
                "configuration": {"subject": "Welcome!", "body_text": "Hi"},
                "position_x": 400,
                "position_y": 120,
            },
            {
                "node_id": "wait",
                "node_type": "wait_time",
                "label": "Pause",
                "configuration": {"wait_duration_hours": 48},
                "position_x": 400,
                "position_y": 260,
            },
            {
                "node_id": "engaged",
                "node_type": "condition",
                "label": "Engaged?",
                "configuration": {
                    "match": "all",
                    "rules": [{"field": "contact.score", "op": "gte", "value": 50}],
                },
                "position_x": 400,
                "position_y": 400,
            },
            {
                "node_id": "vip",
                "node_type": "add_tag",
                "label": "Tag VIP",
                "configuration": {"tag": "vip"},
                "position_x": 240,
                "position_y": 560,
            },
            {
                "node_id": "won",
                "node_type": "goal",
                "label": "Converted",
                "configuration": {"match": "all", "rules": [], "goal_value": 0},
                "position_x": 560,
                "position_y": 560,
            },
        ],
        edges=[
            ("welcome", "wait"),
            ("wait", "engaged"),
            ("engaged", "vip", "yes"),
            ("engaged", "won", "no"),
        ],
        triggers=[
            {"trigger_type": "contact_created"},
            {"trigger_type": "contact_tag_added", "configuration": {"tag": "newsletter"}},
        ],
    )
