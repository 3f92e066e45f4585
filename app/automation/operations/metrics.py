"""Prometheus metrics (docs/CONTRACT.md "Operations", docs/OPERATIONS.md).

Two kinds of family:

- counters and histograms that the processes doing the work update as they
  go (steps, executions reaching a status, wake lateness, deliveries,
  events). With ``PROMETHEUS_MULTIPROC_DIR`` set (it must be set before the
  process starts: prometheus_client picks its value store at import) every
  gunicorn and worker process of a host writes them to files in that
  directory and ``GET /metrics`` sums them, so any web process answers for
  the whole host;
- gauges read at scrape time from the database and Redis (queue depth,
  waits due, outbox by status, the monitor's findings). They describe the
  whole deployment, not one host, so they are the same on every host's
  scrape: dashboards take ``max`` of them. They are cached for
  ``METRICS_CACHE_SECONDS`` per process so a scrape every few seconds by
  several Prometheus servers costs one round of queries.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections import Counter as Tally

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    values,
)
from prometheus_client.core import GaugeMetricFamily

from app import queue as app_queue
from app.automation.engine.claim import due_clause
from app.clock import now
from app.extensions import db
from app.models import OutboxMessage, TrackingHit, WorkflowExecution
from app.models.delivery import OUTBOX_STATUSES

log = logging.getLogger(__name__)


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def process_identifier(pid: int | None = None) -> str:
    """The name of a process's files in the multiprocess directory: host
    name and pid, because containers that share the directory (the compose
    file's web and worker on one host) each count pids from 1. No
    underscore: prometheus_client splits file names on it."""
    host = socket.gethostname().replace("_", "-")
    return f"{host}-{os.getpid() if pid is None else pid}"


if multiprocess_dir():
    values.ValueClass = values.MultiProcessValue(process_identifier=process_identifier)

EXECUTIONS = Counter(
    "automation_executions",
    "Executions that entered a status (running on enrollment, then waiting, "
    "completed, goal_reached, failed).",
    ["status"],
)
STEPS = Counter(
    "automation_steps",
    "Steps run, by node type and result (success, skipped, waiting, deferred, failed).",
    ["node_type", "status"],
)
STEP_SECONDS = Histogram(
    "automation_step_seconds",
    "Time a worker spent running one step (its executor), by node type.",
    ["node_type"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
WAKE_LATENESS = Histogram(
    "automation_wake_lateness_seconds",
    "How long after its wake_at a wait was picked up by a worker.",
    buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900, 3600, 21600),
)
DELIVERIES = Counter(
    "automation_deliveries",
    "Delivery attempts by channel and result (sent, failed, retry, skipped, deferred).",
    ["channel", "result"],
)
EVENTS = Counter(
    "automation_events",
    "Events recorded on the trigger bus (repeats of a known event_id excluded), by type.",
    ["type"],
)


# -- recording (called by the engine, the dispatcher and the trigger bus) ------


def record_enrolled(count: int) -> None:
    if count:
        EXECUTIONS.labels("running").inc(count)


def record_batch(rows: list[dict], written: list, moment) -> None:
    """A batch's claimed rows (wake lateness of the waits among them) and
    its written effects (steps, statuses). Never raises: metrics must not
    fail the engine."""
    try:
        for row in rows:
            wake_at = row.get("wake_at")
            if row.get("status") == "waiting" and wake_at is not None and not row.get("test_mode"):
                WAKE_LATENESS.observe(max((moment - wake_at).total_seconds(), 0.0))
        statuses: Tally = Tally()
        steps: Tally = Tally()
        for effects in written:
            if effects.test_mode:
                continue
            status = (effects.execution or {}).get("status")
            if status:
                statuses[status] += 1
            for node_type, result, seconds in effects.step_log:
                steps[(node_type, result)] += 1
                STEP_SECONDS.labels(node_type).observe(seconds)
        for status, count in statuses.items():
            EXECUTIONS.labels(status).inc(count)
        for (node_type, result), count in steps.items():
            STEPS.labels(node_type, result).inc(count)
    except Exception:
        log.exception("recording batch metrics failed")


def record_delivery(channel: str, result: str) -> None:
    DELIVERIES.labels(channel or "unknown", result or "unknown").inc()


def record_events(types) -> None:
    for event_type, count in Tally(types).items():
        EVENTS.labels(event_type).inc(count)


# -- scrape-time gauges --------------------------------------------------------


class DeploymentCollector:
    """Gauges read from the database and Redis when scraped."""

    def __init__(self, app):
        self.app = app
        self.lock = threading.Lock()
        self.cached: tuple[float, list] | None = None

    def collect(self):
        seconds = float(self.app.config.get("METRICS_CACHE_SECONDS") or 0)
        with self.lock:
            if self.cached is not None and time.monotonic() - self.cached[0] < seconds:
                return list(self.cached[1])
            families = self._read()
            self.cached = (time.monotonic(), families)
            return list(families)

    def _read(self) -> list:
        families = []
        with self.app.app_context():
            try:
                families.extend(_queue_depth())
            except Exception:
                log.warning("metrics: reading queue depth failed", exc_info=True)
            try:
                families.extend(_database_gauges())
            except Exception:
                log.warning("metrics: reading database gauges failed", exc_info=True)
                db.session.rollback()
            try:
                from app.automation.operations.monitor import gauges

                families.extend(gauges())
            except Exception:
                log.warning("metrics: reading the monitor's gauges failed", exc_info=True)
                db.session.rollback()
            finally:
                db.session.remove()
        return families


def _queue_depth() -> list:
    from flask import current_app

    family = GaugeMetricFamily(
        "automation_queue_depth", "Jobs waiting in each queue.", labels=["queue"]
    )
    connection = app_queue.redis_connection()
    if connection is not None:
        for name in app_queue.QUEUES:
            family.add_metric([name], app_queue.rq_queue(name).count)
    else:
        runner = app_queue._runners.get(id(current_app._get_current_object()))
        family.add_metric(["inline"], runner.jobs.qsize() if runner is not None else 0)
    return [family]


def _database_gauges() -> list:
    from sqlalchemy import func, select

    executions = WorkflowExecution.__table__
    outbox = OutboxMessage.__table__
    conn = db.session.connection()
    moment = now()
    try:
        due = conn.execute(select(func.count()).where(due_clause(moment))).scalar() or 0
        active = dict(
            conn.execute(
                select(executions.c.status, func.count())
                .where(executions.c.status.in_(("running", "waiting")))
                .group_by(executions.c.status)
            ).all()
        )
        by_status = dict(
            conn.execute(select(outbox.c.status, func.count()).group_by(outbox.c.status)).all()
        )
        hits = conn.execute(select(func.count()).select_from(TrackingHit.__table__)).scalar()
    finally:
        db.session.rollback()
    waits = GaugeMetricFamily(
        "automation_waits_due", "Waiting executions whose wake_at has passed, not yet picked up."
    )
    waits.add_metric([], due)
    current = GaugeMetricFamily(
        "automation_executions_active", "Executions running or waiting now.", labels=["status"]
    )
    for status in ("running", "waiting"):
        current.add_metric([status], active.get(status, 0))
    messages = GaugeMetricFamily(
        "automation_outbox_messages", "Outbox messages by status.", labels=["status"]
    )
    for status in OUTBOX_STATUSES:
        messages.add_metric([status], by_status.get(status, 0))
    tracking = GaugeMetricFamily(
        "automation_tracking_hits_waiting",
        "Opens and clicks taken by the endpoints, not yet processed by a worker.",
    )
    tracking.add_metric([], hits or 0)
    return [waits, current, messages, tracking]


class _ProcessMetrics:
    """This process's own metrics (no multiprocess directory)."""

    def collect(self):
        return REGISTRY.collect()


def registry_for(app) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    path = multiprocess_dir()
    if path:
        from prometheus_client import multiprocess

        multiprocess.MultiProcessCollector(registry, path=path)
    else:
        registry.register(_ProcessMetrics())
    collector = app.extensions.get("automation_metrics")
    if collector is None:
        collector = app.extensions["automation_metrics"] = DeploymentCollector(app)
    registry.register(collector)
    return registry


def exposition(app) -> tuple[bytes, str]:
    """The metrics page: (body, content type)."""
    return generate_latest(registry_for(app)), CONTENT_TYPE_LATEST


def mark_process_dead(pid: int) -> None:
    """Called when a process of the host exits (gunicorn's child_exit,
    worker.py at shutdown): its live gauges stop counting; its counters,
    rightly, keep adding up."""
    if multiprocess_dir():
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(process_identifier(pid))
