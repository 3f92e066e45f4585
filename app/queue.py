"""Job plumbing: RQ on Redis, or the same jobs in-process.

Jobs carry no state, only a function and ids; the database says what is
to be done (docs/ARCHITECTURE.md rule 1). Callers pass the function itself, never its
name, so a renamed job fails at import (RQ stores the dotted name, which
tests/test_jobs.py resolves for every job in app/jobs.py). With ``REDIS_URL``
jobs go to named RQ queues (``<QUEUE_PREFIX>-engine``, ``-delivery``,
``-default``) that ``worker.py`` serves. Without it, one runner thread per
process runs them, and a scheduler thread runs :data:`PERIODIC_JOBS`
(``INLINE_SCHEDULER``; tests turn it off and call ``engine.drain()``).

Kicks are coalesced: while a kick job waits in a queue, another kick adds
nothing. A lost kick only delays work: the sweeper finds ready rows.
"""

from __future__ import annotations

import importlib
import logging
import os
import queue as _stdqueue
import threading
import time
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from flask import Flask, current_app

from app.automation.operations.logs import log_context
from app.extensions import db

log = logging.getLogger(__name__)

QUEUES = ("engine", "delivery", "default")

# The job functions. app/jobs.py, the one table of every job the app runs,
# registers them (create_app imports it): this module imports no domain
# code, since the jobs themselves call kick_engine() and kick_delivery().
_kick_jobs: dict[str, Callable] = {}

# Periodic jobs: name, function, interval (seconds, or the name of a config
# key holding it). Filled in place by register_jobs.
PERIODIC_JOBS: list[dict[str, Any]] = []


def register_jobs(kick_jobs: dict[str, Callable], periodic_jobs: list[dict[str, Any]]) -> None:
    """Name the job each kind of kick runs, and the periodic jobs."""
    for job in [*kick_jobs.values(), *(job["func"] for job in periodic_jobs)]:
        if not callable(job):
            raise TypeError(f"a job is a function, not {job!r}")
    _kick_jobs.update(kick_jobs)
    PERIODIC_JOBS[:] = periodic_jobs


def kick_job(kind: str) -> Callable:
    try:
        return _kick_jobs[kind]
    except KeyError:
        raise RuntimeError(f"no job registered for {kind!r} kicks (app/jobs.py)") from None


# How long RQ keeps a finished job (and its place in the finished registry),
# so `rq info`, rq-dashboard and the admin queue page show recent work. Kicks
# are coalesced, so this holds a few hundred small jobs at most.
JOB_RESULT_TTL = 600

# How long a kick marker lives: if a kick job is lost with its marker set,
# the next kick after this many seconds enqueues again.
KICK_MARKER_SECONDS = 30


@lru_cache(maxsize=4)
def _connection_for(url: str):
    from redis import Redis

    return Redis.from_url(url)


def redis_connection():
    """The app's Redis connection, or None in the embedded (inline) mode."""
    url = current_app.config.get("REDIS_URL")
    return _connection_for(url) if url else None


def queue_name(name: str, app: Flask | None = None) -> str:
    config = (app or current_app).config
    return f"{config.get('QUEUE_PREFIX') or 'automation'}-{name}"


def rq_queue(name: str):
    from rq import Queue

    return Queue(queue_name(name), connection=redis_connection())


def resolve(path: str) -> Callable:
    """A callable from a dotted path ``package.module.function`` (what an
    RQ worker does with a job's name)."""
    module, _, attr = path.rpartition(".")
    return getattr(importlib.import_module(module), attr)


def dotted(func: Callable) -> str:
    """The name RQ stores for a job function."""
    return f"{func.__module__}.{func.__qualname__}"


def enqueue(func: Callable, *args, queue: str = "default", job_id: str | None = None):
    """Run ``func(*args)`` on a worker (RQ) or the in-process runner."""
    if not callable(func):
        raise TypeError(f"a job is a function, not {func!r}")
    if queue not in QUEUES:
        raise ValueError(f"unknown queue {queue!r}")
    connection = redis_connection()
    if connection is not None:
        return rq_queue(queue).enqueue_call(
            dotted(func),
            args=args,
            job_id=job_id,
            result_ttl=JOB_RESULT_TTL,
            failure_ttl=7 * 86400,
        )
    _runner_for(current_app._get_current_object()).submit(func, args)
    return None


