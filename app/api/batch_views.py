"""The batch forms' answers: each item's outcome in the API's shapes
(``POST /events/`` and ``POST .../trigger/`` with a JSON array)."""

from __future__ import annotations

from app.api.errors import ApiError
from app.api.schemas.batch import item_error
from app.automation.triggers.batches import ItemRefused, report_events, start_many
from app.automation.triggers.helpers import TriggerNotAllowed, api_trigger_of


def _refused(outcome: ItemRefused) -> dict:
    fields = {outcome.field: [outcome.message]} if outcome.field else None
    code = "validation_error" if outcome.field else "conflict"
    return item_error(ApiError(outcome.status, code, outcome.message, fields=fields))


def trigger_batch(workflow, items: list) -> dict:
    try:
        trigger = api_trigger_of(workflow)
    except TriggerNotAllowed as exc:
        raise ApiError(409, "conflict", str(exc)) from None
    wanted = [
        None
        if isinstance(item, ApiError)
        else (item.contact_id, item.context, item.idempotency_key)
        for item in items
    ]
    try:
        outcomes = start_many(workflow, trigger, wanted)
    except ItemRefused as exc:
        raise ApiError(exc.status, "conflict", exc.message) from None
    results = []
    for item, outcome in zip(items, outcomes, strict=True):
        if isinstance(item, ApiError):
            results.append(item_error(item))
        elif isinstance(outcome, ItemRefused):
            results.append(_refused(outcome))
        else:
            results.append(
                {
                    "status": 200 if outcome.duplicate else 201,
                    "execution_id": outcome.execution_id,
                    "contact_id": outcome.contact_id,
                    "duplicate": outcome.duplicate,
                }
            )
    return {"results": results}


def event_batch(firm_id: int, items: list) -> dict:
    wanted = [
        None
        if isinstance(item, ApiError)
        else {
            "type": item.type,
            "contact_id": item.contact_id,
            "data": item.data,
            "event_id": item.event_id,
        }
        for item in items
    ]
    results = []
    for item, outcome in zip(items, report_events(firm_id, wanted), strict=True):
        if isinstance(item, ApiError):
            results.append(item_error(item))
        elif isinstance(outcome, ItemRefused):
            results.append(_refused(outcome))
        else:
            results.append(
                {
                    "status": 202,
                    "event_id": outcome.event_id,
                    "duplicate": outcome.duplicate,
                    "executions": outcome.executions,
                }
            )
    return {"results": results}
