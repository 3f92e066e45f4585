"""Builders for lifecycle tests: a published workflow with contacts inside."""

from __future__ import annotations

import itertools
from datetime import timedelta

from app.clock import now
from app.extensions import db
from app.models import ContactFlowState, WorkflowExecution
from app.tenancy import firm_context
from tests.factories import make_contact, make_workflow

_seq = itertools.count(1)

NURTURE_NODES = [
    {
        "node_id": "send_welcome",
        "node_type": "send_email",
        "configuration": {"subject": "Welcome!", "body_text": "Hi {{ contact.first_name }}"},
    },
    {
        "node_id": "wait_2_days",
        "node_type": "wait_time",
        "configuration": {"wait_duration_hours": 48},
    },
    {
        "node_id": "send_tips",
        "node_type": "send_email",
        "configuration": {"subject": "Tips", "body_text": "Here are some tips"},
    },
    {
        "node_id": "wait_1_day",
        "node_type": "wait_time",
        "configuration": {"wait_duration_hours": 24},
    },
    {"node_id": "tag_done", "node_type": "add_tag", "configuration": {"tag": "nurtured"}},
]
NURTURE_EDGES = [
    ("send_welcome", "wait_2_days"),
    ("wait_2_days", "send_tips"),
    ("send_tips", "wait_1_day"),
    ("wait_1_day", "tag_done"),
]


def nurture_workflow(firm, **fields):
    return make_workflow(
        firm,
        name=fields.pop("name", "Nurture"),
        nodes=NURTURE_NODES,
        edges=NURTURE_EDGES,
        triggers=[{"trigger_type": "manual"}],
        **fields,
    )


def park(firm, workflow, node_id: str, count: int = 1, *, version: int | None = None, **fields):
    """``count`` contacts waiting on ``node_id`` (as the engine leaves them
    at a wait), each with the open visit the engine records."""
    ids = []
    with firm_context(firm.id):
        wake = fields.pop("wake_at", now() + timedelta(hours=40))
        for _ in range(count):
            contact = make_contact(firm)
            execution = WorkflowExecution(
                workflow_id=workflow.id,
                contact_id=contact.id,
                version=version or workflow.version,
                status=fields.get("status", "waiting"),
                current_node=node_id,
                wait_reason=fields.get("wait_reason", "timer"),
                wake_at=wake,
                idempotency_key=f"park-{next(_seq)}",
                lease_until=fields.get("lease_until"),
                test_mode=fields.get("test_mode", False),
            )
            db.session.add(execution)
            db.session.flush()
            db.session.add(
                ContactFlowState(
                    execution_id=execution.id,
                    workflow_id=workflow.id,
                    node_id=node_id,
                    action_status="waiting",
                )
            )
            ids.append(execution.id)
        db.session.commit()
    return ids


def executions(firm, ids):
    with firm_context(firm.id):
        db.session.expire_all()
        rows = db.session.query(WorkflowExecution).filter(WorkflowExecution.id.in_(ids)).all()
        return sorted(rows, key=lambda row: row.id)
