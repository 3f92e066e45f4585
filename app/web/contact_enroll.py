"""Starting a workflow by hand for one contact or a selection, through the
manual trigger (``trigger_manual`` / ``trigger_manual_many``).

The pages only say which workflow and which contacts; what "manual" means
(an active workflow, re-entry rules, idempotency) belongs to the trigger
helpers. This module turns their answers into a sentence for the marketer.
"""

from __future__ import annotations

from collections.abc import Sequence

from app.automation.triggers.helpers import TriggerNotAllowed, trigger_manual, trigger_manual_many
from app.models import Contact, Workflow

MAX_BULK = 1000


class EnrollRefused(Exception):
    """The request cannot start anything; the message says why."""


def _check(workflow: Workflow | None) -> Workflow:
    if workflow is None:
        raise EnrollRefused("Choose a workflow to start.")
    if workflow.status != "active":
        raise EnrollRefused(
            f"“{workflow.name}” is {workflow.status}: activate it before starting contacts in it."
        )
    return workflow


def _count(result) -> int:
    """trigger_manual answers an execution or None; trigger_manual_many a list of ids."""
    if result is None:
        return 0
    if isinstance(result, bool):
        return int(result)
    if isinstance(result, int):
        return result
    if isinstance(result, (list, tuple, set)):
        return len(result)
    return 1


def start_one(user, workflow: Workflow | None, contact: Contact) -> str:
    workflow = _check(workflow)
    try:
        result = trigger_manual(
            user.firm, workflow.id, contact, {"started_by": user.email, "origin": "contact page"}
        )
    except (TriggerNotAllowed, LookupError) as exc:
        raise EnrollRefused(str(exc) or "This workflow cannot be started by hand.") from exc
    if _count(result):
        return f"Started “{workflow.name}” for {contact.email}."
    return (
        f"{contact.email} did not enter “{workflow.name}”: contacts enter it once "
        "(or are in it right now)."
    )


def start_many(user, workflow: Workflow | None, contact_ids: Sequence[int]) -> str:
    if not contact_ids:
        raise EnrollRefused("Select at least one contact.")
    if len(contact_ids) > MAX_BULK:
        raise EnrollRefused(f"Select at most {MAX_BULK} contacts at a time.")
    workflow = _check(workflow)
    try:
        result = trigger_manual_many(
            workflow, list(contact_ids), {"started_by": user.email, "origin": "contact list"}
        )
    except (TriggerNotAllowed, LookupError) as exc:
        raise EnrollRefused(str(exc) or "This workflow cannot be started by hand.") from exc
    started = _count(result)
    skipped = len(contact_ids) - started
    message = f"Started “{workflow.name}” for {started} contact{'s' if started != 1 else ''}."
    if skipped > 0:
        message += f" {skipped} did not enter (already in it, or enter only once)."
    return message
