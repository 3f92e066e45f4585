"""The seventh and last gate: the global rate limit, right before the
hand-over (delivery/rate_limit.py). It is the only gate that spends
something, so it comes after every gate that may still say no.

One reservation per batch: the first message with a limit reserves slots
for itself and every later message of the claimed batch that has one, in
the order the dispatcher hands them over. Each message then takes the
earliest reserved slot for its keys (a message an earlier gate skipped
leaves its slot to the next), waits for it (under a second) and goes;
those the reservation could not give a slot are deferred in the outbox
until about when they may have one. A slot that passed unused by more than
a quarter of an interval (the worker fell behind: a slow hand-over, a new
SMTP connection) is dropped, not used late, where it could crowd the next
second; when the slots run out the next message reserves again. A worker
whose hand-overs take longer than an interval reserves only as many as it
can use in time. One query per batch (the firms' settings).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy import Connection

from app.automation.delivery import pacing, rate_limit
from app.automation.delivery.gates import warmup  # noqa: F401  (the gate before)
from app.automation.delivery.gates.chain import SEND, Candidate, Gate, Verdict, defer, register
from app.clock import now

# A slot passed by more than this share of its interval is not used: the
# message plus its hand-over must land within one interval of its slot, or
# two could crowd one second (docs/SENDING.md "Rate limits").
STALE = 0.25
# This process's recent time per hand-over (seconds, a moving average): a
# worker slower than the limit reserves only what it can use in time.
_pace = {"handover": 0.0}


def _reason(settings: dict) -> str:
    limit = settings.get("max_per_second")
    return f"rate limit {limit} a second" if limit else "rate limit of the recipient's domain"


@register
class RateLimitGate(Gate):
    name = "rate_limit"
    stages = frozenset({"dispatch"})

    def prepare(self, conn: Connection, candidates: Sequence[Candidate]) -> dict:
        settings = pacing.load(conn, {c.firm_id for c in candidates})
        queue = []  # (outbox id, keys) of the messages with a limit, in order
        for c in candidates:
            keys = rate_limit.keys_for(c.firm_id, c.key, settings.get(c.firm_id) or {})
            if keys:
                queue.append((c.outbox_id, tuple(keys)))
        # pools: per set of keys, the reserved slots not used yet, earliest first.
        return {"conn": conn, "settings": settings, "queue": queue, "pools": {}, "retry": {}}

    def _reserve(self, state: dict, outbox_id, keys: tuple) -> None:
        """Slots for this message and those after it in the batch: as many
        as this worker can hand over before the last one's slot goes stale
        (all of them while a hand-over takes less than an interval)."""
        queue = state["queue"]
        position = next((i for i, (o, _) in enumerate(queue) if o == outbox_id), None)
        wanted = [(outbox_id, keys)] + (queue[position + 1 :] if position is not None else [])
        spacing = max(i for _, i in keys)
        behind = _pace["handover"] - spacing  # how much later each next slot is reached
        if behind > 0:
            wanted = wanted[: 1 + int(STALE * spacing / behind)]
        reservation = rate_limit.reserve(state["conn"], [list(k) for _, k in wanted])
        retry_at = time.monotonic() + reservation.retry
        for index, (ident, message_keys) in enumerate(wanted):
            if index < len(reservation.slots):
                state["pools"].setdefault(message_keys, deque()).append(reservation.slots[index])
                state["retry"].pop(ident, None)
            else:
                state["retry"][ident] = retry_at

    def _slot(self, state: dict, keys: tuple) -> float | None:
        """The earliest reserved slot for these keys that is not stale."""
        pool = state["pools"].get(keys)
        stale = time.monotonic() - STALE * min(i for _, i in keys)
        while pool and pool[0] < stale:
            pool.popleft()  # passed unused: a gap, never an excess
        return pool.popleft() if pool else None

    def check(self, candidate: Candidate, state: dict) -> Verdict:
        settings = state["settings"].get(candidate.firm_id) or {}
        keys = tuple(rate_limit.keys_for(candidate.firm_id, candidate.key, settings))
        if not keys:
            return SEND
        ident = candidate.outbox_id
        slot = self._slot(state, keys)
        if slot is None and ident not in state["retry"]:
            self._reserve(state, ident, keys)
            slot = self._slot(state, keys)
        if slot is None:
            wait = max(state["retry"].pop(ident, 0.0) - time.monotonic(), 0.05)
            return defer(now() + timedelta(seconds=wait), _reason(settings), self.name)
        moment = time.monotonic()
        last = state.get("sent_at")
        if last is not None:  # the previous message's hand-over, gates included
            _pace["handover"] += 0.3 * (moment - last - _pace["handover"])
        if slot > moment:
            time.sleep(slot - moment)
        state["sent_at"] = max(moment, slot)
        return SEND
