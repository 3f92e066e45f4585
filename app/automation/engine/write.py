"""Writing a walked batch back: one transaction, set-based statements.

First the batch re-checks its claim under a row lock: only executions
still active (``running``, or ``waiting`` when the claim took a due wait)
and still leased to this owner are written (a worker that paused past its
lease, an execution canceled or woken meanwhile, writes nothing — lease
fencing). Then CRM changes, outbox rows, flow states,
dead letters and execution updates go out as bulk INSERTs and
``executemany`` UPDATEs ordered by id (no deadlocks between workers), and
the transaction commits once. Any error rolls everything back.
"""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import delete, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite

from app.automation.engine.bulk import bulk_insert, bulk_update
from app.automation.engine.claim import id_in, is_postgres
from app.automation.hooks import facts as hook_facts
from app.automation.nodes.step import Effects
from app.clock import now
from app.extensions import db
from app.models import (
    Contact,
    ContactFlowState,
    DeadLetter,
    Deal,
    Notification,
    OutboxMessage,
    Tag,
    Task,
    WorkflowExecution,
    contact_tags,
    list_members,
)
from app.models.execution import ACTIVE_STATUSES

executions = WorkflowExecution.__table__
flows = ContactFlowState.__table__


def _insert(table):
    return (postgresql.insert if is_postgres() else sqlite.insert)(table)


def owned_ids(conn, owner: str, ids: list[int]) -> set[int]:
    """Lock this batch's rows and keep those still ours and active."""
    if not ids:
        return set()
    ids = sorted(ids)
    mine = (
        id_in(executions.c.id, ids),
        executions.c.lease_owner == owner,
        executions.c.status.in_(ACTIVE_STATUSES),
    )
    if is_postgres():
        stmt = select(executions.c.id).where(*mine).order_by(executions.c.id).with_for_update()
        return set(conn.execute(stmt).scalars())
    # SQLite: take the database write lock first, so nothing changes between
    # this check and the writes that follow.
    conn.execute(update(executions).where(*mine).values(lease_owner=owner))
    return set(conn.execute(select(executions.c.id).where(*mine)).scalars())


def write_back(owner: str, effects: list[Effects], state) -> list[Effects]:
    """Write the effects of executions still owned; returns those written.
    Commits; rolls back and re-raises on error."""
    session = db.session
    try:
        conn = session.connection()
        kept_ids = owned_ids(conn, owner, [e.execution_id for e in effects])
        kept = [e for e in effects if e.execution_id in kept_ids and e.execution]
        _crm(conn, kept, state)
        _outbox(conn, kept)
        _flow_states(conn, kept)
        _dead_letters(conn, kept)
        _executions(conn, owner, kept)
        _hook_facts(conn, kept, state)
        session.commit()
    except Exception:
        session.rollback()
        raise
    return kept


def _outbox(conn, kept: list[Effects]) -> None:
    rows = [row for e in kept for row in e.outbox]
    # A re-run finds the step's row already there and keeps it (rule 3).
    bulk_insert(conn, OutboxMessage.__table__, rows, conflict=("execution_id", "node_id", "visit"))


def _hook_facts(conn, kept: list[Effects], state) -> None:
    """REST hook deliveries of the batch's started, ended and goal-reaching
    executions, in the batch's transaction (docs/ARCHITECTURE.md rule 3);
    nothing at all when no subscription hears the batch's workflows."""
    by_fact: dict[str, list[int]] = defaultdict(list)
    hooked = state.hooked_workflows
    for e in kept:
        if e.workflow_id not in hooked:
            continue
        for fact in e.hook_facts:
            by_fact[fact].append(e.execution_id)
    if by_fact:
        state.hook_deliveries += hook_facts.record_walked(
            conn,
            by_fact["execution.started"],
            by_fact["execution.completed"],
            by_fact["goal.reached"],
            state.moment,
        )


