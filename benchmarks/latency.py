"""Trigger latency: API trigger calls at 50/s for 30 s, to the first step.

Sends ``POST /api/v1/automation/workflows/{id}/trigger/`` (one contact per
call, open loop at ``--rate`` calls per second) to the real app served by
gunicorn in a subprocess, with ``--workers`` real ``worker.py`` processes
running the engine. The workflow is add_tag -> goal. For each call the
latency is the first step's flow state (its recorded ``exited_at``, a
database timestamp written by the worker) minus the client's send time:
one machine, one clock. Rate limiting is off for the run (one token at
50/s is far over the per-token write limit).

Needs DATABASE_URL (PostgreSQL; a fresh database is made and dropped) and
REDIS_URL (a private queue prefix, its keys removed afterwards). Prints its
figures last as JSON lines: ``trigger_to_first_step_p50_ms``, ``_p99_ms``,
``cpu_ms_per_execution`` and its split by process kind.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres \\
        REDIS_URL=redis://127.0.0.1:6379/0 .venv/bin/python benchmarks/latency.py
"""

from __future__ import annotations

import argparse
import http.client
import json
import socket
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

sys.path.insert(0, __file__.rsplit("/", 1)[0])

import harness  # noqa: E402
import services  # noqa: E402

NODES = [("tag", "add_tag", {"tag": "latency"}), ("done", "goal", {"goal_value": 1})]
EDGES = [("tag", "done", None)]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start_server(env: dict, port: int, processes: int, threads: int) -> subprocess.Popen:
    command = [
        str(harness.ROOT / ".venv" / "bin" / "gunicorn"),
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
        "app:create_app()",
    ]
    proc = subprocess.Popen(command, cwd=harness.ROOT, env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return proc
        except OSError:
            time.sleep(0.1)
    harness.stop([proc])
    raise SystemExit("gunicorn did not start")


class Client:
    """Keep-alive connections, one per thread."""

    def __init__(self, port: int, token: str, workflow_id: int):
        self.port, self.workflow_id = port, workflow_id
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        self.local = threading.local()
        self.responses: list[float] = []

    def trigger(self, contact_id: int) -> tuple[float, int | None, int]:
        """(send time as epoch seconds, execution id, HTTP status); the
        response time (ms) is kept in ``self.responses``."""
        conn = getattr(self.local, "conn", None)
        if conn is None:
            conn = self.local.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        body = json.dumps({"contact_id": contact_id, "context": {}})
        path = f"/api/v1/automation/workflows/{self.workflow_id}/trigger/"
        headers = {**self.headers, "Idempotency-Key": uuid.uuid4().hex}
        sent = time.time()
        try:
            conn.request("POST", path, body=body, headers=headers)
            response = conn.getresponse()
            data = response.read()
            self.responses.append((time.time() - sent) * 1000)
        except (OSError, http.client.HTTPException):
            self.local.conn = None
            return sent, None, 0
        if response.status != 201:
            return sent, None, response.status
        return sent, int(json.loads(data)["id"]), response.status


def _run_load(
    client: Client, contacts: list[int], rate: float
) -> list[tuple[float, int | None, int]]:
    """Open loop: call ``i`` is sent at ``start + i / rate`` (or as soon as a
    thread is free, if the server falls behind)."""
    start = time.monotonic() + 0.2

    def call(index: int):
        delay = start + index / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        return client.trigger(contacts[index])

    with ThreadPoolExecutor(max_workers=16) as pool:
        return list(pool.map(call, range(len(contacts))))


def _first_steps(workflow_id: int, execution_ids: list[int], timeout: float) -> dict[int, datetime]:
    """Execution id -> when its first step's flow state was recorded."""
    from sqlalchemy import func, select

    from app.extensions import db
    from app.models import ContactFlowState

    table = ContactFlowState.__table__
    stmt = select(table.c.execution_id, func.coalesce(table.c.exited_at, table.c.entered_at)).where(
        table.c.workflow_id == workflow_id, table.c.node_id == NODES[0][0]
    )
    deadline = time.monotonic() + timeout
    while True:
        found = dict(db.session.connection().execute(stmt).all())
        db.session.rollback()
        if all(i in found for i in execution_ids) or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def main() -> int:
    parser = argparse.ArgumentParser(description="API trigger -> first step latency")
    parser.add_argument("--rate", type=float, default=50.0, help="calls per second")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--workers", type=int, default=2, help="worker.py processes")
    parser.add_argument("--web", type=int, default=2, help="gunicorn processes")
    parser.add_argument("--threads", type=int, default=8, help="threads per gunicorn process")
    args = parser.parse_args()
    calls = int(args.rate * args.seconds)
    from app.extensions import db
    from app.models import ApiToken
    from app.tenancy import firm_context

    with harness.service_run("latency", RATELIMIT_ENABLED="0") as run:
        firm, user = harness.firm_and_user()
        with firm_context(firm.id):
            workflow = harness.build_workflow(user, NODES, EDGES, "api")
            _, token = ApiToken.issue(user, name="bench")
            db.session.commit()
            workflow_id = workflow.id
        contacts = harness.insert_contacts(firm.id, calls + 20)
        port = _free_port()
        web = _start_server(run.env, port, args.web, args.threads)
        run.procs.append(web)
        workers = harness.start_workers(args.workers, run.env, run.connection)
        run.procs += workers
        client = Client(port, token, workflow_id)
        for contact_id in contacts[calls:]:  # warm the web processes and workers
            client.trigger(contact_id)
        time.sleep(1.0)
        client.responses.clear()
        load_before = harness.load()
        meter = services.CpuMeter(
            [web], workers, run.app.config["SQLALCHEMY_DATABASE_URI"], run.connection
        )
        meter.start()
        results = _run_load(client, contacts[:calls], args.rate)
        sent_span = max(r[0] for r in results) - min(r[0] for r in results)
        ok = [(sent, eid) for sent, eid, _ in results if eid is not None]
        errors = [status for _, eid, status in results if eid is None]
        steps = _first_steps(workflow_id, [eid for _, eid in ok], timeout=60)
        cpu = meter.stop()
        latencies = [(steps[eid].timestamp() - sent) * 1000 for sent, eid in ok if eid in steps]
        missing = len(ok) - len(latencies)
        load_after = harness.load()
    print(
        f"# {calls} calls at {args.rate}/s sent over {sent_span:.1f}s; {len(ok)} started, "
        f"{len(errors)} failed {sorted(set(errors))}, {missing} without a first step; "
        f"{args.workers} workers, {args.web}x{args.threads} gunicorn processes x threads; "
        f"before: {load_before}; after: {load_after}"
    )
    print(
        f"# latency ms: min {min(latencies):.1f} p50 {harness.percentile(latencies, 50):.1f} "
        f"p90 {harness.percentile(latencies, 90):.1f} p99 {harness.percentile(latencies, 99):.1f} "
        f"max {max(latencies):.1f}; HTTP response p50 "
        f"{harness.percentile(client.responses, 50):.1f} p99 "
        f"{harness.percentile(client.responses, 99):.1f}"
    )
    print(f"# {services.cpu_line(cpu, len(ok))}")
    harness.print_figures(
        "latency",
        [
            ("trigger_to_first_step_p50_ms", harness.percentile(latencies, 50), "ms"),
            ("trigger_to_first_step_p99_ms", harness.percentile(latencies, 99), "ms"),
            *services.cpu_figures("", cpu, len(ok)),
        ],
    )
    return 0 if not errors and not missing else 1


if __name__ == "__main__":
    raise SystemExit(main())
