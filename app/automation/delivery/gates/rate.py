"""The seventh and last gate: the global rate limit, right before the
hand-over (delivery/rate_limit.py). It is the only gate that writes: the
slot it takes is spent, so it comes after every gate that may still say
no. A slot under a second ahead is waited for here; a later one defers the
message in the outbox until about then. One query per batch (the firms'
settings), one conditional write per message that has a limit.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy import Connection

from app.automation.delivery import pacing, rate_limit
from app.automation.delivery.gates import warmup  # noqa: F401  (the gate before)
from app.automation.delivery.gates.chain import SEND, Candidate, Gate, Verdict, defer, register
from app.clock import now


@register
class RateLimitGate(Gate):
    name = "rate_limit"
    stages = frozenset({"dispatch"})

    def prepare(self, conn: Connection, candidates: Sequence[Candidate]) -> dict:
        return {"conn": conn, "settings": pacing.load(conn, {c.firm_id for c in candidates})}

    def check(self, candidate: Candidate, state: dict) -> Verdict:
        settings = state["settings"].get(candidate.firm_id)
        keys = rate_limit.keys_for(candidate.firm_id, candidate.key, settings or {})
        if not keys:
            return SEND
        taken, wait = rate_limit.take(state["conn"], keys)
        if taken:
            if wait > 0:
                time.sleep(wait)
            return SEND
        limit = settings.get("max_per_second")
        reason = f"rate limit {limit} a second" if limit else "rate limit of the recipient's domain"
        return defer(now() + timedelta(seconds=max(wait, 0.05)), reason, self.name)
