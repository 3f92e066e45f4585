"""Executors of the message steps: send_email, send_sms, webhook.

A step never sends: it writes its message as an outbox row keyed by
(execution, node, visit) in the same transaction as the step (DESIGN.md
rule 3); helper B's dispatcher sends it, records it, and wakes the
execution. A "pending" row makes the execution wait (``wait_reason``
"delivery"); "recorded", "skipped" and "test" rows finish the step at once.

Before the row is written, the message passes the send gates
(``app.automation.delivery.gates``), asked once for the whole batch: a skip
writes a skipped row with the reason, a defer writes nothing and holds the
execution at this step until the gate's moment (docs/SENDING.md).
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from app.automation.delivery.gates import Candidate, GateRun, Verdict
from app.automation.delivery.outbox import CHANNEL_OF, build_outbox_row, candidate_for
from app.automation.delivery.windows import parse_window
from app.automation.nodes.executors import executor
from app.automation.nodes.executors.base import Outcome, Step
from app.extensions import db
from app.models import OutboxMessage

# A delivery wait is ended by the dispatcher's wake(); this is only the
# safety net in case that wake was lost (a crash right after sending).
DELIVERY_RECHECK = timedelta(minutes=5)


def _existing(step: Step) -> dict | None:
    table = OutboxMessage.__table__
    stmt = select(
        table.c.status, table.c.last_error, table.c.message_id, table.c.id, table.c.response
    ).where(
        table.c.execution_id == step.row["id"],
        table.c.node_id == step.node.node_id,
        table.c.visit == step.visit,
    )
    row = db.session.connection().execute(stmt).first()
    return dict(row._mapping) if row is not None else None


def _finish(step: Step, row: dict) -> Outcome:
    status = row.get("status")
    result = {"status": status, "message_id": row.get("message_id"), "outbox_id": row.get("id")}
    if status == "sent":
        return Outcome(result=result)
    if status == "failed":
        return Outcome.fail(row.get("last_error") or "delivery failed", **result)
    if status in ("recorded", "test"):
        return Outcome(result={**result, "test": status == "test"})
    if status == "skipped":
        response = row.get("response") or {}
        reason = response.get("reason") or row.get("last_error")
        gate = {"gate": response["gate"]} if response.get("gate") else {}
        return Outcome(status="skipped", result={**result, "reason": reason, **gate})
    return Outcome.wait(step.moment + DELIVERY_RECHECK, "delivery", **result)


def _gate_run(step: Step) -> GateRun:
    """The batch's gate run: its population is every contact of the batch,
    so each gate reads once for all of them (one query per batch)."""
    state = step.state
    if state.gate_run is None:
        channels = ("email", "sms")
        population = [
            Candidate(
                firm_id=state.firm_of_contact.get(contact_id, step.firm_id),
                channel=channel,
                address=str(contact.contact.get("email" if channel == "email" else "phone") or ""),
                contact_id=contact_id,
                contact=contact.contact,
            )
            for contact_id, contact in state.contacts.items()
            for channel in channels
        ]
        state.gate_run = GateRun(db.session.connection(), "step", population)
    return state.gate_run


def _window(step: Step):
    """The step's own send window if it sets one (None: it ignores the
    workflow's), else the workflow's."""
    own = getattr(step.config, "own_window", None)
    if own is not None:
        sets, value = own()
        if sets:
            return parse_window(value)
    return getattr(step.workflow, "send_window", None)


def _verdict(step: Step) -> tuple[Verdict, dict | None]:
    candidate = candidate_for(
        step.firm_id,
        CHANNEL_OF[step.node.node_type],
        step.execution_view(),
        step.node.node_id,
        step.contact.contact,
        step.config,
    )
    candidate.moment = step.moment
    candidate.extra["send_window"] = _window(step)
    candidate.extra["priority"] = getattr(step.workflow, "priority", 5)
    verdict = _gate_run(step).check(candidate)
    return verdict, candidate.extra.get("topic")


def send_message(step: Step) -> Outcome:
    if step.resuming:
        existing = _existing(step)
        if existing is not None:
            return _finish(step, existing)
    verdict, topic = _verdict(step)
    if verdict.action == "defer":
        return Outcome.defer(verdict.until, **verdict.as_result())
    context = step.template_context()
    row = build_outbox_row(
        firm_id=step.firm_id,
        execution=step.execution_view(),
        node=step.node_view(),
        visit=step.visit,
        context=context,
        contact=context["contact"],
        verdict=verdict,
        topic=topic,
    )
    row.setdefault("firm_id", step.firm_id)
    row.setdefault("execution_id", step.row["id"])
    row.setdefault("workflow_id", step.row["workflow_id"])
    row.setdefault("contact_id", step.contact_id)
    row.setdefault("node_id", step.node.node_id)
    row.setdefault("visit", step.visit)
    row.setdefault("created_at", step.moment)
    step.effects.outbox.append(row)
    if row.get("status") == "pending":
        step.effects.delivery_pending = True
    return _finish(step, row)


for _key in ("send_email", "send_sms", "webhook"):
    executor(_key)(send_message)
