"""Processes the end-to-end benchmarks run against, and what they cost.

- :func:`start_gunicorn`: the app served by gunicorn (gthread), as in
  production, on a free local port;
- :class:`SmtpSink`: a real aiosmtpd server in this process that counts
  messages and Message-IDs and notes when the last one arrived;
- :class:`CpuMeter`: CPU seconds per process kind (web, workers,
  PostgreSQL, redis) from ``/proc/<pid>/stat``. PostgreSQL's share is the
  backends serving this benchmark's database, sampled while the run goes
  (a backend that exits keeps its last sample); Redis is one server shared
  with whatever else runs on the machine, so its share is an upper bound;
- :class:`HttpClient`: keep-alive connections, one per thread.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import harness

TICK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_gunicorn(env: dict, port: int, processes: int, threads: int, *extra: str):
    """gunicorn serving ``app:create_app()``; returned once it accepts."""
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(processes),
        "--worker-class",
        "gthread",
        "--threads",
        str(threads),
        "--log-level",
        "warning",
        *extra,
        "app:create_app()",
    ]
    proc = subprocess.Popen(command, cwd=harness.ROOT, env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
        except OSError:
            time.sleep(0.1)
    else:
        harness.stop([proc])
        raise SystemExit("gunicorn did not start")
    # Every worker process up (each imports the app on its own).
    while time.monotonic() < deadline and len(children(proc.pid)) < processes:
        time.sleep(0.1)
    return proc


def children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def cpu_seconds(pid: int) -> float | None:
    """utime + stime of a live process, None once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / TICK


class SmtpSink:
    """aiosmtpd in a thread of this process: counts what it receives.
    It offers PIPELINING (RFC 2920), as Postfix and the big relays do."""

    _MESSAGE_ID = re.compile(rb"^Message-ID: *(<[^>\r\n]*>)", re.MULTILINE | re.IGNORECASE)

    def __init__(self):
        from aiosmtpd.controller import Controller

        sink = self
        self.ids: dict[str, int] = {}
        self.last = 0.0
        self.lock = threading.Lock()

        class Handler:
            async def handle_DATA(self, server, session, envelope):
                # A regex, not the e-mail parser: the server should cost little.
                match = sink._MESSAGE_ID.search(envelope.content)
                key = match.group(1).decode() if match else ""
                with sink.lock:
                    sink.ids[key] = sink.ids.get(key, 0) + 1
                    sink.last = time.time()
                return "250 OK"

            async def handle_EHLO(self, server, session, envelope, hostname, responses):
                session.host_name = hostname
                return [*responses[:-1], "250-PIPELINING", responses[-1]]

        class Free(Controller):
            def _trigger_server(self):
                self.port = self.server.sockets[0].getsockname()[1]
                super()._trigger_server()

        self.controller = Free(Handler(), hostname="127.0.0.1", port=0)
        self.controller.start()
        self.port = self.controller.port

    @property
    def received(self) -> int:
        with self.lock:
            return sum(self.ids.values())

    @property
    def repeated(self) -> int:
        with self.lock:
            return sum(n - 1 for n in self.ids.values() if n > 1)

    def wait_for(self, count: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self.received < count:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def stop(self) -> None:
        self.controller.stop()


class CpuMeter:
    """CPU seconds per process kind over a run: ``start()``, the load,
    ``stop()`` -> ``{"web": s, "workers": s, "postgres": s, "redis": s}``
    (``redis`` None: no Redis share)."""

    def __init__(self, web: list, workers: list, database_url: str, redis=None):
        self.web, self.workers = web, workers
        self.redis_pid = int(redis.info("server")["process_id"]) if redis is not None else None
        self.database = database_url.rsplit("/", 1)[1].split("?")[0]
        self.base: dict[int, float] = {}
        self.seen: dict[int, float] = {}
        self.kind: dict[int, str] = {}
        self.running = threading.Event()
        self.thread: threading.Thread | None = None
        self.admin = None

    def _backends(self) -> list[int]:
        import psycopg

        if self.admin is None:
            self.admin = psycopg.connect(
                "host=127.0.0.1 user=postgres dbname=postgres", autocommit=True
            )
        rows = self.admin.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s", (self.database,)
        ).fetchall()
        return [row[0] for row in rows]

    def _pids(self) -> dict[int, str]:
        found = {self.redis_pid: "redis"} if self.redis_pid is not None else {}
        for proc in self.web:
            found[proc.pid] = "web"
            found.update((pid, "web") for pid in children(proc.pid))
        found.update((proc.pid, "workers") for proc in self.workers)
        found.update((pid, "postgres") for pid in self._backends())
        return found

    def _sample(self, first: bool = False) -> None:
        for pid, kind in self._pids().items():
            value = cpu_seconds(pid)
            if value is None:
                continue
            if pid not in self.kind:
                self.kind[pid] = kind
                # A backend born during the run: all of its CPU counts.
                self.base[pid] = value if first else 0.0
            self.seen[pid] = value

    def start(self) -> None:
        self._sample(first=True)
        self.running.set()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while self.running.is_set():
            time.sleep(0.2)
            # A process that ends between listing and reading is skipped.
            with contextlib.suppress(Exception):
                self._sample()

    def stop(self) -> dict[str, float]:
        self.running.clear()
        if self.thread is not None:
            self.thread.join()
        self._sample()
        totals = {"web": 0.0, "workers": 0.0, "postgres": 0.0, "redis": 0.0}
        for pid, kind in self.kind.items():
            totals[kind] += self.seen[pid] - self.base[pid]
        if self.admin is not None:
            self.admin.close()
            self.admin = None
        return totals


