"""The builder's forecast panel: the draft replayed over the last days of
recorded events (docs/FORECAST.md). A form (days), the job's progress,
then the result as a table, a chart of messages per day and badges on the
canvas's cards."""

from __future__ import annotations

import json

from flask import abort, render_template, request

from app.auth import login_required_page
from app.automation.analytics.charts import forecast_messages
from app.automation.analytics.forecast import (
    ForecastRefused,
    as_json,
    latest_forecast,
    start_forecast,
)
from app.extensions import db
from app.models import WorkflowForecast
from app.tenancy import scoped_get
from app.web.analytics import json_block
from app.web.builder_common import acting_user, bp, is_htmx, load_workflow, render_panel

TEMPLATE = "builder/_forecast.html"


def _context(workflow, forecast: WorkflowForecast | None) -> dict:
    labels = {node.node_id: node.label or node.node_id for node in workflow.nodes}
    result = as_json(forecast) if forecast is not None else None
    figure = None
    if result is not None and result["status"] == "done":
        fig = forecast_messages(result["messages_per_day"])
        figure = json_block(fig) if fig is not None else None
    badges = {}
    if result is not None and result["status"] == "done":
        badges = {
            node: {"entered": c["entered"], "held": c["held"]}
            for node, c in result["per_node"].items()
        }
    return {
        "forecast": forecast,
        "result": result,
        "labels": labels,
        "figure": figure,
        "badges": json.dumps(badges),
    }


@bp.get("/<int:workflow_id>/forecast")
@login_required_page
def forecast_panel(workflow_id: int):
    workflow = load_workflow(workflow_id)
    forecast = latest_forecast(workflow)
    return render_panel(workflow, TEMPLATE, days=30, error=None, **_context(workflow, forecast))


@bp.post("/<int:workflow_id>/forecast")
@login_required_page
def start_forecast_view(workflow_id: int):
    workflow = load_workflow(workflow_id)
    raw = request.form.get("days", "").strip()
    try:
        forecast = start_forecast(workflow, raw, user=acting_user())
    except ForecastRefused as exc:
        db.session.rollback()
        return render_panel(
            workflow,
            TEMPLATE,
            status=422,
            days=raw,
            error=exc.message,
            error_field=exc.field,
            **_context(workflow, latest_forecast(workflow)),
        )
    return render_panel(
        workflow, TEMPLATE, days=forecast.days, error=None, **_context(workflow, forecast)
    )


@bp.get("/<int:workflow_id>/forecast/<int:forecast_id>")
@login_required_page
def forecast_progress(workflow_id: int, forecast_id: int):
    """Polled every second by the panel until the job has finished."""
    workflow = load_workflow(workflow_id)
    forecast = scoped_get(WorkflowForecast, forecast_id)
    if forecast is None or forecast.workflow_id != workflow.id:
        abort(404)
    if not is_htmx():
        return render_panel(
            workflow, TEMPLATE, days=forecast.days, error=None, **_context(workflow, forecast)
        )
    return render_template(
        "builder/_forecast_result.html", workflow=workflow, **_context(workflow, forecast)
    )
