"""The batch forms of ``POST /events/`` and ``POST .../trigger/``.

A JSON array of up to 1,000 items instead of one object; the answer is 200
with ``results``, one per item in order, each with its own ``status`` (the
status the single call would have answered) and, for a refused item, its
``error`` in the API's error shape. One bad item never spoils the others.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.api.core import Output
from app.api.schemas.automation import TriggerRun


class TriggerItem(TriggerRun):
    idempotency_key: str | None = Field(
        default=None,
        min_length=1,
        max_length=150,
        description="the Idempotency-Key of this item: a repeat returns the same execution",
    )


class ItemError(BaseModel):
    model_config = ConfigDict(extra="allow")

    code: str
    message: str
    fields: dict[str, list[str]] | None = None


class TriggerItemResult(Output):
    status: int = Field(description="201 started, 200 a repeat of its key, else the error's")
    execution_id: int | None = None
    contact_id: int | None = None
    duplicate: bool = Field(default=False, description="true for a repeated idempotency_key")
    error: ItemError | None = None


class TriggerBatchOut(Output):
    results: list[TriggerItemResult]


class EventItemResult(Output):
    status: int = Field(description="202 recorded (or a repeat), else the error's")
    event_id: str | None = None
    duplicate: bool = Field(default=False, description="true when this event_id was seen before")
    executions: list[int] = Field(default_factory=list)
    error: ItemError | None = None


class EventBatchOut(Output):
    results: list[EventItemResult]


def item_error(exc) -> dict[str, Any]:
    """An ApiError as an item's result."""
    error: dict[str, Any] = {"code": exc.code, "message": exc.message}
    if exc.fields:
        error["fields"] = exc.fields
    return {"status": exc.status, "error": error}
