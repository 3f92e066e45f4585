"""Worker heartbeats, for the stuck-work monitor's "workers missing".

RQ's own heartbeat is too slow to tell a frozen worker from an idle one
(an idle worker blocks on Redis for minutes between beats), so each
``worker.py`` process beats here from a thread of its own every
``WORKER_BEAT_SECONDS``: a Redis hash, worker name -> JSON (when, host,
pid, queues). A frozen (SIGSTOP), killed or cut-off worker stops beating;
one that shuts down cleanly removes its entry. Entries older than
``WORKER_FORGET_SECONDS`` are dropped (a host retired for good).
"""

from __future__ import annotations

import json
import os
import socket
import threading
from datetime import timedelta

from flask import Flask

from app.clock import ensure_utc, now
from app.queue import redis_connection


def beats_key(app: Flask) -> str:
    return f"{app.config.get('QUEUE_PREFIX') or 'automation'}:workers:beats"


def beat(app: Flask, name: str, queues: list[str]) -> None:
    entry = {
        "at": now().isoformat(),
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "queues": queues,
    }
    with app.app_context():
        redis_connection().hset(beats_key(app), name, json.dumps(entry))


def forget(app: Flask, name: str) -> None:
    with app.app_context():
        redis_connection().hdel(beats_key(app), name)


def beat_loop(app: Flask, name: str, queues: list[str], stop: threading.Event) -> None:
    import logging

    every = float(app.config.get("WORKER_BEAT_SECONDS") or 5)
    while True:
        try:
            beat(app, name, queues)
        except Exception:
            logging.getLogger(__name__).warning("worker heartbeat failed", exc_info=True)
        if stop.wait(every):
            return


def known_workers(app: Flask) -> list[dict]:
    """Every worker that beat within ``WORKER_FORGET_SECONDS``, with
    ``age`` (seconds since its last beat); older entries are removed."""
    from datetime import datetime

    connection = redis_connection()
    if connection is None:
        return []
    moment = now()
    forget_after = timedelta(seconds=float(app.config.get("WORKER_FORGET_SECONDS") or 3600))
    workers = []
    for raw_name, raw in connection.hgetall(beats_key(app)).items():
        name = raw_name.decode() if isinstance(raw_name, bytes) else raw_name
        try:
            entry = json.loads(raw)
            at = ensure_utc(datetime.fromisoformat(entry["at"]))
        except (ValueError, KeyError, TypeError):
            connection.hdel(beats_key(app), raw_name)
            continue
        if moment - at > forget_after:
            connection.hdel(beats_key(app), raw_name)
            continue
        workers.append({**entry, "name": name, "age": (moment - at).total_seconds()})
    return sorted(workers, key=lambda worker: worker["name"])
