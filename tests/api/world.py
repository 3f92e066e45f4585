"""One of everything the API serves, for a firm: the ids the access tests
put in URLs and bodies."""

from __future__ import annotations

import uuid
from datetime import date

from app.extensions import db
from app.models import (
    ContactList,
    Deal,
    Form,
    Tag,
    Task,
    WorkflowAnalytics,
    WorkflowExecution,
    WorkflowGoal,
)
from app.tenancy import firm_context
from tests.factories import WELCOME_EDGES, WELCOME_NODES, make_contact, make_workflow


def make_execution(workflow, contact, status="waiting", node="wait_2_days", **fields):
    with firm_context(workflow.firm_id):
        execution = WorkflowExecution(
            workflow_id=workflow.id,
            contact_id=contact.id,
            version=1,
            status=status,
            current_node=node,
            execution_path=["send_welcome_email", node] if node else [],
            idempotency_key=uuid.uuid4().hex,
            **fields,
        )
        db.session.add(execution)
        db.session.commit()
    return execution


def make_world(firm) -> dict:
    workflow = make_workflow(
        firm,
        nodes=WELCOME_NODES,
        edges=WELCOME_EDGES,
        triggers=[{"trigger_type": "manual"}],
    )
    contact = make_contact(firm)
    with firm_context(firm.id):
        tag = Tag(name="vip")
        contact_list = ContactList(name="Newsletter")
        contact.tags.append(tag)
        contact.lists.append(contact_list)
        goal = WorkflowGoal(workflow_id=workflow.id, name="Signed up", goal_value=10)
        analytics = WorkflowAnalytics(
            workflow_id=workflow.id, period_start=date(2026, 1, 1), period_end=date(2026, 1, 31)
        )
        form = Form(name="Signup", fields=[{"name": "email", "type": "email", "required": True}])
        deal = Deal(contact_id=contact.id, title="Big deal", value=100)
        task = Task(contact_id=contact.id, title="Call back")
        db.session.add_all([goal, analytics, form, deal, task])
        db.session.commit()
        ids = {
            "workflow_id": workflow.id,
            "trigger_id": workflow.triggers[0].id,
            "node_pk": workflow.nodes[0].id,
            "edge_id": workflow.edges[0].id,
            "goal_id": goal.id,
            "analytics_id": analytics.id,
            "contact_id": contact.id,
            "tag": "vip",
            "list_id": contact_list.id,
            "form_id": form.id,
            "deal_id": deal.id,
            "task_id": task.id,
        }
    execution = make_execution(workflow, contact)
    ids["execution_id"] = execution.id
    return ids
