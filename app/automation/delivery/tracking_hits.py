"""Opens and clicks: one committed row per request, the rest in batches.

A large send's recipients open and click hundreds of times a second, most
of it through a few image proxies. The pixel and the click redirect each
run one statement, an INSERT of a :class:`~app.models.TrackingHit`
selected from the message the signed token names, and commit it before
they answer: a token whose firm does not own the message inserts nothing
and gets a 404, as before. What else an open or a click costs (the
machine test, the ``TrackingEvent`` row, the trigger bus and the workflows
it starts) is paid once per batch by :func:`process_hits`:

- with ``TRACKING_DEFERRED`` (on when Redis is configured), on a worker,
  after a coalesced ``tracking`` kick, and by the periodic sweep should a
  kick be lost;
- otherwise (the embedded mode) in the request itself, right after the
  hit's commit.

A batch is claimed by deleting its hits (``DELETE ... RETURNING``, locked
rows skipped), in the transaction that records their events and
dispatches them, so a worker killed mid-batch leaves the hits for the next
job and a hit is counted once (docs/ARCHITECTURE.md, "Tracking hits").
"""

from __future__ import annotations

import logging
import time
from datetime import datetime
from functools import lru_cache

from flask import current_app
from sqlalchemy import String, Text, bindparam, delete, func, select

from app.automation.delivery import engagement
from app.automation.delivery.tracking import BadToken, read_token
from app.automation.delivery.tracking_events import (
    EVENT_OF_KIND,
    MAX_TEXT,
    Tracked,
    bus_data,
    bus_event_id,
)
from app.automation.triggers.bus import emit_derived
from app.clock import now
from app.extensions import db
from app.models import OutboxMessage, TrackingEvent, TrackingHit
from app.models.base import UTCDateTime
from app.queue import clear_kick, hold_kick, kick_tracking, kick_tracking_soon

log = logging.getLogger(__name__)

# Hits a batch takes per firm; the job goes on while batches come back full.
BATCH = 500
# A kick job keeps taking batches for at most this long, then hands over.
JOB_BUDGET_SECONDS = 20.0
# What a batch needs of each hit's message.
_MESSAGE_COLUMNS = (
    OutboxMessage.id,
    OutboxMessage.contact_id,
    OutboxMessage.execution_id,
    OutboxMessage.workflow_id,
    OutboxMessage.node_id,
    OutboxMessage.message_id,
    OutboxMessage.sent_at,
)


def record(kind: str, token: str, user_agent: str = "") -> Tracked | None:
    """Take an open (``kind`` "open") or a click: one INSERT, committed.
    Returns the message the token names (a click's ``url`` is where to send
    the browser), or None for a bad token or a message the token's firm
    does not own."""
    try:
        parsed = read_token(kind, token)
    except BadToken:
        return None
    params = {
        "outbox_id": parsed.outbox_id,
        "firm_id": parsed.firm_id,
        "kind": kind,
        "url": parsed.url[: MAX_TEXT * 4],
        "user_agent": (user_agent or "")[:MAX_TEXT],
        "at": now(),
    }
    # One statement on its own connection in autocommit: no BEGIN and
    # COMMIT round trips around it (the request does nothing else here).
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        taken = conn.execute(_insert_hit(), params).first()
    if taken is None:
        return None
    if deferred():
        kick_tracking_soon()
    else:
        process_hits()
    return Tracked(parsed.firm_id, parsed.outbox_id, taken.contact_id, parsed.url)


@lru_cache(maxsize=1)
def _insert_hit():
    """The hit's INSERT ... SELECT from its message, built once.

    The firm is the token's, checked against the message's own column:
    the tenancy rule (app/tenancy.py) scopes ORM reads, and this is one
    Core statement."""
    hits = TrackingHit.__table__
    outbox = OutboxMessage.__table__
    source = select(
        outbox.c.firm_id,
        outbox.c.id,
        outbox.c.contact_id,
        bindparam("kind", type_=String),
        bindparam("url", type_=Text),
        bindparam("user_agent", type_=Text),
        bindparam("at", type_=UTCDateTime),
    ).where(
        outbox.c.id == bindparam("outbox_id"),
        outbox.c.firm_id == bindparam("firm_id"),
        outbox.c.channel == "email",
    )
    columns = ["firm_id", "outbox_id", "contact_id", "kind", "url", "user_agent", "created_at"]
    return hits.insert().from_select(columns, source).returning(hits.c.contact_id)


def deferred() -> bool:
    """Whether hits wait for a worker (``TRACKING_DEFERRED``; unset: with
    Redis) rather than being processed by the request that took them."""
    setting = current_app.config.get("TRACKING_DEFERRED")
    return bool(current_app.config.get("REDIS_URL")) if setting is None else bool(setting)


def run_tracking_job() -> int:
    """The ``tracking`` kick's job: process hits while there are any.

    One job at a time: it keeps the kick marker its kick set while it
    works, so the requests arriving meanwhile enqueue nothing and their
    hits join its next batch; after a batch that was not full it waits
    ``TRACKING_LINGER_MS`` for more. When a round finds nothing it lets the
    marker go and looks once more, so a hit committed just before (whose
    kick found the marker set) is not left behind. A worker killed while
    holding the marker delays the next kicks until it expires; the periodic
    ``tracking`` job still processes the hits meanwhile."""
    linger = float(current_app.config.get("TRACKING_LINGER_MS") or 0) / 1000
    started = time.monotonic()
    total = 0
    while True:
        done = process_hits()
        total += done
        if time.monotonic() - started > JOB_BUDGET_SECONDS:
            clear_kick("tracking")
            if done:
                kick_tracking()  # a fresh job goes on, so other jobs get a turn
            break
        if done >= BATCH:
            continue
        if done:
            db.session.remove()
            time.sleep(linger)
            continue
        clear_kick("tracking")
        late = process_hits()
        total += late
        if not late or not hold_kick("tracking", JOB_BUDGET_SECONDS * 2):
            break
    return total


