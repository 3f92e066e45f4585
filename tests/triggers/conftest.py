"""Helpers for trigger tests: a live (active) workflow listening to one trigger."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.automation.lifecycle.publishing import activate_workflow
from app.extensions import db
from app.models import WorkflowExecution
from app.tenancy import firm_context
from tests.factories import WELCOME_EDGES, WELCOME_NODES, make_workflow


@pytest.fixture
def live_workflow(alice):
    """``live_workflow(firm, "contact_tag_added", {"tag": "vip"}, allow_reentry=True)``."""

    def make(firm, trigger_type: str, configuration: dict | None = None, **fields):
        workflow = make_workflow(
            firm,
            name=fields.pop("name", f"On {trigger_type}"),
            nodes=WELCOME_NODES,
            edges=WELCOME_EDGES,
            triggers=[{"trigger_type": trigger_type, "configuration": configuration or {}}],
            **fields,
        )
        with firm_context(firm.id):
            activate_workflow(workflow, alice)
            db.session.commit()
        return workflow

    return make


def executions_of(firm, workflow=None) -> list[WorkflowExecution]:
    with firm_context(firm.id):
        stmt = select(WorkflowExecution).order_by(WorkflowExecution.id)
        if workflow is not None:
            stmt = stmt.where(WorkflowExecution.workflow_id == workflow.id)
        return list(db.session.scalars(stmt))


def trigger_id(firm, workflow) -> int:
    """The id of the workflow's (first) published trigger, the one the
    scheduler runs."""
    from app.models import PublishedTrigger

    with firm_context(firm.id):
        stmt = select(PublishedTrigger.id).where(PublishedTrigger.workflow_id == workflow.id)
        return db.session.scalars(stmt.order_by(PublishedTrigger.id)).first()
