"""The seed's trigger helpers, and the starts that are not events.

``trigger_form_submitted``, ``trigger_email_opened``, ``trigger_email_clicked``,
``trigger_email_complained``,
``trigger_score_threshold`` and ``trigger_page_visited`` (the seed's names and
signatures) feed the event bus like the real sources do. ``trigger_manual``
(a user's button), ``trigger_api`` (``POST .../workflows/{id}/trigger/``)
and ``enroll_existing`` (on activation) start a chosen workflow directly.
``firm`` and ``contact`` arguments take a model or its id.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from sqlalchemy import select

from app.automation.crm import contacts
from app.automation.engine.enrollment import NotEnrollable, enroll, entry_of, start_entries
from app.automation.triggers import api_start, forms
from app.automation.triggers.audience import BATCH, matching_contact_ids
from app.automation.triggers.bus import audit_firing, audit_many, emit
from app.automation.triggers.filters import rule_group_of
from app.automation.triggers.registry import TRIGGER_TYPES
from app.extensions import db
from app.models import (
    Contact,
    Form,
    OutboxMessage,
    PublishedTrigger,
    Workflow,
    WorkflowExecution,
)
from app.tenancy import firm_context


class TriggerNotAllowed(Exception):
    """The workflow is not active or has no active api/manual trigger (409)."""


class ContactNotFound(LookupError):
    """No such contact in the workflow's firm (404)."""


class AlreadyEnrolled(Exception):
    """The contact is in (or, without re-entry, has been through) the workflow (409)."""


class IdempotencyConflict(Exception):
    """The Idempotency-Key was used for another contact (409)."""


def _id(value) -> int | None:
    return None if value is None else int(getattr(value, "id", value))


# --- the seed's event helpers ----------------------------------------------


def trigger_form_submitted(firm, form_id: int, submission_data: dict) -> list[int]:
    """Submit ``submission_data`` to form ``form_id`` as the public page would
    (without its token): validate, upsert the contact, fire ``form_submitted``.
    Raises ``ValueError`` naming the fields when the data does not validate."""
    with firm_context(_id(firm)):
        form = db.session.get(Form, int(form_id))
        if form is None:
            raise LookupError(f"no form {form_id}")
        result = forms.clean(form, {str(k): v for k, v in (submission_data or {}).items()})
        if result.errors:
            raise ValueError(f"invalid submission: {result.errors}")
        return forms.submit(form, result.values)[2]


def _email_data(email_id) -> dict:
    data: dict = {"email_id": email_id}
    if email_id is not None:
        message = db.session.get(OutboxMessage, int(email_id))
        if message is not None:
            data.update(workflow_id=message.workflow_id, node=message.node_id)
    return data


def trigger_email_opened(firm, contact, email_id) -> list[int]:
    with firm_context(_id(firm)):
        data = _email_data(email_id)
    return emit(_id(firm), "email_opened", _id(contact), data, source="email")


def trigger_email_clicked(firm, contact, email_id, link_url: str) -> list[int]:
    with firm_context(_id(firm)):
        data = {**_email_data(email_id), "url": link_url}
    return emit(_id(firm), "email_clicked", _id(contact), data, source="email")


def trigger_email_complained(firm, contact, email_id) -> list[int]:
    """The contact reported e-mail ``email_id`` as spam (a provider's
    complaint callback does this, and suppresses the address)."""
    with firm_context(_id(firm)):
        data = _email_data(email_id)
    return emit(_id(firm), "email_complained", _id(contact), data, source="email")


def trigger_score_threshold(firm, contact, score: int, threshold: int) -> list[int]:
    """The contact's score now stands at ``score`` against ``threshold``:
    at or above starts "score reached" workflows of that threshold, below
    starts "score dropped" ones."""
    kind = "score_threshold_reached" if score >= threshold else "score_threshold_dropped"
    data = {"score": score, "threshold": threshold}
    return emit(_id(firm), kind, _id(contact), data, source="score")


def trigger_page_visited(firm, contact, page_url: str, visit_data: dict | None = None) -> list[int]:
    data = {**(visit_data or {}), "url": page_url}
    return emit(_id(firm), "page_visited", _id(contact), data, source="site")


