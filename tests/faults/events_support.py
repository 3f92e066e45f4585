"""Shared by the event-fault tests: the app served over real HTTP, and a
way to fire one request from many threads at the same instant."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
from werkzeug.serving import make_server


@contextmanager
def served(app) -> Iterator[str]:
    """The test app on 127.0.0.1 and a free port (threaded werkzeug, a
    thread per request, like a real multi-threaded web server); yields
    the base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="fault-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()


def at_once(count: int, call: Callable[[httpx.Client], httpx.Response]) -> list[httpx.Response]:
    """Run ``call`` from ``count`` threads released together by a barrier,
    each with its own connection; returns the responses."""
    barrier = threading.Barrier(count)

    def one(_):
        with httpx.Client(timeout=60, trust_env=False) as client:
            barrier.wait()
            return call(client)

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(one, range(count)))


ROOT = Path(__file__).resolve().parents[2]


def spawn_worker(database_url: str, redis_url: str, log_path: str | None = None, **env):
    """One real ``worker.py`` process (RQ SimpleWorker + scheduler)."""
    environment = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "SWEEP_INTERVAL_SECONDS": "0.5",
        "LOG_LEVEL": "WARNING",
        **{key: str(value) for key, value in env.items()},
    }
    log = open(log_path or os.devnull, "ab")  # noqa: SIM115 - the child owns it
    return subprocess.Popen(
        [sys.executable, str(ROOT / "worker.py")],
        cwd=ROOT,
        env=environment,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def stop(proc: subprocess.Popen, timeout: float = 15) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


@contextmanager
def worker_processes(
    database_url: str, redis_url: str, count: int = 1, log_path: str | None = None, **env
):
    procs = [spawn_worker(database_url, redis_url, log_path, **env) for _ in range(count)]
    try:
        yield procs
    finally:
        for proc in procs:
            stop(proc)
