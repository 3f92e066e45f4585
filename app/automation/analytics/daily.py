"""The daily job: one stored analytics row per workflow and day.

``run_daily_analytics`` (the CLI ``automation run-daily-analytics`` and a
periodic job) recomputes yesterday and today for every active workflow.
Rows are unique on (workflow, day, day), so running it twice, or on two
workers, leaves the same rows."""

from __future__ import annotations

import logging
from datetime import date, timedelta

from app.automation.analytics.calculator import AnalyticsCalculator
from app.automation.analytics.dashboard import daily_rows
from app.automation.analytics.queries import each_active_workflow
from app.clock import now
from app.extensions import db

log = logging.getLogger(__name__)

# How far back the job fills in missing daily rows (the dashboard's longest preset).
BACKFILL_DAYS = 90


def today() -> date:
    return now().date()


def run_daily_analytics() -> int:
    """Compute yesterday's and today's rows for every active workflow, firm
    by firm, and any missing closed day of the last BACKFILL_DAYS; returns
    the number of workflows done."""
    day = today()
    done = 0
    for workflow in each_active_workflow():
        workflow_id = workflow.id
        try:
            for when in (day - timedelta(days=1), day):
                AnalyticsCalculator.calculate_workflow_analytics(workflow, when, when)
            # Older days with executions but no closed row (a workflow
            # older than the job, a missed night) are filled in once, so
            # the dashboard never computes more than today.
            daily_rows(workflow, day - timedelta(days=BACKFILL_DAYS - 1), day)
        except Exception:
            # One broken workflow must not stop the others' numbers.
            db.session.rollback()
            log.exception("daily analytics failed for workflow %s", workflow_id)
            continue
        done += 1
    return done