# --- direct starts -----------------------------------------------------------


def trigger_manual(firm, workflow_id: int, contact, context: dict | None = None):
    """Start ``workflow_id`` for one contact (a user's button); returns the
    execution, or None when the contact cannot enter (already inside)."""
    with firm_context(_id(firm)):
        workflow = db.session.get(Workflow, int(workflow_id))
        if workflow is None:
            raise LookupError(f"no workflow {workflow_id}")
        started = trigger_manual_many(workflow, [_id(contact)], context)
        return db.session.get(WorkflowExecution, started[0]) if started else None


def trigger_manual_many(
    workflow: Workflow, contact_ids: Iterable[int], context: dict | None = None
) -> list[int]:
    """Start ``workflow`` for chosen contacts (current firm); returns the
    execution ids started. Raises TriggerNotAllowed for a workflow that is
    not active."""
    if workflow.status != "active":
        raise TriggerNotAllowed(f"workflow {workflow.id} is {workflow.status}, not active")
    trigger = _trigger_of(workflow, ("manual", "api"))
    event_id = f"manual:{uuid.uuid4().hex}"
    ids = [int(c) for c in contact_ids]
    ctx = {"trigger_type": "manual", "event_id": event_id, "source": "manual", **(context or {})}
    try:
        started = enroll(
            workflow, ids, trigger=trigger, trigger_type="manual", event_id=event_id, context=ctx
        )
    except NotEnrollable as exc:
        raise TriggerNotAllowed(str(exc)) from exc
    _audit_started(workflow, trigger, started, event_id, "manual")
    return started


def start_in_one_statement(
    firm_id: int, workflow_id: int, contact_id: int, context: dict | None, idempotency_key=None
) -> dict | None:
    """The API trigger's common case (a new execution) in one statement,
    or None: then :func:`trigger_api` takes the full path (see api_start)."""
    key = (idempotency_key or "").strip()[:150]
    event_id = f"api:{key}" if key else f"api:{uuid.uuid4().hex}"
    return api_start.start(
        firm_id, workflow_id, int(contact_id), context or {}, event_id, bool(key)
    )


def trigger_api(workflow: Workflow, contact_id: int, context: dict | None, idempotency_key=None):
    """``POST /api/v1/automation/workflows/{id}/trigger/``: returns the execution."""
    return start_via_api(workflow, contact_id, context, idempotency_key)[0]


def api_trigger_of(workflow: Workflow) -> PublishedTrigger:
    """The trigger API calls start ``workflow`` by; raises TriggerNotAllowed."""
    trigger = _trigger_of(workflow, ("api", "manual"))
    if workflow.status != "active" or trigger is None:
        raise TriggerNotAllowed(
            f"workflow {workflow.id} must be active with an active api or manual trigger"
        )
    return trigger


def contact_by_email_to_start(workflow: Workflow, email: str) -> int:
    """The contact an API start names by e-mail (found, or made when the
    firm has none with that address), once the workflow can be started by
    the API (else TriggerNotAllowed, before any contact is made)."""
    api_trigger_of(workflow)
    contact, _ = contacts.contact_for_email(email)
    return contact.id


