"""The analytics dashboard (/automation/analytics/<id>).

Thin: check access, read the period from the query string, ask
``analytics_page`` for the numbers, figures and experiments, render. The
figures travel as JSON data blocks (the CSP forbids inline scripts) that
static/analytics.js hands to plotly.js.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

from flask import Blueprint, abort, render_template, request
from markupsafe import Markup
from sqlalchemy import select

from app.auth import login_required_page
from app.automation.analytics.ab_testing import TEST_NAME
from app.automation.analytics.report import analytics_page
from app.clock import now
from app.extensions import db
from app.models import Workflow

bp = Blueprint("analytics", __name__, url_prefix="/automation/analytics")

PRESETS = (7, 30, 90)
DEFAULT_DAYS = 30
MAX_DAYS = 366


@dataclass
class PeriodForm:
    start: date
    end: date
    days: int | None
    start_text: str = ""
    end_text: str = ""
    errors: dict[str, str] = field(default_factory=dict)


def _preset(days: int) -> tuple[date, date]:
    today = now().date()
    return today - timedelta(days=days - 1), today


def parse_period(args) -> PeriodForm:
    """``?days=7|30|90`` or ``?start=YYYY-MM-DD&end=YYYY-MM-DD``; on bad
    input the errors name the field and the default period is shown."""
    start_text = (args.get("start") or "").strip()
    end_text = (args.get("end") or "").strip()
    errors: dict[str, str] = {}
    if start_text or end_text:
        parsed = {}
        for name, text in (("start", start_text), ("end", end_text)):
            try:
                parsed[name] = date.fromisoformat(text)
            except ValueError:
                errors[name] = "Enter a date as YYYY-MM-DD." if text else "Required."
        if not errors:
            start, end = parsed["start"], parsed["end"]
            if end < start:
                errors["end"] = "The end date is before the start date."
            elif (end - start).days >= MAX_DAYS:
                errors["end"] = f"A period is at most {MAX_DAYS} days."
            elif start > now().date():
                errors["start"] = "The start date is in the future."
            else:
                return PeriodForm(start, end, None, start_text, end_text)
        start, end = _preset(DEFAULT_DAYS)
        return PeriodForm(start, end, DEFAULT_DAYS, start_text, end_text, errors)
    raw_days = args.get("days")
    days = DEFAULT_DAYS
    if raw_days:
        if raw_days.isdigit() and int(raw_days) in PRESETS:
            days = int(raw_days)
        else:
            errors["days"] = "Choose 7, 30 or 90 days."
    start, end = _preset(days)
    return PeriodForm(start, end, days, start.isoformat(), end.isoformat(), errors)


def json_block(fig) -> Markup:
    """A figure's JSON, safe inside <script type="application/json">: node
    labels are user text, so '<', '>' and '&' are escaped as JSON escapes."""
    text = fig.to_json()
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return Markup(text)


@bp.get("/<int:workflow_id>")
@login_required_page
def dashboard(workflow_id: int):
    workflow = db.session.scalars(select(Workflow).where(Workflow.id == workflow_id)).first()
    if workflow is None:
        abort(404)
    form = parse_period(request.args)
    report = analytics_page(workflow, form.start, form.end)
    figures = {name: json_block(fig) for name, fig in report.figures.items() if fig is not None}
    status = 400 if form.errors else 200
    return (
        render_template(
            "analytics/dashboard.html",
            workflow=workflow,
            form=form,
            presets=PRESETS,
            summary=report.summary,
            report=report,
            figures=figures,
            test_name=TEST_NAME,
        ),
        status,
    )


@bp.app_template_filter("duration")
def duration_filter(seconds: float | None) -> str:
    """Seconds as a short human duration ("3.5 h"); a dash when unknown."""
    if seconds is None:
        return "—"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} s"
