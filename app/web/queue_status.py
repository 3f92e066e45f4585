"""What the background machinery is doing, for the admin queue page: RQ
queues, registries and workers when Redis is configured; the in-process
runner and scheduler otherwise. Read-only."""

from __future__ import annotations

import json

from flask import current_app

from app import queue as app_queue


def queue_report() -> dict:
    app = current_app._get_current_object()
    if app.config.get("REDIS_URL"):
        return _redis_report()
    return _inline_report(app)


def _redis_report() -> dict:
    from rq import Worker
    from rq.registry import (
        DeferredJobRegistry,
        FailedJobRegistry,
        FinishedJobRegistry,
        ScheduledJobRegistry,
        StartedJobRegistry,
    )

    connection = app_queue.redis_connection()
    queues = []
    try:
        for name in app_queue.QUEUES:
            queue = app_queue.rq_queue(name)
            queues.append(
                {
                    "name": queue.name,
                    "queued": queue.count,
                    "started": StartedJobRegistry(queue=queue).count,
                    "scheduled": ScheduledJobRegistry(queue=queue).count,
                    "deferred": DeferredJobRegistry(queue=queue).count,
                    "failed": FailedJobRegistry(queue=queue).count,
                    "finished": FinishedJobRegistry(queue=queue).count,
                }
            )
        last_runs = connection.hgetall(app_queue.periodic_runs_key(current_app))
        workers = [
            {
                "name": worker.name,
                "state": worker.get_state(),
                "queues": ", ".join(worker.queue_names()),
                "current_job": getattr(worker.get_current_job(), "id", None),
                "successful": worker.successful_job_count,
                "failed": worker.failed_job_count,
                "last_heartbeat": worker.last_heartbeat,
            }
            for worker in Worker.all(connection=connection)
        ]
    except Exception as exc:  # redis down: say so rather than fail the page
        return {
            "mode": "redis",
            "error": f"Redis is not reachable: {exc}",
            "queues": queues,
            "workers": [],
            "periodic": _periodic({}),
        }
    return {
        "mode": "redis",
        "error": None,
        "queues": queues,
        "workers": workers,
        "periodic": _periodic(last_runs),
    }


def _periodic(last_runs: dict) -> list[dict]:
    """Each periodic job with its last run (Redis mode: by which worker)."""
    app = current_app._get_current_object()
    jobs = []
    for job in app_queue.PERIODIC_JOBS:
        raw = last_runs.get(job["name"].encode()) or last_runs.get(job["name"])
        jobs.append(
            {
                "name": job["name"],
                "func": app_queue.dotted(job["func"]),
                "every": app_queue.periodic_interval(job, app),
                "last_run": json.loads(raw) if raw else None,
            }
        )
    return jobs


def _inline_report(app) -> dict:
    runner = app_queue._runners.get(id(app))
    scheduler = app_queue._schedulers.get(id(app))
    return {
        "mode": "inline",
        "error": None,
        "runner_alive": bool(runner and runner.thread.is_alive()),
        "queued": runner.jobs.qsize() if runner else 0,
        "pending": sorted(runner.pending) if runner else [],
        "scheduler_alive": bool(scheduler and scheduler.thread.is_alive()),
        "periodic": _periodic({}),
    }
