"""The fourth gate: frequency caps across workflows.

A firm's ``frequency_caps`` (``[{"max": 3, "per_days": 7}, ...]``) count the
marketing e-mails a contact got from every workflow (outbox rows written
``pending``, ``sent`` or ``recorded``; transactional topics do not count and
are not capped). One more is, by ``cap_action``, deferred until the oldest
counted e-mail leaves the period (default) or skipped with the reason.

When several held messages compete for the slot a cap frees, the
workflow's ``priority`` (1 first) decides, then the oldest hold: a message
lets go first the due, held competitors that rank before it, as many as
the free slots, and waits a little for them to take their turn.

Counting is exact across workers: on PostgreSQL the gate takes a
transaction-level advisory lock per capped contact of the batch (sorted,
so two batches cannot deadlock on them) before it counts, so two workers
cannot both give away a contact's last slot; the engine's batch commits
the rows it let through before the lock is released. SQLite has one writer.

Two queries per batch when a firm of it has caps, none otherwise: one
counts each contact's e-mails in every cap's period (with the oldest of
them, when the slot frees), one finds the held competitors. A contact
already over a cap (the cap was lowered) needs its e-mails' times for
when a slot frees: a third query reads them, for such contacts only.

The count has no upper time bound on purpose: an e-mail a worker whose
batch clock reads later committed before this batch took the contact's
lock still counts (the lock orders the decisions, not the clocks), and
one from the future stays in the period longer, never shorter.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import Connection, and_, case, func, or_, select, text

from app.automation.delivery import pacing
from app.automation.delivery.gates import window  # noqa: F401  (the gate before)
from app.automation.delivery.gates.chain import (
    SEND,
    Candidate,
    Gate,
    Verdict,
    defer,
    register,
    skip,
)
from app.automation.delivery.gates.suppression import CHUNK
from app.clock import ensure_utc
from app.models import ContactFlowState, OutboxMessage, Topic, Workflow, WorkflowExecution

COUNTED = ("pending", "sent", "recorded")
# A message that lets a better-ranked competitor go first looks again after this.
YIELD = timedelta(seconds=30)
# Held competitors due longer ago than this are not waited for (a paused
# workflow's executions do not run).
FRESH = timedelta(minutes=10)
LOCK_SPACE = 0x6361  # "ca": the advisory-lock namespace of caps

_outbox = OutboxMessage.__table__
_topics = Topic.__table__
_executions = WorkflowExecution.__table__
_states = ContactFlowState.__table__
_workflows = Workflow.__table__


def _lock(conn: Connection, contact_ids: list[int]) -> None:
    if conn.dialect.name != "postgresql" or not contact_ids:
        return
    conn.execute(
        text(
            "SELECT pg_advisory_xact_lock(:space, c) FROM unnest(CAST(:ids AS integer[])) AS c "
            "ORDER BY c"
        ),
        {"space": LOCK_SPACE, "ids": contact_ids},
    )


def _counted(contact_ids, firms, since):
    """The counted e-mails of these contacts created after ``since``."""
    marketing = or_(_topics.c.kind.is_(None), _topics.c.kind != "transactional")
    return (
        _outbox.outerjoin(_topics, _topics.c.id == _outbox.c.topic_id),
        (
            _outbox.c.contact_id.in_(contact_ids),
            _outbox.c.firm_id.in_(firms),
            _outbox.c.channel == "email",
            _outbox.c.status.in_(COUNTED),
            _outbox.c.created_at > since,
            marketing,
        ),
    )


def _counts(conn, firms, contact_ids, moment, periods) -> dict[int, dict[float, tuple]]:
    """Per contact and cap period (days): (how many counted e-mails inside
    it, the oldest of them), one row per contact."""
    found: dict[int, dict[float, tuple]] = {}
    created = _outbox.c.created_at
    starts = [moment - timedelta(days=days) for days in periods]
    columns = []
    for start in starts:
        inside = created > start
        columns += [func.count(case((inside, 1))), func.min(case((inside, created)))]
    for first in range(0, len(contact_ids), CHUNK):
        joined, where = _counted(contact_ids[first : first + CHUNK], firms, min(starts))
        stmt = (
            select(_outbox.c.contact_id, *columns)
            .select_from(joined)
            .where(*where)
            .group_by(_outbox.c.contact_id)
        )
        for contact_id, *values in conn.execute(stmt):
            found[contact_id] = {
                days: (int(values[2 * i]), ensure_utc(values[2 * i + 1]))
                for i, days in enumerate(periods)
            }
    return found


def _sent(conn, firms, contact_ids, since) -> dict[int, list[datetime]]:
    """The counted e-mails' times, per contact."""
    times: dict[int, list[datetime]] = {}
    for first in range(0, len(contact_ids), CHUNK):
        joined, where = _counted(contact_ids[first : first + CHUNK], firms, since)
        stmt = select(_outbox.c.contact_id, _outbox.c.created_at).select_from(joined).where(*where)
        for contact_id, created in conn.execute(stmt):
            times.setdefault(contact_id, []).append(ensure_utc(created))
    return times


