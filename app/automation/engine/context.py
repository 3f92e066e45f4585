"""Plain-dict views of contacts, deals and executions.

Templates and rules only ever see these dicts, never ORM objects: the
sandbox then cannot reach the session, and the engine can build the same
shape for a whole batch from a few set-based queries.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from app.automation.delivery.topics import subscribed_facts
from app.extensions import db
from app.models import Contact, Deal, TrackingEvent, audience_members

CONTACT_FIELDS = (
    "id",
    "email",
    "first_name",
    "last_name",
    "phone",
    "score",
    "timezone",
    "unsubscribed",
    "created_at",
)
DEAL_FIELDS = ("id", "title", "value", "stage", "status", "created_at")


def contact_dict(contact: Any, tags: Iterable[str] | None = None) -> dict:
    """A contact (ORM row, Row mapping or dict) as a plain dict.

    ``custom`` and ``custom_fields`` are the same dict, so both
    ``{{ contact.custom.plan }}`` and rules on ``contact.custom.plan`` work."""
    if hasattr(contact, "_mapping"):  # a Core Row
        contact = contact._mapping
    if isinstance(contact, Mapping):
        data = {name: contact.get(name) for name in CONTACT_FIELDS}
        custom = contact.get("custom_fields") or {}
    else:
        data = {name: getattr(contact, name, None) for name in CONTACT_FIELDS}
        custom = getattr(contact, "custom_fields", None) or {}
    custom = dict(custom)
    data["custom_fields"] = custom
    data["custom"] = custom
    data["full_name"] = f"{data.get('first_name') or ''} {data.get('last_name') or ''}".strip()
    if tags is not None:
        data["tags"] = sorted(tags)
    return data


def deal_dict(deal: Any) -> dict | None:
    if deal is None:
        return None
    if isinstance(deal, dict):
        data = {name: deal.get(name) for name in DEAL_FIELDS}
    else:
        source = deal._mapping if hasattr(deal, "_mapping") else None
        data = {
            name: (source.get(name) if source is not None else getattr(deal, name, None))
            for name in DEAL_FIELDS
        }
    if isinstance(data.get("value"), Decimal):
        data["value"] = float(data["value"])
    return data


def execution_dict(execution: Any) -> dict:
    if execution is None:
        return {}
    return {
        "id": getattr(execution, "id", None),
        "status": getattr(execution, "status", None),
        "current_node": getattr(execution, "current_node", None),
        "trigger_type": getattr(execution, "trigger_type", None),
        "started_at": getattr(execution, "started_at", None),
        "test_mode": bool(getattr(execution, "test_mode", False)),
    }


def workflow_dict(workflow: Any) -> dict:
    if workflow is None:
        return {}
    if isinstance(workflow, dict):
        return {"id": workflow.get("id"), "name": workflow.get("name", "")}
    return {"id": getattr(workflow, "id", None), "name": getattr(workflow, "name", "")}


def render_context(contact: Any, workflow: Any = None, execution: Any = None, *, deal=None) -> dict:
    """What a template sees: ``contact``, ``deal``, ``workflow``,
    ``execution`` and ``context`` (the execution's context data)."""
    tags = None
    if isinstance(contact, Contact):
        tags = contact.tag_names
        if deal is None:
            deal = latest_open_deal(contact.id)
    data = contact_dict(contact, tags)
    return {
        "contact": data,
        "deal": deal_dict(deal) or {},
        "workflow": workflow_dict(workflow),
        "execution": execution_dict(execution),
        "context": dict(getattr(execution, "context_data", None) or {}),
    }


def latest_open_deal(contact_id: int):
    stmt = (
        select(Deal)
        .where(Deal.contact_id == contact_id, Deal.status == "open")
        .order_by(Deal.id.desc())
        .limit(1)
    )
    return db.session.scalars(stmt).first()


class Facts(dict):
    """Facts for :mod:`app.automation.rules.evaluator` that load what a rule asks for
    on first use (``loaders`` maps a key to a zero-argument function)."""

    def __init__(self, values: dict, loaders: dict[str, Callable[[], Any]] | None = None):
        super().__init__(values)
        self._loaders = loaders or {}

    def __missing__(self, key: str) -> Any:
        loader = self._loaders.get(key)
        if loader is None:
            raise KeyError(key)
        value = loader()
        self[key] = value
        return value


def facts_for(
    contact: Any,
    *,
    context: dict | None = None,
    workflow_id: int | None = None,
    execution_id: int | None = None,
) -> Facts:
    """Facts about one contact (ORM Contact or its id), for trigger filters,
    goals and anything outside the engine's batches. Runs under the
    current firm (tenancy applies)."""
    if not isinstance(contact, Contact):
        contact = db.session.get(Contact, int(contact))
    if contact is None:
        return Facts(
            {
                "contact": {},
                "deal": None,
                "context": context or {},
                "tags": set(),
                "lists": set(),
                "events": [],
                "subscriptions": {},
                "audiences": set(),
            }
        )
    contact_id = contact.id
    return Facts(
        {"contact": contact_dict(contact), "context": dict(context or {})},
        {
            "tags": lambda: {tag.name for tag in contact.tags},
            "lists": lambda: {lst.id for lst in contact.lists},
            "deal": lambda: deal_dict(latest_open_deal(contact_id)),
            "events": lambda: load_events([contact_id], workflow_id, execution_id).get(
                contact_id, []
            ),
            "subscriptions": lambda: load_subscriptions(
                {contact_id: {"firm_id": contact.firm_id, "unsubscribed": contact.unsubscribed}}
            )[contact_id],
            "audiences": lambda: load_audiences([contact_id])[contact_id],
        },
    )


def load_audiences(contact_ids: Iterable[int]) -> dict[int, set[int]]:
    """contact id -> ids of the audiences it is a member of, for the rules'
    ``{"audience": id, "op": "in"}`` (the membership table is the truth:
    app/automation/audiences/membership.py keeps it)."""
    ids = list(contact_ids)
    out: dict[int, set[int]] = {cid: set() for cid in ids}
    if not ids:
        return out
    table = audience_members
    stmt = select(table.c.contact_id, table.c.audience_id).where(table.c.contact_id.in_(ids))
    for contact_id, audience_id in db.session.connection().execute(stmt):
        out.setdefault(contact_id, set()).add(audience_id)
    return out


def load_subscriptions(contacts: dict[int, dict]) -> dict[int, dict[int, bool]]:
    """contact id -> {topic id: subscribed} (``contacts``: id -> firm_id,
    unsubscribed), for the rules' ``{"topic": id, "op": "subscribed"}``."""
    return subscribed_facts(db.session.connection(), contacts)


def load_events(
    contact_ids: Iterable[int], workflow_id: int | None, execution_id: int | None = None
) -> dict[int, list[tuple[str, str | None, Any]]]:
    """Tracking events (open/click) per contact as ``(kind, node, when)``,
    limited to one workflow when given (the rule "email_opened at node X"
    means this workflow's e-mail; an audience's means any)."""
    ids = list(contact_ids)
    out: dict[int, list[tuple[str, str | None, Any]]] = {cid: [] for cid in ids}
    if not ids:
        return out
    stmt = select(
        TrackingEvent.contact_id,
        TrackingEvent.kind,
        TrackingEvent.node_id,
        TrackingEvent.created_at,
    ).where(
        TrackingEvent.contact_id.in_(ids),
        TrackingEvent.kind.in_(("open", "click")),
        TrackingEvent.machine.is_(False),  # a proxy's or scanner's is not the contact's
    )
    if workflow_id is not None:
        stmt = stmt.where(TrackingEvent.workflow_id == workflow_id)
    if execution_id is not None:
        stmt = stmt.where(TrackingEvent.execution_id == execution_id)
    for contact_id, kind, node_id, created_at in db.session.execute(stmt):
        out.setdefault(contact_id, []).append((kind, node_id, created_at))
    return out