def _kick(kind: str, queue: str) -> None:
    func = kick_job(kind)
    app = current_app._get_current_object()
    connection = redis_connection()
    if connection is not None:
        marker = f"{app.config.get('QUEUE_PREFIX') or 'automation'}:kick:{kind}"
        # SET NX: only the first kick while one is queued enqueues a job;
        # the job clears the marker when it starts (clear_kick).
        if connection.set(marker, "1", nx=True, ex=KICK_MARKER_SECONDS):
            enqueue(func, queue=queue)
        return
    if not app.config.get("INLINE_RUNNER", not app.testing):
        # Tests drive the engine synchronously with engine.drain().
        return
    start_inline_scheduler(app)
    _runner_for(app).submit(func, (), coalesce=kind)


def clear_kick(kind: str) -> None:
    """Called by a kick job as it starts, so later kicks enqueue again."""
    connection = redis_connection()
    if connection is not None:
        connection.delete(f"{current_app.config.get('QUEUE_PREFIX') or 'automation'}:kick:{kind}")
    else:
        runner = _runners.get(id(current_app._get_current_object()))
        if runner is not None:
            runner.clear(kind)


def hold_kick(kind: str, seconds: float = 1.0) -> bool:
    """Set the kick marker of ``kind`` for ``seconds``, without enqueueing
    a job; True if it was not set. A job that holds it absorbs the kicks
    made meanwhile (they find the marker set) and must look for work once
    more after :func:`clear_kick`: the engine's linger (engine/jobs.py).
    The marker lives only ``seconds``, so a worker killed while holding it
    delays the next kicks that long, not ``KICK_MARKER_SECONDS``."""
    connection = redis_connection()
    if connection is not None:
        marker = f"{current_app.config.get('QUEUE_PREFIX') or 'automation'}:kick:{kind}"
        millis = max(int(seconds * 1000), 1)
        return bool(connection.set(marker, "1", nx=True, px=millis))
    runner = _runners.get(id(current_app._get_current_object()))
    return runner is not None and runner.hold(kind)


def kick_engine() -> None:
    """Tell the workers that executions are ready to advance."""
    _kick("engine", "engine")


def kick_delivery() -> None:
    """Tell the workers that outbox messages are due."""
    _kick("delivery", "delivery")


def kick_tracking() -> None:
    """Tell the workers that opens and clicks wait to be processed."""
    _kick("tracking", "engine")


def kick_soon(kind: str, queue: str) -> None:
    """A kick of ``kind`` made by a thread of this process within
    ``KICK_SOON_SECONDS``: the caller only sets a flag, so a request pays
    no Redis round trip for it (the hot paths of one event per call)."""
    app = current_app._get_current_object()
    key = (os.getpid(), id(app), kind)
    kicker = _soon.get(key)
    if kicker is None:
        with _runners_lock:
            kicker = _soon.get(key)
            if kicker is None:
                kicker = _soon[key] = _SoonKicker(app, kind, queue)
    kicker.poke()


def kick_engine_soon() -> None:
    """:func:`kick_engine`, by :func:`kick_soon`."""
    kick_soon("engine", "engine")


def kick_tracking_soon() -> None:
    """:func:`kick_tracking`, by :func:`kick_soon`."""
    kick_soon("tracking", "engine")


# A process's deferred kicks of one kind are made at most this often.
KICK_SOON_SECONDS = 0.01


class _SoonKicker:
    """One thread making the kicks of one kind that requests asked for: a
    request's poke is a flag; the thread kicks at once, waits
    KICK_SOON_SECONDS and kicks again if poked meanwhile, so no poke goes
    without a kick after it, and a first poke waits for no timer."""

    def __init__(self, app: Flask, kind: str, queue: str):
        self.app, self.kind, self.queue = app, kind, queue
        self.wanted = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"kick-{kind}", daemon=True)
        self.thread.start()

    def poke(self) -> None:
        self.wanted.set()

    def _run(self) -> None:
        while True:
            self.wanted.wait()
            self.wanted.clear()
            try:
                with self.app.app_context():
                    _kick(self.kind, self.queue)
            except Exception:  # Redis away: the periodic job finds the work
                log.exception("a %s kick failed", self.kind)
            time.sleep(KICK_SOON_SECONDS)


