"""The sixth gate: a new sending domain's warm-up (delivery/warmup.py).

On day N of the firm's ``warmup`` each From domain may send
``min(max, start * factor ** N)`` e-mails; one more is held at its step
until the next day starts in the firm's time zone (a defer, like a cap's:
the execution waits with no outbox row, so it is still written once, and
nothing is dropped). E-mails under a transactional topic and messages
outside a workflow (a double opt-in confirmation) are never held, but
count.

Counting holds across workers: the count is the outbox rows written today
(one grouped query per batch), and on PostgreSQL the gate first takes a
transaction-level advisory lock per warming firm of the batch (sorted), held
until the engine's batch has written the rows it let through, so two
workers cannot both give away a domain's last e-mail of the day. SQLite has
one writer. A firm whose schedule reached ``max`` costs nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, select, text

from app.automation.delivery import pacing, warmup
from app.automation.delivery.gates import pause  # noqa: F401  (the gate before)
from app.automation.delivery.gates.chain import SEND, Candidate, Gate, Verdict, defer, register
from app.models import Firm

LOCK_SPACE = 0x7775  # "wu": the advisory-lock namespace of warm-ups
_firms = Firm.__table__


def _lock(conn: Connection, firm_ids: list[int]) -> None:
    if conn.dialect.name != "postgresql" or not firm_ids:
        return
    conn.execute(
        text(
            "SELECT pg_advisory_xact_lock(:space, f) FROM unnest(CAST(:ids AS integer[])) AS f "
            "ORDER BY f"
        ),
        {"space": LOCK_SPACE, "ids": firm_ids},
    )


@register
class WarmupGate(Gate):
    name = warmup.GATE
    channels = frozenset({"email"})
    stages = frozenset({"step"})

    def prepare(self, conn: Connection, candidates: Sequence[Candidate]) -> dict:
        state: dict = {"days": {}, "counts": {}}
        firm_ids = sorted({c.firm_id for c in candidates})
        if not candidates or not firm_ids:
            return state
        moment = max(c.moment for c in candidates)
        stmt = select(_firms.c.id, _firms.c.settings).where(_firms.c.id.in_(firm_ids))
        for firm_id, firm_settings in conn.execute(stmt):
            warm = pacing.settings_of(firm_settings).get("warmup")
            if not warm:
                continue
            day = warmup.day_of(warm, moment, warmup.zone_of(firm_settings))
            if not day.done:
                state["days"][firm_id] = day
        if state["days"]:
            _lock(conn, sorted(state["days"]))
            state["counts"] = warmup.sent_today(conn, state["days"])
        return state

    def check(self, candidate: Candidate, state: dict) -> Verdict:
        day = state["days"].get(candidate.firm_id)
        if day is None:
            return SEND
        domain = warmup.sender_domain(getattr(candidate.config, "from_email", None))
        key = (candidate.firm_id, domain)
        counted = state["counts"].get(key, 0)
        topic = candidate.extra.get("topic")
        exempt = candidate.execution_id is None or (
            topic is not None and topic.get("kind") == "transactional"
        )
        if counted >= day.allowance and not exempt:
            return defer(day.ends, warmup.reason(domain, day), self.name)
        state["counts"][key] = counted + 1
        return SEND
