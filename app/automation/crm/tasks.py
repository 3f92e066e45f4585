"""Tasks: create, update, delete, and what a new task holds. The API
(app/api/crm.py) calls the operations; the create_task step
(app/automation/nodes/crm.py), which inserts its rows set-based at the end
of a batch, builds them with :func:`new_task`, so a task made by a
workflow has the same columns and limits as one made by hand. Each
operation audits and commits once."""

from __future__ import annotations

from datetime import datetime

from app.automation.crm.saving import delete_row, save_changed, save_new
from app.models import Task

TITLE_MAX = 300
DESCRIPTION_MAX = 10_000
STATUSES = ("open", "done")
# The columns an operation may set (a view resolves ``contact`` and
# ``assignee`` to their ids).
COLUMNS = ("contact_id", "assignee_id", "title", "description", "due_at", "status")


def new_task(
    title: str, description: str = "", due_at: datetime | None = None, **ids: int | None
) -> dict:
    """The columns of a new, open task: title and description cut to their
    limits; ``ids`` are ``contact_id``, ``assignee_id``, ``execution_id``."""
    return {
        **ids,
        "title": title[:TITLE_MAX],
        "description": description[:DESCRIPTION_MAX],
        "due_at": due_at,
        "status": "open",
    }


def _apply(task: Task, changes: dict) -> list[str]:
    unknown = set(changes) - set(COLUMNS)
    if unknown:
        raise ValueError(f"not a task column: {', '.join(sorted(unknown))}")
    for name, value in changes.items():
        setattr(task, name, value)
    return sorted(changes)


def create_task(fields: dict) -> Task:
    """A new task from column ``fields`` (``title`` required)."""
    fields = dict(fields)
    task = Task(**new_task(fields.pop("title"), fields.pop("description", "") or ""))
    _apply(task, fields)
    return save_new(task, "task.created", {"title": task.title})


def update_task(task: Task, changes: dict) -> Task:
    return save_changed(task, "task.updated", _apply(task, changes))


def delete_task(task: Task) -> None:
    delete_row(task, "task.deleted")
