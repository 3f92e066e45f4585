"""What the fault tests assert on: the database (execution statuses, flow
states, outbox rows) and the receivers (messages by Message-ID and by
Idempotency-Key)."""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, field

from sqlalchemy import func, select

from app.extensions import db
from app.models import Contact, ContactFlowState, OutboxMessage, WorkflowExecution


def _all(stmt):
    return db.session.execute(stmt.execution_options(all_firms=True))


def statuses() -> dict[str, int]:
    stmt = select(WorkflowExecution.status, func.count()).group_by(WorkflowExecution.status)
    return dict(_all(stmt).all())


def outbox_statuses() -> dict[tuple[str, str], int]:
    stmt = select(OutboxMessage.channel, OutboxMessage.status, func.count()).group_by(
        OutboxMessage.channel, OutboxMessage.status
    )
    return {(channel, status): n for channel, status, n in _all(stmt).all()}


def flow_state_counts() -> tuple[int, int]:
    """(flow states, distinct (execution, node, visit)): equal when no step
    was recorded twice."""
    table = ContactFlowState.__table__
    conn = db.session.connection()
    total = conn.execute(select(func.count()).select_from(table)).scalar()
    keys = select(table.c.execution_id, table.c.node_id, table.c.visit).distinct().subquery()
    distinct = conn.execute(select(func.count()).select_from(keys)).scalar()
    return total, distinct


def outbox_ids(channel: str) -> dict[str, str]:
    """message_id -> recipient (email address, or the contact in the
    webhook payload) for every outbox row of a channel."""
    table = OutboxMessage.__table__
    rows = db.session.connection().execute(
        select(table.c.message_id, table.c.to_address).where(table.c.channel == channel)
    )
    return dict(rows.all())


def lease_holders() -> set[int]:
    """Pids of the workers holding a claimed batch right now (a lease owner
    is ``host:pid:nonce``)."""
    table = WorkflowExecution.__table__
    stmt = select(table.c.lease_owner).where(table.c.lease_owner.is_not(None)).distinct()
    db.session.rollback()
    owners = db.session.connection().execute(stmt).scalars()
    return {int(owner.split(":")[1]) for owner in owners}


def scores() -> dict[int, int]:
    """Contacts by score (score +10 is the non-idempotent last step)."""
    stmt = select(Contact.score, func.count()).group_by(Contact.score)
    return dict(_all(stmt).all())


def settle(predicate, timeout: float, every: float = 0.25) -> bool:
    """Poll the database until ``predicate()`` holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        db.session.rollback()
        if predicate():
            return True
        time.sleep(every)
    db.session.rollback()
    return False


@dataclass
class Deliveries:
    """Messages a receiver got, keyed by the id the sender put on them."""

    ids: list[str]
    recipients: dict[str, set[str]]  # id -> who it was for
    times: list[float]  # when each arrived (time.monotonic)
    peers: list[str] = field(default_factory=list)  # the sending host's address, each

    @property
    def distinct(self) -> int:
        return len(set(self.ids))

    @property
    def duplicates(self) -> int:
        return len(self.ids) - self.distinct

    def most_repeats(self) -> int:
        return max(Counter(self.ids).values(), default=0)

    def recipients_with_two_messages(self) -> list[str]:
        """Recipients that got two *different* messages for one step."""
        seen: Counter = Counter()
        for who in self.recipients.values():
            seen.update(who)
        return [who for who, n in seen.items() if n > 1]


def emails(inbox) -> Deliveries:
    with inbox.lock:
        messages = list(inbox.messages)
    ids = [m["Message-ID"] for m in messages]
    recipients: dict[str, set[str]] = {}
    for message in messages:
        recipients.setdefault(message["Message-ID"], set()).add(str(message["To"]))
    return Deliveries(ids, recipients, list(inbox.times), list(inbox.peers))


def webhooks(receiver, field: str = "contact") -> Deliveries:
    with receiver.lock:
        # A worker killed mid-request leaves a truncated body: the request
        # never completed, so the receiver never accepted it.
        requests = [
            r
            for r in receiver.requests
            if len(r["body"]) == int(r["headers"].get("content-length") or 0)
        ]
    ids = [r["headers"].get("idempotency-key") for r in requests]
    recipients: dict[str, set[str]] = {}
    for request, key in zip(requests, ids, strict=True):
        recipients.setdefault(key, set()).add(json.loads(request["body"])[field])
    return Deliveries(
        ids, recipients, [r.get("at", 0.0) for r in requests], [r.get("peer", "") for r in requests]
    )


# A receiver in the test process may note a message a little after a kill
# that came once its last byte was sent (the GIL, a busy test thread): a
# message that arrived whole was handed over before its sender died.
ARRIVAL_LAG = 1.0


def repeats_without_a_kill(kill_times: list, *deliveries: Deliveries) -> list[tuple]:
    """Repeats that no distinct kill explains.

    A repeat is allowed only when a worker died between a message's
    hand-over and its record: some kill lies between the earlier arrival
    and the repeat, and one kill explains at most one repeat. Matching
    each repeat (an interval between two arrivals of one id) to its own
    kill, earliest-ending interval first, finds such an assignment when
    one exists; returns the repeats left over: (id, seconds between the
    two arrivals, kills near it relative to the first arrival).

    A fault that lasts (a host cut off, then healed) is a ``(start, end)``
    window and explains one repeat that overlaps it: the cut host's
    message may be resent by another host while it is away. Given as
    ``(start, end, address)`` it also explains one repeat of which an
    arrival came from the cut host after the cut began, however late: its
    own hand-over, held in the network, goes on after the heal when TCP
    next retransmits, which after a long cut can be many seconds later."""
    intervals = []
    for d in deliveries:
        arrivals: dict[str, list[tuple[float, str]]] = {}
        peers = d.peers or [""] * len(d.ids)
        for message_id, at, peer in zip(d.ids, d.times, peers, strict=True):
            arrivals.setdefault(message_id, []).append((at, peer))
        for times in arrivals.values():
            times.sort()
            intervals += [(a, b, message_id) for a, b in zip(times, times[1:], strict=False)]
    windows = sorted(
        (k, k, "") if not isinstance(k, tuple) else (*k, "") if len(k) == 2 else k
        for k in kill_times
    )
    free = list(windows)

    def explains(window, first, second) -> bool:
        start, end, address = window
        if first[0] - ARRIVAL_LAG < end and start < second[0]:
            return True
        return bool(address) and any(peer == address and at > start for at, peer in (first, second))

    unexplained = []
    for first, second, message_id in sorted(intervals, key=lambda pair: pair[1][0]):
        match = next((w for w in free if explains(w, first, second)), None)
        if match is None:
            begin, end = first[0], second[0]
            near = [round(w[0] - begin, 2) for w in windows if begin - 5 < w[1] and w[0] < end + 5]
            unexplained.append((message_id, round(end - begin, 2), near))
        else:
            free.remove(match)
    return unexplained
