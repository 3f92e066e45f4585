"""Deals: create, update, delete, and the closing rule. The API
(app/api/crm.py) calls the operations; the create_deal and update_deal
steps (app/automation/nodes/crm.py), which write set-based at the end of
a batch, use :func:`closing` and the limits, so a deal closes the same
way whoever changes it: ``closed_at`` is set when its status becomes won
or lost and cleared when it opens again. Each operation audits and
commits once; ``deal_won`` / ``deal_lost`` fire from the CRM events after
the commit (app/automation/triggers/crm_events.py)."""

from __future__ import annotations

from datetime import datetime

from app.automation.crm.saving import delete_row, save_changed, save_new
from app.clock import now
from app.models import Deal

TITLE_MAX = 200
STAGE_MAX = 100
CLOSED = ("won", "lost")
# The columns an operation may set (a view resolves ``contact`` to its id).
COLUMNS = ("contact_id", "title", "value", "stage", "status")


def closing(old_status: str | None, new_status: str | None, moment: datetime) -> dict:
    """``{"closed_at": ...}`` to write when the status moves from
    ``old_status`` (None: a new deal) to ``new_status`` (None: unchanged),
    or ``{}`` when ``closed_at`` stays as it is."""
    if new_status is None or new_status == old_status:
        return {}
    return {"closed_at": moment if new_status in CLOSED else None}


def _apply(deal: Deal, changes: dict) -> list[str]:
    """Set the columns and the closing rule; returns the changed names."""
    unknown = set(changes) - set(COLUMNS)
    if unknown:
        raise ValueError(f"not a deal column: {', '.join(sorted(unknown))}")
    old_status = deal.status
    for name, value in changes.items():
        setattr(deal, name, value)
    for name, value in closing(old_status, changes.get("status"), now()).items():
        setattr(deal, name, value)
    return sorted(changes)


def create_deal(fields: dict) -> Deal:
    """A new deal (status open unless ``fields`` says otherwise)."""
    deal = Deal()
    _apply(deal, {"status": "open", **fields})
    return save_new(deal, "deal.created", {"title": deal.title})


def update_deal(deal: Deal, changes: dict) -> Deal:
    return save_changed(deal, "deal.updated", _apply(deal, changes))


def delete_deal(deal: Deal) -> None:
    delete_row(deal, "deal.deleted")
