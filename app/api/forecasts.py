"""Forecasts of a workflow's draft (docs/FORECAST.md, docs/CONTRACT.md
"Experiments, audiences, forecasts, integrations")."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import g
from pydantic import Field

from app.api.access import get_or_404
from app.api.core import Input, Output, endpoint
from app.api.errors import not_found, validation_error
from app.automation.analytics.forecast import ForecastRefused, as_json, start_forecast
from app.models import Workflow, WorkflowForecast

TAG = "Forecasts"
BASE = "/automation/workflows/<int:workflow_id>/forecast/"


class ForecastCreate(Input):
    # Checked by the domain (analytics/forecast.check_days): a bad value is
    # 422 with the field, like every other refusal of this operation.
    days: Any = Field(
        default=30,
        description="How many past days of events to replay, 1 to 365",
        json_schema_extra={"type": "integer", "minimum": 1, "maximum": 365},
    )


class ForecastNode(Output):
    entered: int
    held: int
    skipped: int = 0
    failed: int = 0
    messages: int = 0


class ForecastDay(Output):
    date: str
    count: int


class ForecastMove(Output):
    node: str
    contacts: int
    to: str | None
    removed: bool


class ForecastOut(Output):
    id: int
    workflow: int
    days: int
    status: str = Field(description="queued, running, done or failed")
    percent: int
    error: str | None
    created_at: datetime
    finished_at: datetime | None
    enrollments: int
    messages: int
    messages_per_day: list[ForecastDay]
    per_node: dict[str, ForecastNode]
    holds: dict[str, int] = Field(description="held messages per gate (send_window, ...)")
    waiting_at_end: dict[str, int]
    moves: list[ForecastMove] = Field(
        description="contacts inside the live workflow per step, and where publishing puts them"
    )
    events: int
    truncated: bool
    unsupported_triggers: list[str]
    start: str | None
    end: str | None


@endpoint(
    BASE,
    "POST",
    tag=TAG,
    summary="Forecast the draft over the last days of events",
    body=ForecastCreate,
    response=ForecastOut,
    status=202,
    errors=(404, 422),
)
def create_forecast(workflow_id: int, body: ForecastCreate):
    """Queues a job that replays the recorded events of the last ``days``
    days through the draft graph and triggers in a sandbox: nothing is
    sent and no contact changes. Poll ``GET .../forecast/{job}/``."""
    workflow = get_or_404(Workflow, workflow_id, what="workflow")
    try:
        forecast = start_forecast(workflow, body.days, user=g.user)
    except ForecastRefused as exc:
        raise validation_error({exc.field: [exc.message]}, status=422) from None
    return as_json(forecast)


@endpoint(
    BASE + "<int:forecast_id>/",
    tag=TAG,
    summary="A forecast's progress and result",
    response=ForecastOut,
    errors=(404,),
)
def get_forecast(workflow_id: int, forecast_id: int):
    workflow = get_or_404(Workflow, workflow_id, what="workflow")
    forecast = get_or_404(WorkflowForecast, forecast_id, what="forecast")
    if forecast.workflow_id != workflow.id:
        raise not_found("forecast")
    return as_json(forecast)
