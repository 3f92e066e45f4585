"""The event bus: an event in, the matching workflows started, once.

Every source (CRM ORM events, public forms, site tracking, e-mail tracking,
the ``/api/v1/events/`` endpoint, the engine's own CRM actions) ends here::

    emit(firm_id, "contact_tag_added", contact_id, {"tag": "vip"},
         event_id="...", source="ui", exclude_workflow_id=None)

An event is a dict with the keys ``firm_id``, ``event_type``,
``contact_id``, ``data`` (dict, the type's shape below), ``event_id``
(optional: a repeat of a (firm, event_id) already seen is a no-op; one is
generated when missing), ``source`` (short label: "ui", "api", "form",
"site", "email", "workflow", "scheduler"...) and ``exclude_workflow_id``
(the workflow whose action caused the event: it is never started by it, so
a workflow never loops on itself). ``emit_many`` takes a list of such dicts.

``data`` per type (what the configuration filters in ``filters.py`` read):
- ``form_submitted``: ``form_id``, ``submission_id``, ``fields``
- ``email_*``: ``workflow_id``, ``node``, ``email_id`` (outbox id), ``url`` (clicks)
- ``page_visited`` / ``site_activity``: ``url``, ``referrer``
- ``contact_updated``: ``changed`` ``{field: [old, new]}`` (``custom_fields`` as a
  whole dict pair). A changed ``score`` also yields ``score_threshold_reached``
  / ``score_threshold_dropped`` events, derived here (crossing, per threshold).
- ``contact_tag_*``: ``tag`` (name), ``tag_id``; ``contact_list_*``: ``list`` (id), ``list_name``
- ``deal_*``: ``deal_id``, ``title``, ``value``, ``stage``, ``status``; plus
  ``from_stage``/``to_stage`` or ``old_value``/``new_value`` for the changes.
- ``topic_subscriptions_changed``: ``changes`` ``{topic id: subscribed}`` (no
  trigger type; audiences testing topics re-check the contact)
- ``segment_entered`` / ``segment_left``: ``audience`` (id), ``audience_name``

Before matching triggers, the firm's audiences are re-checked for the
events' contacts (app/automation/audiences/membership.py); who entered or
left becomes segment events recorded and dispatched with the rest.

The event is recorded in ``EventLog`` in the same transaction as the
executions it starts (one commit for both), so a crash between the two
cannot leave a logged event that never started its workflows. A batch of
events enrolls set-based: one INSERT per (workflow, trigger), one commit.
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable

from sqlalchemy import bindparam, exists, select, text

from app.automation.audiences.membership import refresh_contacts
from app.automation.engine.deadlocks import retry_on_deadlock
from app.automation.engine.enrollment import NotEnrollable, entry_of, start_entries
from app.automation.engine.wakes import wake_contact_waits
from app.automation.operations import metrics
from app.automation.triggers.audience import contact_matches
from app.automation.triggers.filters import rule_group_of
from app.automation.triggers.registry import event_matches, keys_driven_by
from app.clock import now
from app.extensions import db
from app.models import (
    Audience,
    AuditLog,
    Contact,
    EventKey,
    EventLog,
    PublishedTrigger,
    Workflow,
)
from app.models.audit import record
from app.tenancy import current_actor, firm_context

log = logging.getLogger(__name__)

SCORE_EVENTS = ("score_threshold_reached", "score_threshold_dropped")


def emit(
    firm_id: int,
    event_type: str,
    contact_id: int | None,
    data: dict | None = None,
    event_id: str | None = None,
    source: str = "",
    exclude_workflow_id: int | None = None,
) -> list[int]:
    """Record one event and start the workflows it triggers.

    Returns the ids of the executions started. Commits."""
    event = {
        "firm_id": firm_id,
        "event_type": event_type,
        "contact_id": contact_id,
        "data": data or {},
        "event_id": event_id,
        "source": source,
        "exclude_workflow_id": exclude_workflow_id,
    }
    return _dispatch([event])


def emit_many(events: Iterable[dict]) -> int:
    """Record many events (any firms) set-based; returns executions started."""
    return len(_dispatch(list(events)))


def emit_each(events: Iterable[dict]) -> dict[str, list[int]]:
    """Like :func:`emit_many`, but says what became of each event:
    ``{event_id: [execution ids started]}`` for the events recorded now;
    an event whose id was seen before is missing from it."""
    per_event: dict[str, list[int]] = {}
    _dispatch(list(events), per_event)
    return per_event


def emit_derived(firm_id: int, derive: Callable[[], list[dict]]) -> int:
    """Run ``derive`` (a change that yields events: an audience's periodic
    membership diff) and dispatch its events in the same transaction, run
    again as one on a deadlock; returns how many events it yielded."""
    yielded = 0

    def work() -> None:
        nonlocal yielded
        events = _with_derived(derive())
        yielded = len(events)
        _dispatch_firm(firm_id, events)

    with firm_context(firm_id):
        retry_on_deadlock(work)
    return yielded


def _dispatch(events: list[dict], per_event: dict | None = None) -> list[int]:
    by_firm: dict[int, list[dict]] = defaultdict(list)
    for event in _with_derived(events):
        by_firm[int(event["firm_id"])].append(event)
    started: list[int] = []
    for firm_id, firm_events in by_firm.items():
        with firm_context(firm_id):
            started.extend(retry_on_deadlock(_dispatch_firm, firm_id, firm_events, per_event))
    return started


def _with_derived(events: list[dict]) -> list[dict]:
    """Normalise the dicts and add the score-crossing events."""
    out: list[dict] = []
    for raw in events:
        event = {
            "firm_id": raw["firm_id"],
            "event_type": raw["event_type"],
            "contact_id": raw.get("contact_id"),
            "data": dict(raw.get("data") or {}),
            "event_id": str(raw.get("event_id") or f"evt_{uuid.uuid4().hex}")[:200],
            "source": str(raw.get("source") or "")[:30],
            "exclude_workflow_id": raw.get("exclude_workflow_id"),
        }
        out.append(event)
        score = (event["data"].get("changed") or {}).get("score")
        if event["event_type"] == "contact_updated" and score and len(score) == 2:
            old, new = score
            if old != new and new is not None:
                kind = SCORE_EVENTS[0] if (new or 0) > (old or 0) else SCORE_EVENTS[1]
                out.append(
                    {
                        **event,
                        "event_type": kind,
                        "data": {"old_score": old, "new_score": new, "score": new},
                        "event_id": f"{event['event_id']}:score"[:200],
                    }
                )
    return out


def _dispatch_firm(firm_id: int, events: list[dict], per_event: dict | None = None) -> list[int]:
    segmented = _forget_unknown_contacts(firm_id, events)
    fresh = _record(firm_id, events)
    if segmented:
        fresh.extend(_segment_changes(firm_id, fresh))
    if per_event is not None:  # rebuilt on a deadlock retry
        for event in fresh:
            per_event[event["event_id"]] = []
    if not fresh:
        db.session.commit()
        return []
    triggers = _active_triggers({e["event_type"] for e in fresh})
    # What each event starts, grouped per (workflow, trigger) in event order,
    # so a batch of events enrolls set-based (one INSERT per group).
    plans: dict[tuple[int, int], tuple[Workflow, PublishedTrigger, list[dict]]] = {}
    for event in fresh:
        for trigger, workflow in triggers.get(event["event_type"], ()):
            if workflow.id == event["exclude_workflow_id"] or event["contact_id"] is None:
                continue
            if not event_matches(trigger.trigger_type, trigger.configuration, event["data"]):
                continue
            if not contact_passes(trigger, event["contact_id"], event["data"]):
                continue
            plans.setdefault((workflow.id, trigger.id), (workflow, trigger, []))[2].append(event)
    started: list[int] = []
    counts: dict[str, int] = {}
    # Workflow by workflow (contact by contact within): concurrent batches
    # take the one-active-execution index entries in one order (deadlocks.py).
    for workflow, trigger, planned in sorted(plans.values(), key=lambda p: (p[0].id, p[1].id)):
        for execution_id, _, event_id in _start(workflow, trigger, planned):
            started.append(execution_id)
            counts[event_id] = counts.get(event_id, 0) + 1
            if per_event is not None and event_id in per_event:
                per_event[event_id].append(execution_id)
    if counts:
        table = EventLog.__table__
        stmt = (
            table.update()
            .where(table.c.firm_id == firm_id, table.c.event_id == bindparam("key"))
            .values(executions_started=bindparam("count"))
        )
        db.session.execute(stmt, [{"key": k, "count": n} for k, n in counts.items()])
    # Condition waits and waits in rule-goal workflows re-check on the change
    # (a workflow's own changes were woken by the engine already).
    woken = wake_contact_waits(e["contact_id"] for e in fresh if e["source"] != "workflow")
    # One transaction: the events logged, the executions they start and
    # wake, the audit.
    db.session.commit()
    if started or woken:
        from app.queue import kick_engine

        kick_engine()
    return started


def _segment_changes(firm_id: int, fresh: list[dict]) -> list[dict]:
    """The audiences the events' contacts entered or left by the change the
    events report, as recorded segment events (app/automation/audiences/
    membership.py: the membership rows are the once-only guard)."""
    # Segment events from outside (the periodic diff of a time window)
    # count too: an audience of audiences follows. The events derived here
    # are not fed back, so this runs once per dispatch.
    changed = {e["contact_id"] for e in fresh if e["contact_id"] is not None}
    if not changed:
        return []
    derived = refresh_contacts(changed, source="audience")
    if not derived:
        return []
    return _record(firm_id, _with_derived(derived))


def _forget_unknown_contacts(firm_id: int, events: list[dict]) -> bool:
    """An event about a contact this firm does not have (deleted since, or
    another firm's id) is still logged, but about nobody: it starts nothing
    and cannot break the log's foreign key. Returns whether the firm has
    audiences to re-check for the known contacts, asked in the same query
    (a firm without any pays nothing for them per event)."""
    ids = {int(e["contact_id"]) for e in events if e["contact_id"] is not None}
    if not ids:
        return False
    audiences = Audience.__table__
    has_audiences = (
        exists().where(audiences.c.firm_id == firm_id).correlate(None).label("segmented")
    )
    # The tenancy rule limits this to the current firm's contacts.
    rows = db.session.execute(select(Contact.id, has_audiences).where(Contact.id.in_(ids))).all()
    known = {row[0] for row in rows}
    for event in events:
        if event["contact_id"] is not None and int(event["contact_id"]) not in known:
            event["data"] = {**event["data"], "unknown_contact_id": event["contact_id"]}
            event["contact_id"] = None
    return any(row[1] for row in rows)


def _record(firm_id: int, events: list[dict]) -> list[dict]:
    """Insert the events into EventLog; returns those not seen before."""
    unique: dict[str, dict] = {}
    for event in events:
        unique.setdefault(event["event_id"], event)
    moment = now()
    rows = [
        {
            "firm_id": firm_id,
            "event_id": event["event_id"],
            "event_type": event["event_type"][:50],
            "contact_id": event["contact_id"],
            "data": _jsonable(event["data"]),
            "source": event["source"],
            "executions_started": 0,
            "created_at": moment,
        }
        for event in unique.values()
    ]
    # The keys first (one table for every month: EventKey), then the rows
    # of the events never seen, in the same transaction.
    inserted = EventKey.claim(db.session, "event", firm_id, unique, moment)
    rows = [row for row in rows if row["event_id"] in inserted]
    if rows:
        # One cached statement, executed many: SQLAlchemy batches the rows
        # into multi-row INSERTs under the drivers' parameter limits.
        db.session.execute(EventLog.__table__.insert(), rows)
    fresh = [event for key, event in unique.items() if key in inserted]
    metrics.record_events(event["event_type"][:50] for event in fresh)
    return fresh


def _active_triggers(types: set[str]) -> dict[str, list[tuple[PublishedTrigger, Workflow]]]:
    """The firm's active published triggers of these types on active
    workflows (a draft edit counts once published: lifecycle/publishing.py):
    one indexed query, and nothing more when no workflow listens."""
    # Only types an event drives (the scheduler's and people's never are).
    wanted = sorted(types & keys_driven_by("event"))
    if not wanted:
        return {}
    stmt = (
        select(PublishedTrigger, Workflow)
        .join(Workflow, Workflow.id == PublishedTrigger.workflow_id)
        .where(
            PublishedTrigger.trigger_type.in_(wanted),
            PublishedTrigger.is_active.is_(True),
            Workflow.status == "active",
        )
        .order_by(PublishedTrigger.id)
    )
    found: dict[str, list[tuple[PublishedTrigger, Workflow]]] = defaultdict(list)
    for trigger, workflow in db.session.execute(stmt):
        found[trigger.trigger_type].append((trigger, workflow))
    return found


def contact_passes(trigger: PublishedTrigger, contact_id: int, context: dict | None) -> bool:
    """The trigger's optional ``match``/``rules`` over the contact (and the
    event data as ``context.<key>``), with the one rules evaluator."""
    group = rule_group_of(trigger.configuration)
    if group is None:
        return True

    return contact_matches(group, contact_id, context or {}, trigger.workflow_id)


def _start(workflow: Workflow, trigger: PublishedTrigger, events: list[dict]) -> list[tuple]:
    """Start ``workflow`` for the events' contacts (the first event per
    contact); returns ``(execution_id, contact_id, event_id)``. Does not
    commit (the caller commits the batch as one)."""
    try:
        entry = entry_of(workflow)
    except NotEnrollable as exc:
        log.warning("trigger %s did not start workflow %s: %s", trigger.id, workflow.id, exc)
        return []
    by_id = {event["event_id"]: event for event in events}
    entries = [
        (
            event["contact_id"],
            event["event_id"],
            {
                **_jsonable(event["data"]),
                "trigger_type": event["event_type"],
                "event_id": event["event_id"],
                "source": event["source"],
            },
        )
        for event in events
    ]
    rows = start_entries(workflow, entry, entries, trigger=trigger)
    _audit_rows(workflow, trigger, [(cid, by_id[eid]) for _, cid, eid in rows])
    for execution_id, contact_id, event_id in rows:
        log.info(
            "workflow %s started for contact %s by %s (event %s, execution %s)",
            workflow.id,
            contact_id,
            by_id[event_id]["event_type"],
            event_id,
            execution_id,
        )
    return rows


def _audit_rows(workflow, trigger, started: list[tuple[int, dict]]) -> None:
    """One ``trigger.fired`` entry per (contact, event), one INSERT."""
    _insert_firings(
        workflow,
        trigger,
        [(contact_id, event["event_id"], event["source"]) for contact_id, event in started],
    )


def _insert_firings(workflow, trigger, firings: list[tuple[int, str, str]]) -> None:
    """The entries of :func:`audit_firing` for ``(contact_id, event_id,
    source)`` firings, in one multi-row INSERT."""
    if not firings:
        return
    user_id, actor = current_actor()
    moment = now()
    rows = [
        {
            "firm_id": workflow.firm_id,
            "user_id": user_id,
            "actor": actor,
            "action": "trigger.fired",
            "object_type": "Workflow",
            "object_id": str(workflow.id),
            "data": {
                "workflow_id": workflow.id,
                "contact_id": contact_id,
                "event_id": event_id,
                "source": source,
                "trigger_id": getattr(trigger, "id", None),
                "trigger_type": getattr(trigger, "trigger_type", None),
            },
            "created_at": moment,
        }
        for contact_id, event_id, source in firings
    ]
    db.session.execute(AuditLog.__table__.insert(), rows)


def audit_firings(workflow, trigger, firings: list[tuple[int, str, str]]) -> None:
    """:func:`audit_firing` for many ``(contact_id, event_id, source)``, one INSERT."""
    _insert_firings(workflow, trigger, firings)


def audit_firing(workflow, contact_id, event_id, source, trigger=None, trigger_type=None) -> None:
    """One audit entry per firing: workflow, contact, event id, source."""
    record(
        "trigger.fired",
        workflow,
        data={
            "workflow_id": workflow.id,
            "contact_id": contact_id,
            "event_id": event_id,
            "source": source,
            "trigger_id": getattr(trigger, "id", None),
            "trigger_type": trigger_type or getattr(trigger, "trigger_type", None),
        },
    )


_AUDIT_MANY = """
INSERT INTO audit_log (firm_id, user_id, actor, action, object_type, object_id, data, created_at)
SELECT :firm_id, :user_id, :actor, 'trigger.fired', 'Workflow', :object_id,
    jsonb_build_object(
        'workflow_id', CAST(:workflow_id AS bigint), 'contact_id', ids.contact_id,
        'event_id', CAST(:event_id AS text), 'source', CAST(:source AS text),
        'trigger_id', CAST(:trigger_id AS bigint), 'trigger_type', CAST(:trigger_type AS text)),
    :moment
FROM unnest(CAST(:ids AS bigint[])) AS ids(contact_id)
"""


def audit_many(workflow, trigger, contact_ids: list[int], event_id: str, source: str) -> None:
    """The same entries as :func:`audit_firing`, one INSERT for a batch."""
    if not contact_ids:
        return
    if _dialect() != "postgresql":
        _insert_firings(workflow, trigger, [(cid, event_id, source) for cid in contact_ids])
        return
    user_id, actor = current_actor()
    # Built server-side: the ids travel as one array literal.
    params = {
        "firm_id": workflow.firm_id,
        "user_id": user_id,
        "actor": actor,
        "object_id": str(workflow.id),
        "workflow_id": workflow.id,
        "event_id": event_id,
        "source": source,
        "trigger_id": getattr(trigger, "id", None),
        "trigger_type": getattr(trigger, "trigger_type", None),
        "moment": now(),
        "ids": "{" + ",".join(str(int(cid)) for cid in contact_ids) + "}",
    }
    db.session.execute(text(_AUDIT_MANY), params)


def _jsonable(value):
    """Event data is stored as JSON: dates, decimals and sets become text."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def _dialect() -> str:
    return db.session.get_bind().dialect.name
