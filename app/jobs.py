"""Every job the app runs, by function: what a kick of each kind runs and
the periodic jobs (intervals in seconds, or the name of a config key).

:mod:`app.queue` is plumbing and imports no domain code; this table hands
it the functions (``create_app`` imports this module). Renaming or moving a
job fails here, at import, and tests/test_jobs.py checks that RQ can find
each one by the name it stores.
"""

from __future__ import annotations

from typing import Any

from app import queue
from app.automation.analytics import run_daily_analytics
from app.automation.analytics.experiments import run_experiment_decisions
from app.automation.analytics.forecast import recover_forecasts, run_forecast
from app.automation.audiences.enroll import recover_enrollments, run_enrollment
from app.automation.audiences.membership import refresh_timed
from app.automation.crm.import_rows import run_import
from app.automation.delivery.jobs import run_delivery_job
from app.automation.delivery.suppression_import import run_suppression_import
from app.automation.delivery.tracking_hits import process_hits, run_tracking_job
from app.automation.engine.jobs import run_engine_job
from app.automation.engine.sweeper import process_waiting_executions, wake_due
from app.automation.hooks.sender import run_hook_job
from app.automation.operations.monitor import run_monitor
from app.automation.operations.retention import run_retention

KICK_JOBS = {
    "engine": run_engine_job,
    "delivery": run_delivery_job,
    "hooks": run_hook_job,
    "tracking": run_tracking_job,
}

PERIODIC_JOBS: list[dict[str, Any]] = [
    # Due waits only: frequent so a wait ends on time, cheap when idle.
    {"name": "wake", "func": wake_due, "every": "WAKE_INTERVAL_SECONDS"},
    {"name": "sweep", "func": process_waiting_executions, "every": "SWEEP_INTERVAL_SECONDS"},
    # Opens and clicks whose kick was lost (a Redis flush) are processed.
    {"name": "tracking", "func": process_hits, "every": "SWEEP_INTERVAL_SECONDS"},
    # The stuck-work monitor (docs/OPERATIONS.md): notifications, gauges.
    {"name": "monitor", "func": run_monitor, "every": "MONITOR_INTERVAL_SECONDS"},
    {"name": "daily-analytics", "func": run_daily_analytics, "every": 3600},
    # Splits with auto_winner decide here (and on every read): docs/EXPERIMENTS.md.
    {"name": "experiments", "func": run_experiment_decisions, "every": 300},
    # Monthly partitions ahead, months past retention dropped (docs/OPERATIONS.md).
    {"name": "retention", "func": run_retention, "every": 3600},
    # Forecasts whose worker died fail; lost forecast jobs run again.
    {"name": "forecasts", "func": recover_forecasts, "every": "SWEEP_INTERVAL_SECONDS"},
    # Enrollments whose worker died or whose job was lost resume.
    {"name": "enrollments", "func": recover_enrollments, "every": "SWEEP_INTERVAL_SECONDS"},
    # Audiences with a time window: who left (or entered) as time passed.
    {"name": "audiences", "func": refresh_timed, "every": 300},
]

# Jobs enqueued with arguments by the code that needs them.
ENQUEUED_JOBS = (run_import, run_suppression_import, run_forecast, run_enrollment)

ALL_JOBS = (*KICK_JOBS.values(), *(job["func"] for job in PERIODIC_JOBS), *ENQUEUED_JOBS)

queue.register_jobs(KICK_JOBS, PERIODIC_JOBS)
