"""The body of a REST hook delivery, and a sample per event (docs/CONTRACT.md
"REST hooks"): ``{"event", "occurred_at", "data": {...}}``.

A delivery row carries ids (and, for facts outside the engine, what the
fact said); the body is made from them when the delivery is first sent and
kept on the row, so every retry sends the same bytes under the same
``webhook-id``. Samples have the same shape with made-up values: what a
Zapier "perform list" shows while a user maps fields.
"""

from __future__ import annotations

from datetime import datetime

from app.extensions import db
from app.models import Contact, Form, HookDelivery, Workflow, WorkflowExecution


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment is not None else None


def _contact(contact: Contact | None, contact_id: int | None) -> dict | None:
    if contact is None:
        return {"id": contact_id} if contact_id is not None else None
    return {
        "id": contact.id,
        "email": contact.email,
        "first_name": contact.first_name,
        "last_name": contact.last_name,
        "unsubscribed": contact.unsubscribed,
    }


def _execution(execution: WorkflowExecution | None, execution_id: int | None) -> dict | None:
    if execution is None:
        return {"id": execution_id} if execution_id is not None else None
    return {
        "id": execution.id,
        "workflow": execution.workflow_id,
        "version": execution.version,
        "status": execution.status,
        "current_node": execution.current_node,
        "goal_reached": execution.goal_reached,
        "trigger_type": execution.trigger_type,
        "started_at": _iso(execution.started_at),
        "completed_at": _iso(execution.completed_at),
    }


def body_of(row: HookDelivery) -> dict:
    """The body of a delivery, read under the delivery's firm."""
    contact = db.session.get(Contact, row.contact_id) if row.contact_id else None
    data: dict = {"contact": _contact(contact, row.contact_id)}
    if row.event in ("execution.started", "execution.completed", "goal.reached"):
        execution = (
            db.session.get(WorkflowExecution, row.execution_id) if row.execution_id else None
        )
        workflow = db.session.get(Workflow, row.workflow_id) if row.workflow_id else None
        data["execution"] = _execution(execution, row.execution_id)
        data["workflow"] = (
            {"id": workflow.id, "name": workflow.name} if workflow is not None else None
        )
    data.update(row.data or {})
    if row.event == "form.submitted":
        form_id = (row.data or {}).get("form", {}).get("id")
        form = db.session.get(Form, form_id) if form_id else None
        if form is not None:
            data["form"] = {"id": form.id, "name": form.name}
    return {"event": row.event, "occurred_at": _iso(row.occurred_at), "data": data}


_CONTACT = {
    "id": 1042,
    "email": "ada@example.com",
    "first_name": "Ada",
    "last_name": "Lovelace",
    "unsubscribed": False,
}
_WORKFLOW = {"id": 7, "name": "Welcome series"}


def _sample_execution(status: str, goal: bool) -> dict:
    return {
        "id": 88123,
        "workflow": 7,
        "version": 3,
        "status": status,
        "current_node": "goal" if goal else ("send_welcome" if status == "running" else None),
        "goal_reached": goal,
        "trigger_type": "form_submitted",
        "started_at": "2026-12-01T09:00:00Z",
        "completed_at": None if status == "running" else "2026-12-03T09:00:00Z",
    }


SAMPLES: dict[str, dict] = {
    "execution.started": {
        "contact": _CONTACT,
        "execution": _sample_execution("running", False),
        "workflow": _WORKFLOW,
    },
    "execution.completed": {
        "contact": _CONTACT,
        "execution": _sample_execution("completed", False),
        "workflow": _WORKFLOW,
    },
    "goal.reached": {
        "contact": _CONTACT,
        "execution": _sample_execution("goal_reached", True),
        "workflow": _WORKFLOW,
    },
    "contact.unsubscribed": {
        "contact": {**_CONTACT, "unsubscribed": True},
        "how": "unsubscribe_link",
        "topic": None,
    },
    "form.submitted": {
        "contact": _CONTACT,
        "form": {"id": 3, "name": "Newsletter sign-up"},
        "submission": {"id": 5150, "fields": {"email": "ada@example.com", "first_name": "Ada"}},
    },
}


def sample(event: str) -> dict:
    """One made-up delivery body of ``event`` (a key of :data:`SAMPLES`)."""
    return {"event": event, "occurred_at": "2026-12-03T09:00:00Z", "data": SAMPLES[event]}