def _competitors(conn, firms, contact_ids, moment) -> dict[int, list[tuple]]:
    """Per contact, the executions held by a cap and due now, as ranking
    keys (priority, held since, execution id)."""
    found: dict[int, list[tuple]] = {}
    gate = _states.c.action_result["gate"].as_string()
    for start in range(0, len(contact_ids), CHUNK):
        stmt = (
            select(
                _executions.c.contact_id,
                _executions.c.id,
                _workflows.c.priority,
                func.min(_states.c.entered_at),
            )
            .join(_workflows, _workflows.c.id == _executions.c.workflow_id)
            .join(
                _states,
                and_(
                    _states.c.execution_id == _executions.c.id,
                    _states.c.node_id == _executions.c.current_node,
                    _states.c.action_status == "deferred",
                ),
            )
            .where(
                _executions.c.contact_id.in_(contact_ids[start : start + CHUNK]),
                _executions.c.firm_id.in_(firms),
                _executions.c.status == "waiting",
                _executions.c.wait_reason == "held",
                _executions.c.wake_at <= moment,
                _executions.c.wake_at > moment - FRESH,
                gate == "frequency_cap",
            )
            .group_by(_executions.c.contact_id, _executions.c.id, _workflows.c.priority)
        )
        for contact_id, execution_id, priority, since in conn.execute(stmt):
            found.setdefault(contact_id, []).append(
                (int(priority or 5), ensure_utc(since), execution_id)
            )
    return found


@register
class FrequencyCapGate(Gate):
    name = "frequency_cap"
    channels = frozenset({"email"})
    stages = frozenset({"step"})

    def prepare(self, conn: Connection, candidates: Sequence[Candidate]) -> dict:
        settings = pacing.load(conn, {c.firm_id for c in candidates})
        capped = {f for f, s in settings.items() if s["frequency_caps"]}
        state = {
            "settings": settings,
            "counts": {},
            "sent": {},
            "competitors": {},
            "granted": {},
            "done": set(),
        }
        wanted = sorted({c.contact_id for c in candidates if c.contact_id and c.firm_id in capped})
        if not wanted:
            return state
        moment = max(c.moment for c in candidates)
        caps = {f: settings[f]["frequency_caps"] for f in capped}
        periods = sorted({cap["per_days"] for f in capped for cap in caps[f]})
        _lock(conn, wanted)
        counts = state["counts"] = _counts(conn, sorted(capped), wanted, moment, periods)
        firm_of = {c.contact_id: c.firm_id for c in candidates if c.contact_id}
        over = [
            contact
            for contact, inside in counts.items()
            if any(
                inside[cap["per_days"]][0] > cap["max"] for cap in caps.get(firm_of[contact], [])
            )
        ]
        if over:
            since = moment - timedelta(days=max(periods))
            state["sent"] = _sent(conn, sorted(capped), over, since)
        state["competitors"] = _competitors(conn, sorted(capped), wanted, moment)
        return state

    def check(self, candidate: Candidate, state: dict) -> Verdict:
        settings = state["settings"].get(candidate.firm_id) or pacing.settings_of(None)
        caps = settings["frequency_caps"]
        topic = candidate.extra.get("topic")
        if not caps or (topic is not None and topic.get("kind") == "transactional"):
            return SEND
        moment = candidate.moment
        contact = candidate.contact_id
        counts = state["counts"].get(contact, {})
        granted = state["granted"].get(contact, [])
        free = None
        for cap in caps:
            period = timedelta(days=cap["per_days"])
            sent, oldest = counts.get(cap["per_days"], (0, None))
            room = cap["max"] - sent - len(granted)
            if room <= 0:
                reason = pacing.cap_text(cap)
                if settings["cap_action"] == "skip" or cap["max"] == 0:
                    return skip(reason, self.name)
                until = _frees(cap, period, moment, oldest, granted, state["sent"].get(contact))
                return defer(max(until, moment + timedelta(seconds=1)), reason, self.name)
            free = room if free is None else min(free, room)
        mine = (
            int(candidate.extra.get("priority") or 5),
            candidate.extra.get("held_since") or moment,
            candidate.execution_id or 0,
        )
        ahead = [
            key
            for key in state["competitors"].get(contact, [])
            if key[2] != candidate.execution_id
            and key[2] not in state["done"]
            and (key[0], key[1], key[2]) < mine
        ]
        if len(ahead) >= (free or 0):
            cap = min(caps, key=lambda c: c["max"])
            return defer(
                moment + YIELD, pacing.cap_text(cap) + " (a higher priority first)", self.name
            )
        state["granted"].setdefault(contact, []).append(moment)
        state["done"].add(candidate.execution_id)
        return SEND


def _frees(cap, period, moment, oldest, granted, times) -> datetime:
    """When a full cap next has room: when the oldest of the e-mails that
    fill it leaves its period. A cap is reached exactly (this run stops
    granting at it), so that is the oldest e-mail inside the period, unless
    the contact was over the cap before the run (``times`` then read)."""
    if times is not None:
        inside = sorted([t for t in times if t > moment - period] + granted)
        if len(inside) >= cap["max"]:
            return inside[len(inside) - cap["max"]] + period
    return min([*granted, *([oldest] if oldest is not None else [])]) + period
