"""Run a worker: ``python worker.py`` (as many as wanted, on any host).

One process serves the engine, delivery and default queues with an RQ
``SimpleWorker`` (jobs run in this process: the app is imported once, no
fork per job) and runs the periodic jobs (``app.jobs.PERIODIC_JOBS``: due waits woken
every ``WAKE_INTERVAL_SECONDS``, the full sweep every
``SWEEP_INTERVAL_SECONDS``), one thread each. With
several workers, a Redis lock per job and interval lets one of them run
each periodic job; the sweep is idempotent anyway (claims are conditional).

SIGTERM / SIGINT: RQ's warm shutdown — the current job finishes, then the
worker exits; the scheduler thread stops at its next tick. A worker killed
outright (SIGKILL) loses nothing: its leases expire and the sweep hands
the executions to another worker.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import threading

from rq import SimpleWorker

from app import create_app
from app.clock import now
from app.queue import (
    PERIODIC_JOBS,
    QUEUES,
    dotted,
    periodic_interval,
    periodic_runs_key,
    queue_name,
    redis_connection,
    tick,
)

log = logging.getLogger("worker")


class AppWorker(SimpleWorker):
    """Each job in a fresh app context, with a clean database session."""

    flask_app = None
    # RQ retries a lost Redis with a doubling sleep; cap it so a worker is
    # back within seconds of a Redis restart.
    max_connection_wait_time = 5.0

    def execute_job(self, job, queue):
        from app.automation.operations.logs import log_context
        from app.extensions import db

        with self.flask_app.app_context(), log_context(job=job.func_name, job_id=job.id):
            try:
                return super().execute_job(job, queue)
            finally:
                db.session.remove()


def scheduler_loop(app, stop: threading.Event, worker_name: str = "") -> None:
    """Run periodic jobs on time, each in its own thread so a long sweep
    (date triggers enrolling many contacts, a delivery batch) never delays
    the frequent wake job; a Redis ``SET NX PX`` lock per job and interval
    lets one worker of many run each."""
    for job in PERIODIC_JOBS:
        log.info(
            "periodic job %s: %s every %gs",
            job["name"],
            dotted(job["func"]),
            periodic_interval(job, app),
        )
    lanes = [
        threading.Thread(
            target=job_loop,
            args=(app, job, stop, worker_name),
            name=f"periodic-{job['name']}",
            daemon=True,
        )
        for job in PERIODIC_JOBS
    ]
    for lane in lanes:
        lane.start()
    for lane in lanes:
        lane.join()


def job_loop(app, job: dict, stop: threading.Event, worker_name: str = "") -> None:
    next_run: dict[str, float] = {}
    prefix = app.config.get("QUEUE_PREFIX") or "automation"
    interval = periodic_interval(job, app)

    def lock(job: dict) -> bool:
        with app.app_context():
            millis = max(int(interval * 1000) - 50, 100)
            return bool(
                redis_connection().set(f"{prefix}:periodic:{job['name']}", "1", nx=True, px=millis)
            )

    def remember(name: str, seconds: float) -> None:
        # Named in the log (DEBUG: the wake job runs twice a second) and, for
        # the admin queue page, its last run in Redis.
        log.debug("periodic job %s ran in %.3fs", name, seconds)
        run = {"at": now().isoformat(), "seconds": round(seconds, 4), "worker": worker_name}
        with app.app_context():
            redis_connection().hset(periodic_runs_key(app), name, json.dumps(run))

    # Poll a few times per interval so a run starts close to its time.
    while not stop.wait(min(0.25, interval / 4)):
        try:
            for name, seconds in tick(app, next_run, lock, jobs=[job]):
                remember(name, seconds)
        except Exception:
            log.exception("periodic job %s failed", job["name"])


def serve(worker, args, queues, connection) -> None:
    """RQ's loop, started again when RQ gives up on a lost Redis.

    RQ quits its loop when Redis goes away mid-job (the job's bookkeeping
    fails: "found an unhandled exception, quitting"). A Redis restart must
    not take the workers down: wait until Redis answers, then serve again
    as a new RQ worker. A requested shutdown (SIGTERM/SIGINT) still ends it.
    """
    from redis.exceptions import ConnectionError, TimeoutError

    level = os.environ.get("LOG_LEVEL", "INFO")
    stopping = threading.Event()
    while True:
        try:
            worker.work(burst=args.burst, logging_level=level)
        except (ConnectionError, TimeoutError):
            log.warning("worker lost Redis", exc_info=True)
        except Exception:
            # Whatever else RQ's loop raised while Redis came back (a reply
            # from a half-started server, its bookkeeping of a lost job):
            # the work is in the database (docs/ARCHITECTURE.md rule 1), so
            # serve again rather than take the process down.
            log.exception("RQ's loop failed; serving again")
            stopping.wait(1.0)
        if args.burst or worker._stop_requested or worker._shutdown_requested_date:
            return
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stopping.set())
        log.warning("RQ stopped serving (Redis lost?); waiting for Redis to serve again")
        while not stopping.is_set():
            try:
                connection.ping()
                break
            except (ConnectionError, TimeoutError):
                stopping.wait(0.5)
        if stopping.is_set():
            return
        worker = AppWorker(queues, connection=connection, name=args.name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--burst", action="store_true", help="exit when the queues are empty")
    parser.add_argument("--no-scheduler", action="store_true", help="do not run periodic jobs")
    parser.add_argument("--name", default=None)
    parser.add_argument(
        "--queues",
        default=",".join(QUEUES),
        help="queues to serve, comma-separated (default: %(default)s); e.g. delivery "
        "workers on their own hosts: --queues delivery --no-scheduler",
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        default=int(os.environ.get("METRICS_PORT") or 0),
        help="serve this host's metrics on this port (a host without a web process)",
    )
    args = parser.parse_args(argv)
    wanted = [name.strip() for name in args.queues.split(",") if name.strip()]
    unknown = sorted(set(wanted) - set(QUEUES))
    if unknown or not wanted:
        parser.error(f"--queues: unknown queue(s) {', '.join(unknown)}; choose from {QUEUES}")

    from app.automation.operations.logs import configure_logging

    configure_logging()
    app = create_app()
    if not app.config.get("REDIS_URL"):
        parser.error("REDIS_URL is not set: without Redis the web process runs jobs in-process")
    with app.app_context():
        connection = redis_connection()
        queues = [queue_name(name) for name in wanted]
    limit_memory(app.config.get("WORKER_MEMORY_LIMIT_MB") or 0, parser)
    AppWorker.flask_app = app
    worker = AppWorker(queues, connection=connection, name=args.name)
    if args.metrics_port:
        start_metrics_server(app, args.metrics_port)

    from app.automation.operations import workers

    stop = threading.Event()
    beats = threading.Thread(
        target=workers.beat_loop, args=(app, worker.name, wanted, stop), name="beat", daemon=True
    )
    beats.start()
    scheduler = None
    if not args.no_scheduler:
        scheduler = threading.Thread(
            target=scheduler_loop, args=(app, stop, worker.name), name="scheduler", daemon=True
        )
        scheduler.start()
    try:
        serve(worker, args, queues, connection)
    finally:
        stop.set()
        if scheduler is not None:
            scheduler.join(timeout=5)
        beats.join(timeout=5)
        try:
            workers.forget(app, worker.name)  # a clean exit is not a missing worker
        except Exception:
            log.warning("could not remove this worker's heartbeat", exc_info=True)
        from app.automation.operations.metrics import mark_process_dead

        mark_process_dead(os.getpid())
    return 0


def limit_memory(megabytes: int, parser: argparse.ArgumentParser) -> None:
    """Cap this process's address space (``RLIMIT_AS``) at ``megabytes``
    (0: no cap). Jobs run in this process, thousands of renders a second,
    no fork per message: a template that allocates big in C where the
    sandbox's bounds missed it gets a ``MemoryError``, which fails its step
    with "template used too much memory to render" (templating/render.py)
    while the worker serves on, instead of the host running out of memory."""
    if megabytes <= 0:
        return
    import resource

    with open("/proc/self/statm", "rb") as statm:
        current = int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    limit = megabytes << 20
    if limit < current + (256 << 20):
        parser.error(
            f"WORKER_MEMORY_LIMIT_MB={megabytes} leaves no room: the worker already "
            f"maps {current >> 20} MB (set it higher, or 0 for no cap)"
        )
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    log.info("address space capped at %d MB (WORKER_MEMORY_LIMIT_MB)", limit >> 20)


def start_metrics_server(app, port: int) -> None:
    """``GET /metrics`` of this host on ``port`` (prometheus_client's own
    HTTP server, in a daemon thread): for hosts that run workers only."""
    from prometheus_client import start_http_server

    from app.automation.operations.metrics import registry_for

    start_http_server(port, registry=registry_for(app))
    log.info("metrics on port %d", port)


if __name__ == "__main__":
    raise SystemExit(main())