@contextlib.contextmanager
def cpu_split(database_url: str, own: str):
    """CPU seconds over the block, filled into the yielded dict when it
    ends: this process's under ``own`` and, on PostgreSQL, the database
    backends' under ``postgres``."""
    split: dict[str, float] = {}
    meter = CpuMeter([], [], database_url) if database_url.startswith("postgresql") else None
    if meter is not None:
        meter.start()
    started = time.process_time()
    try:
        yield split
    finally:
        split[own] = time.process_time() - started
        if meter is not None:
            split["postgres"] = meter.stop()["postgres"]


def cpu_figures(prefix: str, cpu: dict[str, float], count: int) -> list[tuple[str, float, str]]:
    """``<prefix>cpu_ms_per_execution`` (all kinds) and one line per kind."""
    per = 1000.0 / max(count, 1)
    figures = [(f"{prefix}cpu_ms_per_execution", sum(cpu.values()) * per, "ms")]
    figures += [(f"{prefix}cpu_ms_per_execution_{kind}", s * per, "ms") for kind, s in cpu.items()]
    return figures


def cpu_line(cpu: dict[str, float], count: int) -> str:
    per = 1000.0 / max(count, 1)
    parts = ", ".join(f"{kind} {s * per:.2f}" for kind, s in cpu.items())
    return f"CPU ms per execution {sum(cpu.values()) * per:.2f} ({parts})"


class HttpClient:
    """Keep-alive HTTP/1.1 connections to the local server, one per thread."""

    def __init__(self, port: int, headers: dict | None = None):
        self.port = port
        self.headers = {"Content-Type": "application/json", **(headers or {})}
        self.local = threading.local()

    def request(self, method: str, path: str, body=None, headers=None):
        """(status, body bytes, seconds); status 0 on a connection error."""
        conn = getattr(self.local, "conn", None)
        if conn is None:
            conn = self.local.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        data = None if body is None else json.dumps(body)
        started = time.perf_counter()
        try:
            conn.request(method, path, body=data, headers={**self.headers, **(headers or {})})
            response = conn.getresponse()
            payload = response.read()
        except (OSError, http.client.HTTPException):
            conn.close()
            self.local.conn = None
            return 0, b"", time.perf_counter() - started
        if response.getheader("Connection", "").lower() == "close":
            conn.close()
            self.local.conn = None
        return response.status, payload, time.perf_counter() - started


def uptime() -> str:
    return harness.load()
