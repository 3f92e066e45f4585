"""Builders for test data. Each takes a firm and sets it as the current one."""

from __future__ import annotations

import itertools

from app.automation.lifecycle.publishing import publish_triggers
from app.extensions import db
from app.models import (
    Contact,
    Firm,
    User,
    Workflow,
    WorkflowEdge,
    WorkflowNode,
    WorkflowTrigger,
)
from app.tenancy import firm_context

_seq = itertools.count(1)
PASSWORD = "correct horse battery staple"


def make_firm(name: str | None = None) -> Firm:
    firm = Firm(name=name or f"Firm {next(_seq)}")
    db.session.add(firm)
    db.session.commit()
    return firm


def make_user(firm: Firm, email: str, role: str = "marketer", password: str = PASSWORD) -> User:
    with firm_context(firm.id):
        user = User(email=email, role=role, name=email.split("@")[0].title())
        user.set_password(password)
        db.session.add(user)
        db.session.commit()
    return user


def make_contact(firm: Firm, **fields) -> Contact:
    n = next(_seq)
    fields.setdefault("email", f"contact{n}@example.com")
    fields.setdefault("first_name", f"First{n}")
    with firm_context(firm.id):
        contact = Contact(**fields)
        db.session.add(contact)
        db.session.commit()
    return contact


def make_workflow(
    firm: Firm,
    name: str = "Welcome Campaign",
    nodes: list[dict] | None = None,
    edges: list[tuple] | None = None,
    triggers: list[dict] | None = None,
    **fields,
) -> Workflow:
    """nodes: [{"node_id", "node_type", "configuration"}]; edges:
    [(source node_id, target node_id, condition_type?, condition_config?)]."""
    with firm_context(firm.id):
        workflow = Workflow(name=name, **fields)
        db.session.add(workflow)
        db.session.flush()
        by_key = {}
        for i, spec in enumerate(nodes or []):
            node = WorkflowNode(
                workflow_id=workflow.id,
                node_id=spec["node_id"],
                node_type=spec["node_type"],
                label=spec.get("label", spec["node_id"]),
                position_x=spec.get("position_x", 100.0),
                position_y=spec.get("position_y", 100.0 + 120 * i),
                configuration=spec.get("configuration", {}),
            )
            db.session.add(node)
            by_key[node.node_id] = node
        db.session.flush()
        for edge in edges or []:
            source, target, *rest = edge
            db.session.add(
                WorkflowEdge(
                    workflow_id=workflow.id,
                    source_node_id=by_key[source].id,
                    target_node_id=by_key[target].id,
                    condition_type=rest[0] if rest else None,
                    condition_config=rest[1] if len(rest) > 1 else {},
                )
            )
        for trigger in triggers or []:
            db.session.add(
                WorkflowTrigger(
                    workflow_id=workflow.id,
                    trigger_type=trigger["trigger_type"],
                    configuration=trigger.get("configuration", {}),
                    is_active=trigger.get("is_active", True),
                )
            )
        if workflow.status == "active" and triggers:
            # As a live workflow has them: its triggers published.
            publish_triggers(workflow)
        db.session.commit()
        db.session.refresh(workflow)
    return workflow


WELCOME_NODES = [
    {
        "node_id": "send_welcome_email",
        "node_type": "send_email",
        "configuration": {"subject": "Welcome!", "body_text": "Hi {{ contact.first_name }}"},
    },
    {
        "node_id": "wait_2_days",
        "node_type": "wait_time",
        "configuration": {"wait_duration_hours": 48},
    },
    {"node_id": "goal", "node_type": "goal", "configuration": {}},
]
WELCOME_EDGES = [("send_welcome_email", "wait_2_days"), ("wait_2_days", "goal")]