def start_via_api(
    workflow: Workflow, contact_id: int, context: dict | None, idempotency_key: str | None = None
) -> tuple[WorkflowExecution, bool]:
    """(execution, created). A repeat with the same key returns the first
    call's execution with ``created`` False."""
    trigger = api_trigger_of(workflow)
    key = (idempotency_key or "").strip()[:150]
    event_id = f"api:{key}" if key else f"api:{uuid.uuid4().hex}"
    if key:
        found = _existing(workflow, event_id, contact_id)
        if found is not None:
            return found, False
    if db.session.get(Contact, int(contact_id)) is None:
        raise ContactNotFound(f"no contact {contact_id}")
    # Recorded as the trigger that allowed the start: a workflow whose only
    # trigger is manual, started through the API, was started by "manual".
    kind = trigger.trigger_type
    ctx = {"trigger_type": kind, "event_id": event_id, "source": "api", **(context or {})}
    try:
        entry = entry_of(workflow)
    except NotEnrollable as exc:
        raise TriggerNotAllowed(str(exc)) from exc
    # The execution and its audit entry in one commit, then the kick: the
    # shortest path from the request to a worker taking the first step.
    started = start_entries(
        workflow, entry, [(int(contact_id), event_id, ctx)], trigger=trigger, trigger_type=kind
    )
    if started:
        audit_firing(workflow, int(contact_id), event_id, "api", trigger)
        db.session.commit()
        from app.queue import kick_engine

        kick_engine()
        return db.session.get(WorkflowExecution, started[0][0]), True
    db.session.commit()  # as enroll() would: whatever else the request changed
    # Lost a race with the same key, or the contact is already inside.
    found = _existing(workflow, event_id, contact_id) if key else None
    if found is not None:
        return found, False
    raise AlreadyEnrolled(
        f"contact {contact_id} is already in workflow {workflow.id}"
        + ("" if workflow.allow_reentry else " (re-entry is off)")
    )


def _existing(workflow: Workflow, event_id: str, contact_id: int) -> WorkflowExecution | None:
    stmt = select(WorkflowExecution).where(
        WorkflowExecution.workflow_id == workflow.id, WorkflowExecution.event_id == event_id
    )
    found = db.session.scalars(stmt.limit(1)).first()
    if found is not None and found.contact_id != int(contact_id):
        raise IdempotencyConflict("this Idempotency-Key was used for another contact")
    return found


def enroll_existing(workflow: Workflow, batch: int = BATCH) -> int:
    """Enroll every contact that already matches the workflow's triggers
    (their rules, and for tag/list/score triggers what their filter means
    for a contact already there), in batches; returns executions started."""
    if workflow.status != "active":
        raise TriggerNotAllowed(f"workflow {workflow.id} is {workflow.status}, not active")
    event_id = f"existing:{workflow.id}:{workflow.version}"
    groups = []
    for trigger in _active_triggers(workflow) or [None]:
        config = getattr(trigger, "configuration", None) or {}
        own = rule_group_of(config)
        kind = TRIGGER_TYPES.get(getattr(trigger, "trigger_type", ""))
        implied = kind.existing_rules if kind is not None else None
        rules = (implied(config) if implied else []) + ([own] if own else [])
        groups.append((trigger, {"match": "all", "rules": rules} if rules else None))
    started = 0
    for trigger, group in groups:
        for ids in matching_contact_ids(group, batch, workflow_id=workflow.id):
            context = {
                "trigger_type": "enroll_existing",
                "event_id": event_id,
                "source": "activation",
            }
            new = enroll(workflow, ids, trigger=trigger, event_id=event_id, context=context)
            _audit_started(workflow, trigger, new, event_id, "activation")
            started += len(new)
    return started


def _active_triggers(workflow: Workflow) -> list[PublishedTrigger]:
    """The workflow's active published triggers: a draft edit counts once
    published (app/automation/lifecycle/publishing.py)."""
    stmt = (
        select(PublishedTrigger)
        .where(PublishedTrigger.workflow_id == workflow.id, PublishedTrigger.is_active.is_(True))
        .order_by(PublishedTrigger.id)
    )
    return list(db.session.scalars(stmt))


def _trigger_of(workflow: Workflow, types: tuple[str, ...]) -> PublishedTrigger | None:
    for wanted in types:
        for trigger in _active_triggers(workflow):
            if trigger.trigger_type == wanted:
                return trigger
    return None


def _audit_started(workflow, trigger, execution_ids: list[int], event_id: str, source: str):
    if not execution_ids:
        return
    if len(execution_ids) == 1:
        contact_id = db.session.scalar(
            select(WorkflowExecution.contact_id).where(WorkflowExecution.id == execution_ids[0])
        )
        audit_firing(workflow, contact_id, event_id, source, trigger)
    else:
        contact_ids = db.session.scalars(
            select(WorkflowExecution.contact_id).where(WorkflowExecution.id.in_(execution_ids))
        )
        audit_many(workflow, trigger, list(contact_ids), event_id, source)
    db.session.commit()