def _same_keys(rows: list[dict]) -> list[list[dict]]:
    """executemany needs the same keys in every row."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for row in rows:
        groups[tuple(sorted(row))].append(row)
    return list(groups.values())


def _flow_states(conn, kept: list[Effects]) -> None:
    new, changed = [], []
    for e in kept:
        for row in e.flow:
            if row["exists"]:
                changed.append({k: v for k, v in row.items() if k != "exists"})
            else:
                new.append(row)  # bulk_insert skips "exists" (not a column)
    # The walk makes every value with its column's type (engine_walk._flow).
    bulk_insert(conn, flows, new, binary=True)
    # PostgreSQL partitions flow states by entered_at: with it in the key
    # each row's update reads one month's index, not every month's.
    keys = ("execution_id", "node_id", "visit")
    if conn.dialect.name == "postgresql":
        keys += ("entered_at",)
    bulk_update(conn, flows, changed, keys=keys)


def _dead_letters(conn, kept: list[Effects]) -> None:
    rows = [e.dead_letter for e in kept if e.dead_letter]
    if rows:
        conn.execute(DeadLetter.__table__.insert(), rows)


_EXECUTION_COLUMNS = (
    "status",
    "current_node",
    "execution_path",
    "context_data",
    "goal_reached",
    "attempts",
    "steps_taken",
    "updated_at",
    "wake_at",
    "wait_reason",
    "last_error",
    "completed_at",
)


def _executions(conn, owner: str, kept: list[Effects]) -> None:
    rows = [
        {"id": e.execution_id, **{k: e.execution[k] for k in _EXECUTION_COLUMNS}}
        for e in sorted(kept, key=lambda e: e.execution_id)
    ]
    bulk_update(
        conn,
        executions,
        rows,
        keys=("id",),
        fixed={"lease_owner": None, "lease_until": None},
        where_equal={"lease_owner": owner},
    )


# -- CRM ----------------------------------------------------------------------
def _crm(conn, kept: list[Effects], state) -> None:
    by_firm: dict[int, list[Effects]] = defaultdict(list)
    for e in kept:
        by_firm[e.firm_id].append(e)
    for firm_id, firm_effects in by_firm.items():
        _tags(conn, firm_id, firm_effects, state)
        _lists(conn, firm_effects)
    _contacts(conn, kept)
    _deals(conn, kept)
    bulk_insert(conn, Task.__table__, [row for e in kept for row in e.tasks])
    bulk_insert(conn, Notification.__table__, [row for e in kept for row in e.notifications])


def _tags(conn, firm_id: int, firm_effects: list[Effects], state) -> None:
    adds = {(e.execution_id, c, n) for e in firm_effects for c, n in e.tag_adds}
    removes = {(e.execution_id, c, n) for e in firm_effects for c, n in e.tag_removes}
    if not adds and not removes:
        return
    names = {n for _, _, n in adds | removes}
    known = state.firm_tags(firm_id, names)
    missing = sorted({n for _, _, n in adds} - known.keys())
    if missing:
        tags = Tag.__table__
        moment = state.moment
        conn.execute(
            _insert(tags).on_conflict_do_nothing(index_elements=["firm_id", "name"]),
            [{"firm_id": firm_id, "name": n, "created_at": moment} for n in missing],
        )
        known = state.firm_tags(firm_id, names | set(missing))
    if adds:
        rows = sorted({(c, known[n]) for _, c, n in adds})
        bulk_insert(
            conn,
            contact_tags,
            [{"contact_id": c, "tag_id": t, "created_at": state.moment} for c, t in rows],
            conflict=(),
        )
    if removes:
        pairs = sorted({(c, known[n]) for _, c, n in removes if n in known})
        if pairs:
            conn.execute(
                delete(contact_tags).where(
                    tuple_(contact_tags.c.contact_id, contact_tags.c.tag_id).in_(pairs)
                )
            )
    for e in firm_effects:
        for kind, items in (("added", e.tag_adds), ("removed", e.tag_removes)):
            for contact_id, name in items:
                e.events.append(
                    {
                        "event_type": f"contact_tag_{kind}",
                        "contact_id": contact_id,
                        "data": {"tag": name, "tag_id": known.get(name)},
                    }
                )


def _lists(conn, firm_effects: list[Effects]) -> None:
    adds = sorted({pair for e in firm_effects for pair in e.list_adds})
    removes = sorted({pair for e in firm_effects for pair in e.list_removes})
    if adds:
        bulk_insert(
            conn,
            list_members,
            [{"contact_id": c, "list_id": lst, "created_at": now()} for c, lst in adds],
            conflict=(),
        )
    if removes:
        conn.execute(
            delete(list_members).where(
                tuple_(list_members.c.contact_id, list_members.c.list_id).in_(removes)
            )
        )
    for e in firm_effects:
        for kind, items in (("added", e.list_adds), ("removed", e.list_removes)):
            for contact_id, list_id in items:
                e.events.append(
                    {
                        "event_type": f"contact_list_{kind}",
                        "contact_id": contact_id,
                        "data": {"list": list_id},
                    }
                )


def _contacts(conn, kept: list[Effects]) -> None:
    merged: dict[int, dict] = {}
    for e in kept:
        for contact_id, change in e.contact_changes.items():
            into = merged.setdefault(contact_id, {"score": 0, "set": {}, "custom": {}})
            into["score"] += change["score"]
            into["set"].update(change["set"])
            into["custom"].update(change["custom"])
    if not merged:
        return
    contacts = Contact.__table__
    moment = kept[0].execution["updated_at"]
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for contact_id in sorted(merged):
        change = merged[contact_id]
        row = {"id": contact_id, "updated_at": moment, **change["set"]}
        delta = bool(change["score"]) and "score" not in change["set"]
        if delta:
            row["score"] = change["score"]
        if change["custom"]:
            row["custom_fields"] = change["custom"]
        groups[(delta, tuple(sorted(row)))].append(row)
    for (delta, _), rows in groups.items():
        bulk_update(
            conn,
            contacts,
            rows,
            keys=("id",),
            increments=("score",) if delta else (),
            json_merge=("custom_fields",),
        )


def _deals(conn, kept: list[Effects]) -> None:
    deals = Deal.__table__
    new = []
    for e in kept:
        for row in e.deals_new:
            new.append(row)
            data = {
                k: (str(v) if k == "value" else v)
                for k, v in row.items()
                if k in ("title", "value", "stage", "status")
            }
            e.events.append(
                {"event_type": "deal_created", "contact_id": row["contact_id"], "data": data}
            )
            if row["status"] in ("won", "lost"):
                e.events.append(
                    {
                        "event_type": f"deal_{row['status']}",
                        "contact_id": row["contact_id"],
                        "data": data,
                    }
                )
    for group in _same_keys(new):
        conn.execute(deals.insert(), group)
    for e in kept:
        for deal_id, fields in e.deal_updates:
            old = fields.pop("_old", {})
            conn.execute(update(deals).where(deals.c.id == deal_id).values(**fields))
            data = {
                "deal_id": deal_id,
                **{k: str(v) if k == "value" else v for k, v in fields.items() if k != "closed_at"},
            }
            if "stage" in fields and fields["stage"] != old.get("stage"):
                e.events.append(
                    {
                        "event_type": "deal_stage_changed",
                        "contact_id": _contact_of(e),
                        "data": {
                            **data,
                            "from_stage": old.get("stage"),
                            "to_stage": fields["stage"],
                        },
                    }
                )
            if fields.get("status") in ("won", "lost") and old.get("status") != fields["status"]:
                e.events.append(
                    {
                        "event_type": f"deal_{fields['status']}",
                        "contact_id": _contact_of(e),
                        "data": data,
                    }
                )


def _contact_of(e: Effects) -> int | None:
    return e.contact_id