def kick_hooks() -> None:
    """Tell the workers that REST hook deliveries are due."""
    _kick("hooks", "delivery")


class InlineRunner:
    """One daemon thread running jobs in order, inside an app context."""

    def __init__(self, app: Flask):
        self.app = app
        self.jobs: _stdqueue.Queue = _stdqueue.Queue()
        self.pending: set[str] = set()
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, name="inline-runner", daemon=True)
        self.thread.start()

    def submit(self, func: Callable, args: tuple, coalesce: str | None = None) -> None:
        if coalesce is not None:
            with self.lock:
                if coalesce in self.pending:
                    return
                self.pending.add(coalesce)
        self.jobs.put((func, args))

    def hold(self, kind: str) -> bool:
        with self.lock:
            if kind in self.pending:
                return False
            self.pending.add(kind)
            return True

    def clear(self, kind: str) -> None:
        with self.lock:
            self.pending.discard(kind)

    def _run(self) -> None:
        while True:
            func, args = self.jobs.get()
            run_job(self.app, func, args)


def run_job(app: Flask, func: Callable, args: tuple = ()) -> Any:
    """Run one job in a fresh app context; errors are logged, not raised
    (the database keeps the state; the sweeper retries)."""
    with app.app_context(), log_context(job=dotted(func)):
        try:
            return func(*args)
        except Exception:
            log.exception("job %s failed", dotted(func))
            db.session.rollback()
        finally:
            db.session.remove()
    return None


_runners: dict[int, InlineRunner] = {}
_runners_lock = threading.Lock()
_soon: dict[tuple[int, int, str], _SoonKicker] = {}


def _runner_for(app: Flask) -> InlineRunner:
    with _runners_lock:
        runner = _runners.get(id(app))
        if runner is None:
            runner = _runners[id(app)] = InlineRunner(app)
        return runner


def periodic_interval(job: dict, app: Flask) -> float:
    every = job["every"]
    return float(app.config.get(every) or 5) if isinstance(every, str) else float(every)


class InlineScheduler:
    """Runs :data:`PERIODIC_JOBS` on time in a daemon thread (no Redis)."""

    def __init__(self, app: Flask):
        self.app = app
        self.stop = threading.Event()
        self.next_run = {job["name"]: 0.0 for job in PERIODIC_JOBS}
        self.thread = threading.Thread(target=self._run, name="inline-scheduler", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.wait(0.5):
            tick(self.app, self.next_run)


def tick(
    app: Flask,
    next_run: dict[str, float],
    lock: Callable[[dict], bool] | None = None,
    jobs: list[dict] | None = None,
) -> list[tuple[str, float]]:
    """Run every periodic job (of ``jobs``, default all) that is due;
    ``lock(job)`` may refuse a run (worker.py uses a Redis lock so one
    worker of many runs each job). Returns (name, seconds) of each run."""
    moment = time.monotonic()
    ran = []
    for job in PERIODIC_JOBS if jobs is None else jobs:
        if moment < next_run.get(job["name"], 0.0):
            continue
        interval = periodic_interval(job, app)
        next_run[job["name"]] = moment + interval
        if lock is not None and not lock(job):
            continue
        started = time.monotonic()
        run_job(app, job["func"])
        ran.append((job["name"], time.monotonic() - started))
    return ran


def periodic_runs_key(app: Flask) -> str:
    """A Redis hash: periodic job name -> its last run (JSON), written by
    the worker that ran it. Periodic jobs run in worker threads, not as RQ
    jobs, so this is where the admin queue page finds them."""
    return f"{app.config.get('QUEUE_PREFIX') or 'automation'}:periodic:last-runs"


_schedulers: dict[int, InlineScheduler] = {}


def start_inline_scheduler(app: Flask) -> InlineScheduler | None:
    """Start the in-process scheduler once per app (inline mode only)."""
    if app.config.get("REDIS_URL") or not app.config.get("INLINE_SCHEDULER"):
        return None
    with _runners_lock:
        scheduler = _schedulers.get(id(app))
        if scheduler is None:
            scheduler = _schedulers[id(app)] = InlineScheduler(app)
        return scheduler


def init_app(app: Flask) -> None:
    """Start the inline scheduler with the first request a process serves
    (not at import: CLI commands like ``db upgrade`` must not sweep)."""

    @app.before_request
    def _start_scheduler():
        start_inline_scheduler(app)
