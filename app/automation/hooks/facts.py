"""Delivery rows for REST hooks, written with the fact (docs/ARCHITECTURE.md
rule 3, docs/CONTRACT.md "REST hooks").

Each fact makes one ``hook_deliveries`` row per active subscription of its
firm (and workflow) in one ``INSERT ... SELECT``, inside the transaction
that records the fact: if that rolls back, nothing is delivered; if it
commits, the row is there for the delivery job (and the sweeper). The
(subscription, fact key) pair is unique, so a fact recorded twice (a job
run twice) is delivered once. An engine batch whose workflows no
subscription hears (:func:`listened`, read with the batch's workflows)
runs no statement at all.
"""

from __future__ import annotations

from sqlalchemy import String, and_, cast, false, literal, or_, select
from sqlalchemy.dialects import postgresql, sqlite

from app.clock import now
from app.extensions import db
from app.models import HOOK_EVENTS, HookDelivery, HookSubscription, WorkflowExecution

EVENTS = HOOK_EVENTS
WORKFLOW_EVENTS = ("execution.started", "execution.completed", "goal.reached")

deliveries = HookDelivery.__table__
subscriptions = HookSubscription.__table__
executions = WorkflowExecution.__table__

_COLUMNS = (
    "firm_id",
    "subscription_id",
    "event",
    "fact_key",
    "execution_id",
    "workflow_id",
    "contact_id",
    "data",
    "occurred_at",
    "status",
    "attempts",
    "next_attempt_at",
    "created_at",
)


def _insert(conn):
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(deliveries)


def _run(conn, select_stmt) -> int:
    stmt = (
        _insert(conn)
        .from_select(list(_COLUMNS), select_stmt)
        .on_conflict_do_nothing(index_elements=["subscription_id", "fact_key"])
        .returning(deliveries.c.id)
    )
    return len(conn.execute(stmt).all())


def record(
    event: str,
    *,
    firm_id: int,
    fact_key: str,
    contact_id: int | None = None,
    workflow_id: int | None = None,
    execution_id: int | None = None,
    data: dict | None = None,
) -> int:
    """One fact outside the engine (an unsubscribe, a form submission), in
    the session's current transaction; the caller commits. Returns how many
    deliveries it made."""
    if event not in EVENTS:
        raise ValueError(f"unknown hook event {event!r}")
    moment = now()
    wanted = [
        subscriptions.c.firm_id == firm_id,
        subscriptions.c.event == event,
        subscriptions.c.active.is_(True),
    ]
    if workflow_id is not None:
        wanted.append(
            or_(subscriptions.c.workflow_id.is_(None), subscriptions.c.workflow_id == workflow_id)
        )
    else:
        wanted.append(subscriptions.c.workflow_id.is_(None))
    data_value = literal(data, type_=deliveries.c.data.type) if data is not None else None
    stmt = select(
        subscriptions.c.firm_id,
        subscriptions.c.id,
        subscriptions.c.event,
        literal(fact_key, String),
        literal(execution_id, deliveries.c.execution_id.type),
        literal(workflow_id, deliveries.c.workflow_id.type),
        literal(contact_id, deliveries.c.contact_id.type),
        data_value if data_value is not None else literal(None, deliveries.c.data.type),
        literal(moment, deliveries.c.occurred_at.type),
        literal("pending", String),
        literal(0),
        literal(moment, deliveries.c.next_attempt_at.type),
        literal(moment, deliveries.c.created_at.type),
    ).where(*wanted)
    return _run(db.session.connection(), stmt)


def listened(workflows):
    """A column for a query of ``workflows`` rows: whether an active
    subscription hears that workflow's execution or goal events (the engine
    loads it with the batch's workflows, so a batch of firms without
    subscriptions writes no hook statement at all)."""
    return (
        select(subscriptions.c.id)
        .where(
            subscriptions.c.firm_id == workflows.c.firm_id,
            subscriptions.c.event.in_(WORKFLOW_EVENTS),
            subscriptions.c.active.is_(True),
            or_(
                subscriptions.c.workflow_id.is_(None),
                subscriptions.c.workflow_id == workflows.c.id,
            ),
        )
        .exists()
        .label("hooked")
    )


def record_walked(conn, started: list[int], ended: list[int], goals: list[int], moment) -> int:
    """The engine's facts of one write-back: executions that took their
    first step (``execution.started``), that ended (``execution.completed``)
    and that reached a goal (``goal.reached``), as one set-based statement
    over the batch's execution rows (engine/write.py calls it inside the
    batch's transaction). Returns how many deliveries it made."""
    picks = [
        (event, ids)
        for event, ids in (
            ("execution.started", started),
            ("execution.completed", ended),
            ("goal.reached", goals),
        )
        if ids
    ]
    if not picks:
        return 0
    matches = or_(
        *(
            and_(subscriptions.c.event == event, executions.c.id.in_(sorted(ids)))
            for event, ids in picks
        ),
        false(),
    )
    stmt = (
        select(
            subscriptions.c.firm_id,
            subscriptions.c.id,
            subscriptions.c.event,
            literal("execution:", String) + cast(executions.c.id, String),
            executions.c.id,
            executions.c.workflow_id,
            executions.c.contact_id,
            literal(None, deliveries.c.data.type),
            literal(moment, deliveries.c.occurred_at.type),
            literal("pending", String),
            literal(0),
            literal(moment, deliveries.c.next_attempt_at.type),
            literal(moment, deliveries.c.created_at.type),
        )
        .select_from(subscriptions)
        .join(
            executions,
            and_(
                executions.c.firm_id == subscriptions.c.firm_id,
                or_(
                    subscriptions.c.workflow_id.is_(None),
                    subscriptions.c.workflow_id == executions.c.workflow_id,
                ),
            ),
        )
        .where(
            subscriptions.c.active.is_(True),
            subscriptions.c.event.in_([event for event, _ in picks]),
            matches,
        )
    )
    return _run(conn, stmt)


def unsubscribed(message, how: str) -> int:
    """``contact.unsubscribed``: the contact of outbox ``message`` opted out
    (``how``: ``unsubscribe_link``, ``preferences``, ``one_click``), in the
    unsubscribe's transaction. Keyed by contact and second: a double press
    is one fact, an opt-out after opting back in is another."""
    return record(
        "contact.unsubscribed",
        firm_id=message.firm_id,
        fact_key=f"unsubscribed:{message.contact_id}:{int(now().timestamp())}",
        contact_id=message.contact_id,
        data={"how": how, "message": message.id, "topic": message.topic_id},
    )


def form_submitted(form, submission) -> int:
    """``form.submitted``, in the submission's transaction (a double opt-in
    sign-up counts when it is confirmed: that is when it is submitted)."""
    return record(
        "form.submitted",
        firm_id=form.firm_id,
        fact_key=f"submission:{submission.id}",
        contact_id=submission.contact_id,
        data={
            "form": {"id": form.id, "name": form.name},
            "submission": {"id": submission.id, "fields": dict(submission.data or {})},
        },
    )
