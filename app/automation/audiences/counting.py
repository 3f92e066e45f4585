"""Who matches an audience's rules right now: a count, a sample, a page.

One SQL statement over the firm's contacts (app/automation/rules/sql.py)
when the rules compile; otherwise the one Python evaluator over the
contacts in batches (app/automation/triggers/audience.py), same answer,
slower.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import func, select

from app.automation.engine.context import facts_for
from app.automation.rules.evaluator import evaluate
from app.automation.rules.sql import NotCompilable, condition
from app.automation.triggers.audience import matching_contact_ids
from app.extensions import db
from app.models import Contact

SAMPLE_SIZE = 10


def _dialect() -> str:
    return db.session.get_bind().dialect.name


def sql_condition(rule_group: dict, workflow_id: int | None = None):
    """The SQL condition, or None when the rules have no SQL form; e-mail
    activity is ``workflow_id``'s when given, any workflow's when not."""
    try:
        return condition(rule_group, _dialect(), workflow_id)
    except NotCompilable:
        return None


def count(rule_group: dict) -> int:
    where = sql_condition(rule_group)
    if where is not None:
        return int(db.session.scalar(select(func.count(Contact.id)).where(where)) or 0)
    return sum(len(ids) for ids in matching_contact_ids(rule_group))


def page_ids(rule_group: dict, after: int = 0, limit: int = SAMPLE_SIZE) -> list[int]:
    """Up to ``limit`` matching contact ids above ``after``, in id order."""
    where = sql_condition(rule_group)
    if where is not None:
        stmt = select(Contact.id).where(where, Contact.id > after).order_by(Contact.id)
        return list(db.session.scalars(stmt.limit(limit)))
    found: list[int] = []
    for ids in matching_contact_ids(rule_group, where=(Contact.id > after,)):
        found.extend(ids)
        if len(found) >= limit:
            break
    return found[:limit]


def sample(rule_group: dict, size: int = SAMPLE_SIZE) -> list[Contact]:
    ids = page_ids(rule_group, 0, size)
    if not ids:
        return []
    return list(db.session.scalars(select(Contact).where(Contact.id.in_(ids)).order_by(Contact.id)))


def matching_among(rule_group: dict, contact_ids: Iterable[int]) -> set[int]:
    """Which of ``contact_ids`` match now (the membership refresh's question)."""
    ids = sorted({int(cid) for cid in contact_ids})
    if not ids:
        return set()
    where = sql_condition(rule_group)
    if where is not None:
        return set(db.session.scalars(select(Contact.id).where(where, Contact.id.in_(ids))))
    return {cid for cid in ids if evaluate(rule_group, facts_for(cid))}
