"""How a CRM operation ends: audit the change and commit it once (the CRM
trigger events fire after the commit, app/automation/triggers/crm_events.py)."""

from __future__ import annotations

from typing import TypeVar

from app.extensions import db
from app.models.audit import record

Row = TypeVar("Row")


def save_new(row: Row, action: str, data: dict | None = None) -> Row:
    """Add ``row``, audit ``action`` on it (with its new id) and commit."""
    db.session.add(row)
    db.session.flush()
    record(action, row, data=data)
    db.session.commit()
    return row


def save_changed(row: Row, action: str, fields) -> Row:
    """Audit ``action`` naming the changed ``fields`` and commit."""
    record(action, row, data={"fields": sorted(fields)})
    db.session.commit()
    return row


def delete_row(row, action: str, data: dict | None = None) -> None:
    """Audit ``action`` on ``row``, delete it and commit."""
    record(action, row, data=data)
    db.session.delete(row)
    db.session.commit()