def process_hits(limit: int = BATCH) -> int:
    """Turn up to ``limit`` waiting hits per firm into tracking events and
    trigger-bus events; returns how many hits were taken."""
    firms = (
        db.session.execute(select(TrackingHit.firm_id).distinct().execution_options(all_firms=True))
        .scalars()
        .all()
    )
    db.session.rollback()
    taken = 0
    for firm_id in firms:
        try:
            taken += _process_firm(firm_id, limit, dispatch=True)
        except Exception:
            log.exception("tracking hits of firm %s failed as a batch; one by one now", firm_id)
            db.session.rollback()
            taken += _one_by_one(firm_id, limit)
    return taken


def _one_by_one(firm_id: int, limit: int) -> int:
    """After a failed batch: each hit alone, so one the bus cannot take
    holds back no other; that one is recorded without its bus event (the
    recipient's open or click is never lost to a trigger's failure)."""
    taken = 0
    for _ in range(limit):
        try:
            done = _process_firm(firm_id, 1, dispatch=True)
        except Exception:
            log.exception(
                "a tracking hit of firm %s failed; recorded without its bus event", firm_id
            )
            db.session.rollback()
            done = _process_firm(firm_id, 1, dispatch=False)
        if not done:
            break
        taken += done
    return taken


def _process_firm(firm_id: int, limit: int, dispatch: bool) -> int:
    taken = 0

    def derive() -> list[dict]:
        nonlocal taken
        hits = _claim(firm_id, limit)
        taken = len(hits)
        events = _record_events(firm_id, hits)
        return events if dispatch else []

    emit_derived(firm_id, derive)
    return taken


def _claim(firm_id: int, limit: int) -> list:
    """Delete the firm's oldest hits (rows another worker holds are
    skipped) and return them, oldest first."""
    oldest = (
        select(TrackingHit.id)
        .where(TrackingHit.firm_id == firm_id)
        .order_by(TrackingHit.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    stmt = (
        delete(TrackingHit)
        .where(TrackingHit.id.in_(oldest))
        .returning(
            TrackingHit.id,
            TrackingHit.outbox_id,
            TrackingHit.kind,
            TrackingHit.url,
            TrackingHit.user_agent,
            TrackingHit.created_at,
        )
        .execution_options(synchronize_session=False)
    )
    return sorted(db.session.execute(stmt).all(), key=lambda hit: hit.id)


def _record_events(firm_id: int, hits: list) -> list[dict]:
    """Insert the hits' tracking events; returns the bus events of those a
    person made (machines are recorded, not counted)."""
    if not hits:
        return []
    outbox_ids = {hit.outbox_id for hit in hits}
    messages = {
        row.id: row
        for row in db.session.execute(
            select(*_MESSAGE_COLUMNS).where(OutboxMessage.id.in_(outbox_ids))
        )
    }
    decoys = _decoy_clicks({hit.outbox_id for hit in hits if hit.kind == "click"})
    decoy = engagement.decoy_url()
    rows: list[dict] = []
    events: list[dict] = []
    for hit in hits:
        message = messages.get(hit.outbox_id)
        if message is None:  # deleted since: nothing to count it against
            continue
        if hit.kind == "click":
            reason = engagement.click_reason(
                hit.user_agent, hit.url, message.sent_at, hit.created_at, decoys.get(message.id)
            )
            if hit.url == decoy:
                decoys[message.id] = hit.created_at
        else:
            reason = engagement.open_reason(hit.user_agent)
        rows.append(
            {
                "firm_id": firm_id,
                "outbox_id": message.id,
                "contact_id": message.contact_id,
                "execution_id": message.execution_id,
                "workflow_id": message.workflow_id,
                "node_id": message.node_id,
                "kind": hit.kind,
                "url": hit.url,
                "user_agent": hit.user_agent,
                "event_id": None,
                "machine": reason is not None,
                "detail": {"machine": reason} if reason else {},
                "created_at": hit.created_at,
            }
        )
        if reason is None and message.contact_id is not None:
            events.append(_bus_event(firm_id, message, hit))
    if rows:
        db.session.execute(TrackingEvent.__table__.insert(), rows)
    return events


def _decoy_clicks(outbox_ids: set[int]) -> dict[int, datetime]:
    """When each message's hidden link was last followed, if it was."""
    if not outbox_ids:
        return {}
    stmt = (
        select(TrackingEvent.outbox_id, func.max(TrackingEvent.created_at))
        .where(
            TrackingEvent.outbox_id.in_(outbox_ids),
            TrackingEvent.kind == "click",
            TrackingEvent.url == engagement.decoy_url(),
        )
        .group_by(TrackingEvent.outbox_id)
    )
    return {outbox_id: at for outbox_id, at in db.session.execute(stmt)}


def _bus_event(firm_id: int, message, hit) -> dict:
    url = hit.url if hit.kind == "click" else ""
    return {
        "firm_id": firm_id,
        "event_type": EVENT_OF_KIND[hit.kind],
        "contact_id": message.contact_id,
        "data": bus_data(message, url),
        "event_id": bus_event_id(message, hit.kind, hit.url),
        "source": "email",
    }
