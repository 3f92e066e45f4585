"""Building and running small workflows for the engine tests."""

from __future__ import annotations

from sqlalchemy import select

from app.automation.engine.enrollment import enroll
from app.automation.engine.jobs import drain
from app.automation.lifecycle.publishing import activate_workflow
from app.extensions import db
from app.models import ContactFlowState, WorkflowExecution
from app.tenancy import firm_context
from tests.factories import make_workflow


def chain(*nodes: tuple[str, str, dict]) -> tuple[list[dict], list[tuple]]:
    """Nodes ``(node_id, node_type, configuration)`` joined by plain edges."""
    specs = [{"node_id": n, "node_type": t, "configuration": c} for n, t, c in nodes]
    edges = [(a[0], b[0]) for a, b in zip(nodes, nodes[1:], strict=False)]
    return specs, edges


def active_workflow(firm, user, nodes, edges, **fields):
    workflow = make_workflow(
        firm, nodes=nodes, edges=edges, triggers=[{"trigger_type": "manual"}], **fields
    )
    with firm_context(firm.id):
        activate_workflow(workflow, user)
        db.session.commit()
    return workflow


def start(workflow, *contacts, context=None) -> list[int]:
    with firm_context(workflow.firm_id):
        return enroll(workflow, [c.id for c in contacts], trigger_type="manual", context=context)


def run(workflow, *contacts, context=None) -> WorkflowExecution:
    """Enroll, drain, and return the (first) execution, reloaded."""
    ids = start(workflow, *contacts, context=context)
    drain()
    return execution(workflow.firm_id, ids[0])


def execution(firm_id: int, execution_id: int) -> WorkflowExecution:
    db.session.expire_all()
    with firm_context(firm_id):
        return db.session.get(WorkflowExecution, execution_id)


def flow_states(firm_id: int, execution_id: int) -> list[ContactFlowState]:
    db.session.expire_all()
    with firm_context(firm_id):
        stmt = (
            select(ContactFlowState)
            .where(ContactFlowState.execution_id == execution_id)
            .order_by(ContactFlowState.id)
        )
        return list(db.session.scalars(stmt))


def states_by_node(firm_id: int, execution_id: int) -> dict[str, ContactFlowState]:
    return {s.node_id: s for s in flow_states(firm_id, execution_id)}


def make_contacts(firm, count: int) -> list:
    """Many contacts at once (one INSERT), for load-shaped tests."""
    from app.clock import now
    from app.models import Contact

    moment = now()
    rows = [
        {
            "firm_id": firm.id,
            "email": f"bulk{i}-{moment.timestamp()}@example.com",
            "first_name": f"Bulk{i}",
            "last_name": "",
            "phone": "",
            "score": 0,
            "timezone": "UTC",
            "custom_fields": {},
            "unsubscribed": False,
            "created_at": moment,
            "updated_at": moment,
        }
        for i in range(count)
    ]
    table = Contact.__table__
    ids = db.session.execute(table.insert().returning(table.c.id), rows).scalars().all()
    db.session.commit()
    return [_ContactRef(i) for i in ids]


class _ContactRef:
    def __init__(self, contact_id: int):
        self.id = contact_id
