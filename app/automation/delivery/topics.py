"""Topics and contacts' choices about them (docs/SENDING.md).

A contact is subscribed to a topic unless a row of ``contact_subscriptions``
says otherwise; ``Contact.unsubscribed`` is "unsubscribed from all
marketing". Transactional topics ignore both (never suppressions).
A firm's default marketing topic is the one a send_email step without a
topic sends under: the first marketing topic made is the default, and
marking another as default unmarks it.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite

from app.clock import now
from app.extensions import db
from app.models import Contact, Topic, contact_subscriptions
from app.models.audit import record

_topics = Topic.__table__
_subs = contact_subscriptions
CHUNK = 900


class TopicError(ValueError):
    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field
        self.message = message


# --- topics -------------------------------------------------------------------


def _name_free(name: str, exclude_id: int | None = None) -> None:
    stmt = select(Topic.id).where(Topic.name == name)
    if exclude_id is not None:
        stmt = stmt.where(Topic.id != exclude_id)
    if db.session.scalars(stmt).first() is not None:
        raise TopicError("name", "a topic with this name exists")


def save_topic(topic: Topic | None, changes: dict) -> Topic:
    """Create (``topic`` None) or change a topic under the current firm;
    keeps one default marketing topic. The caller commits."""
    name = " ".join(str(changes.get("name", topic.name if topic else "")).split())
    if not name:
        raise TopicError("name", "required")
    _name_free(name, topic.id if topic else None)
    creating = topic is None
    if creating:
        topic = Topic(name=name)
        db.session.add(topic)
    topic.name = name
    for key in ("description", "kind"):
        if key in changes:
            setattr(topic, key, changes[key])
    if topic.kind != "marketing":
        topic.is_default = False
    elif changes.get("is_default") or (creating and default_topic_id() is None):
        topic.is_default = True
    elif changes.get("is_default") is False:
        topic.is_default = False
    db.session.flush()
    if topic.is_default:
        db.session.execute(
            update(Topic)
            .where(Topic.id != topic.id, Topic.is_default.is_(True))
            .values(is_default=False)
            .execution_options(synchronize_session=False)
        )
    record("topic.created" if creating else "topic.updated", topic, data={"name": name})
    return topic


def default_topic_id() -> int | None:
    return db.session.scalars(
        select(Topic.id).where(Topic.is_default.is_(True), Topic.kind == "marketing")
    ).first()


def firm_topics(conn: Connection, firm_ids: Iterable[int]) -> dict[int, dict]:
    """Every topic of these firms: id -> {firm_id, name, kind, is_default}
    (system code: one query, filtered by firm by hand)."""
    firms = sorted(set(firm_ids))
    if not firms:
        return {}
    stmt = select(
        _topics.c.id, _topics.c.firm_id, _topics.c.name, _topics.c.kind, _topics.c.is_default
    ).where(_topics.c.firm_id.in_(firms))
    return {row.id: dict(row._mapping) for row in conn.execute(stmt)}


def resolve(topics: dict[int, dict], firm_id: int, topic_id: int | None) -> dict | None:
    """The topic a message goes under: its own (if it is the firm's), else
    the firm's default marketing topic, else None (no topics defined)."""
    topic = topics.get(topic_id) if topic_id is not None else None
    if topic is not None and topic["firm_id"] == firm_id:
        return topic
    for candidate in topics.values():
        if candidate["firm_id"] == firm_id and candidate["is_default"]:
            return candidate
    return None


# --- subscriptions ------------------------------------------------------------


def opt_outs(conn: Connection, contact_ids: Iterable[int]) -> dict[int, set[int]]:
    """contact id -> the topics it opted out of (one query per 900)."""
    ids = sorted(set(contact_ids))
    out: dict[int, set[int]] = {cid: set() for cid in ids}
    for start in range(0, len(ids), CHUNK):
        stmt = select(_subs.c.contact_id, _subs.c.topic_id).where(
            _subs.c.contact_id.in_(ids[start : start + CHUNK]), _subs.c.subscribed.is_(False)
        )
        for contact_id, topic_id in conn.execute(stmt):
            out[contact_id].add(topic_id)
    return out


def subscriptions_of(contact: Contact) -> dict[str, bool]:
    """The contract's ``subscriptions``: ``{"<topic id>": true|false}`` for
    every topic of the firm, as sending would treat the contact."""
    conn = db.session.connection()
    topics = db.session.scalars(select(Topic).order_by(Topic.id)).all()
    opted = opt_outs(conn, [contact.id]).get(contact.id, set())
    return {
        str(topic.id): topic.kind == "transactional"
        or (topic.id not in opted and not contact.unsubscribed)
        for topic in topics
    }


def set_subscriptions(contact: Contact, choices: dict[int, bool], source: str) -> list[int]:
    """Record a contact's choice per topic (ids of the current firm only);
    returns the topics whose choice changed. The caller commits."""
    known = {
        tid: kind
        for tid, kind in db.session.execute(
            select(Topic.id, Topic.kind).where(Topic.id.in_(list(choices)))
        )
    }
    unknown = sorted(set(choices) - set(known))
    if unknown:
        raise TopicError("subscriptions", f"unknown topic: {', '.join(map(str, unknown))}")
    conn = db.session.connection()
    before = opt_outs(conn, [contact.id])[contact.id]
    changed = [tid for tid, on in choices.items() if (tid in before) == bool(on)]
    if not changed:
        return []
    conn.execute(
        delete(_subs).where(_subs.c.contact_id == contact.id, _subs.c.topic_id.in_(changed))
    )
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    rows = [
        {
            "contact_id": contact.id,
            "topic_id": tid,
            "subscribed": bool(choices[tid]),
            "source": source,
            "changed_at": now(),
        }
        for tid in changed
    ]
    conn.execute(dialect.insert(_subs).values(rows))
    record(
        "contact.subscriptions",
        contact,
        data={"changes": {str(t): bool(choices[t]) for t in changed}, "source": source},
    )
    # After the caller's commit the bus hears of it: audiences testing a
    # topic re-check the contact (app/automation/audiences/membership.py).
    # Imported here: the bus's import chain reads this module's facts.
    from app.automation.triggers.crm_events import crm_event, emit_after_commit

    emit_after_commit(
        db.session(),  # the scoped session's own Session
        crm_event(
            contact.firm_id,
            "topic_subscriptions_changed",
            contact.id,
            {"changes": {str(t): bool(choices[t]) for t in changed}},
            source,
        ),
    )
    return changed


def subscribed_facts(conn: Connection, contacts: dict[int, dict]) -> dict[int, dict[int, bool]]:
    """For the rules evaluator: contact id -> {topic id: subscribed} over the
    contacts' firms' topics (``contacts`` maps id -> {firm_id, unsubscribed})."""
    topics = firm_topics(conn, {c["firm_id"] for c in contacts.values()})
    if not topics:
        return {contact_id: {} for contact_id in contacts}
    opted = opt_outs(conn, contacts)
    out: dict[int, dict[int, bool]] = {}
    for contact_id, contact in contacts.items():
        out[contact_id] = {
            tid: topic["kind"] == "transactional"
            or (tid not in opted[contact_id] and not contact.get("unsubscribed"))
            for tid, topic in topics.items()
            if topic["firm_id"] == contact["firm_id"]
        }
    return out
