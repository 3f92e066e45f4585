"""What the dispatcher does around a hand-over, beside sending: the gate
chain once more over the claimed batch (an address suppressed, or a
contact opted out, while its message waited), and what a refusal teaches
(a hard bounce suppresses the address, soft ones count towards it).

Kept apart from ``dispatcher`` so that its claim-send-record loop stays
what it is; every function here takes the dispatcher's own connection.
"""

from __future__ import annotations

import logging

from sqlalchemy import Connection, Row, select

from app.automation.delivery import pause, suppressions
from app.automation.delivery.bounces import Bounce, classify_smtp
from app.automation.delivery.gates import Candidate, GateRun, Verdict
from app.clock import now
from app.models import OutboxMessage

log = logging.getLogger(__name__)
outbox = OutboxMessage.__table__

_PREVIEW = (
    outbox.c.id,
    outbox.c.firm_id,
    outbox.c.channel,
    outbox.c.to_address,
    outbox.c.contact_id,
    outbox.c.topic_id,
    outbox.c.workflow_id,
    outbox.c.execution_id,
    outbox.c.node_id,
)


def _candidate(row, moment) -> Candidate:
    return Candidate(
        firm_id=row.firm_id,
        channel=row.channel,
        address=row.to_address,
        contact_id=row.contact_id,
        topic_id=row.topic_id,
        workflow_id=row.workflow_id,
        execution_id=row.execution_id,
        node_id=row.node_id,
        outbox_id=row.id,
        moment=moment,
    )


def preview(conn: Connection, ids: list[int]) -> list:
    """The gate-relevant columns of rows about to be claimed one by one."""
    if not ids:
        return []
    return list(conn.execute(select(*_PREVIEW).where(outbox.c.id.in_(ids))))


class DispatchGates:
    """The chain at stage "dispatch" over one claimed batch: each gate
    reads once for all its rows."""

    def __init__(self, conn: Connection, rows: list):
        moment = now()
        self._candidates = {r.id: _candidate(r, moment) for r in rows if r.channel != "webhook"}
        self.run = GateRun(conn, "dispatch", self._candidates.values())

    def verdict(self, row: Row) -> Verdict | None:
        """None when the row may go; else the skip or defer to record."""
        if row.channel == "webhook":
            return None
        # The batch's own candidate (each row is checked once), on the
        # clock of the hand-over.
        moment = now()
        candidate = self._candidates.get(row.id) or _candidate(row, moment)
        candidate.moment = moment
        verdict = self.run.check(candidate)
        return None if verdict.sends else verdict


def values_for(row: Row, verdict: Verdict) -> dict:
    """The outbox columns that record a gate's answer at hand-over: a skip
    ends the row (and so the step); a defer keeps it pending until the
    gate's moment, the attempt not counted (the same row, so it is still
    sent once)."""
    if verdict.action == "skip":
        return {
            "status": "skipped",
            "attempts": row.attempts,
            "next_attempt_at": None,
            "last_error": None,
            "response": verdict.as_result(),
        }
    return {
        "status": "pending",
        "attempts": row.attempts,
        "next_attempt_at": verdict.until,
        "last_error": None,
        "response": {"held": verdict.as_result()},
    }


def bounce_of(response: dict) -> Bounce | None:
    """The bounce an SMTP refusal of the recipient is, if it is one."""
    code = response.get("smtp_code")
    if not code or not response.get("rcpt"):
        return None
    return classify_smtp(code, response.get("smtp_answer") or "")


def after_failure(conn: Connection, row: Row, values: dict) -> None:
    """A hard bounce suppresses the address at once; a soft one that used
    up its retries counts towards SOFT_BOUNCE_LIMIT. Never raises: the
    outcome is recorded already, and losing this lesson must not stop
    the batch."""
    bounce = ((values.get("response") or {}).get("bounce")) or {}
    kind = bounce.get("kind")
    final = values.get("status") == "failed"
    if row.channel != "email" or kind not in ("hard", "soft") or not final:
        return
    try:
        if kind == "hard":
            parsed = Bounce("hard", bounce.get("code"), bounce.get("status", ""), bounce["text"])
            suppressions.add_from_delivery(
                conn, row.firm_id, row.to_address, "hard_bounce", parsed, outbox_id=row.id
            )
            pause.check_rate(conn, row.firm_id)
        else:
            suppressions.note_soft_bounce(conn, row.firm_id, row.contact_id, row.to_address, row.id)
        if conn.dialect.name != "postgresql":
            conn.commit()
    except Exception:
        log.exception("outbox %s: could not record its bounce", row.id)
        conn.rollback()
