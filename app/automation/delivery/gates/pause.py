"""The fifth gate: a paused firm sends nothing; every due message is held.

Sending pauses by itself when the bounce or complaint rate passes the
firm's ``pause_on_bounce_rate`` (delivery/pause.py), or by hand. A held
message looks again every :data:`RECHECK`; ``resume`` wakes them all at
once. At the step and at the hand-over (a message written before the
pause waits in the outbox). One query per batch: the firms' settings.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy import Connection

from app.automation.delivery import pacing
from app.automation.delivery.gates import cap  # noqa: F401  (the gate before)
from app.automation.delivery.gates.chain import SEND, Candidate, Gate, Verdict, defer, register
from app.automation.delivery.pause import GATE

RECHECK = timedelta(minutes=10)


@register
class PauseGate(Gate):
    name = GATE

    def prepare(self, conn: Connection, candidates: Sequence[Candidate]) -> dict:
        return pacing.load(conn, {c.firm_id for c in candidates})

    def check(self, candidate: Candidate, state: dict) -> Verdict:
        settings = state.get(candidate.firm_id)
        if not settings or not settings.get("paused"):
            return SEND
        reason = settings.get("paused_reason") or "paused by hand"
        return defer(candidate.moment + RECHECK, f"sending paused: {reason}", self.name)
