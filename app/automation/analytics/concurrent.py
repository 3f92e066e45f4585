"""Run independent read-only aggregates at the same time.

One workflow's analytics are a handful of aggregates over different tables
(executions, flow states, outbox, tracking). On PostgreSQL each runs on a
connection of its own, in a thread, so the server works on them together:
the ordered-set aggregate behind the median cannot use parallel workers,
and the small queries would otherwise wait behind the big scan. SQLite (one
file, one writer, mostly in-process) runs them in turn.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from flask import current_app

from app.extensions import db


def run_together(calls: dict[str, Callable[[], Any]]) -> dict[str, Any]:
    """``{name: fn()}`` for every call, concurrently where the database
    allows. Each call sees the current firm (the tenancy context travels
    with it) and reads committed data through its own session."""
    if len(calls) < 2 or db.session.get_bind().dialect.name != "postgresql":
        return {name: fn() for name, fn in calls.items()}
    app = current_app._get_current_object()

    def in_own_session(fn: Callable[[], Any]) -> Any:
        with app.app_context():
            try:
                return fn()
            finally:
                db.session.remove()

    with ThreadPoolExecutor(max_workers=len(calls), thread_name_prefix="analytics") as pool:
        futures = {
            # A fresh copy of the caller's context per call: the current
            # firm is a context variable.
            name: pool.submit(contextvars.copy_context().run, in_own_session, fn)
            for name, fn in calls.items()
        }
        return {name: future.result() for name, future in futures.items()}
