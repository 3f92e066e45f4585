"""Page and API latency through a real HTTP server.

Creates its own database (a fresh PostgreSQL database from DATABASE_URL,
dropped afterwards; else a temporary SQLite file) with one firm, an admin
user, an API token, ``--workflows`` workflows (each with a trigger and
three steps) and one workflow of ``--nodes`` steps (a chain with branches,
every step configured). Serves the app with gunicorn in a subprocess
(``--server-workers`` sync workers; REDIS_URL is passed on when set, for
the rate limiter and the queue), signs in through the login form (a real
session cookie) and times, one request at a time over keep-alive:

- ``list_p95_ms``: the workflow list ``/automation`` (first page; the list
  is paged), alternating with a status filter and a name search;
- ``builder_p95_ms``: the builder page of the big workflow;
- ``api_create_p95_ms``: ``POST /api/v1/automation/nodes/`` with the
  bearer token (a new ``send_email`` step each time).

Prints the machine's load beside the figures, and the figures last as JSON
lines ``{"benchmark": "web", "metric": ..., "value": ..., "unit": "ms"}``.

    .venv/bin/python benchmarks/web.py
    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres \\
        REDIS_URL=redis://127.0.0.1:6379/0 .venv/bin/python benchmarks/web.py
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
from sqlalchemy import insert

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402

PASSWORD = "bench password 123"
EMAIL = "bench-admin@example.com"
CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)"')

# One "lap" of the big workflow: most node families, a condition with two
# branches that join again, templated e-mail bodies.
LAP = [
    ("mail", "send_email", {"subject": "Hi {{ contact.first_name }}", "body_text": "Hello!"}),
    ("wait", "wait_time", {"wait_duration_hours": 24}),
    ("check", "condition", {"rules": [{"tag": "vip", "op": "has"}]}),
    ("tag", "add_tag", {"tag": "vip-followup"}),
    ("score", "update_contact", {"fields": {"score": "+5"}}),
]


def _big_workflow(user, nodes: int):
    """A chain of ``nodes`` steps; each condition's "no" skips the tag step."""
    from app.extensions import db
    from app.models import Workflow, WorkflowEdge, WorkflowNode, WorkflowTrigger

    workflow = Workflow(name="Big onboarding journey", created_by_id=user.id)
    db.session.add(workflow)
    db.session.flush()
    db.session.add(WorkflowTrigger(workflow_id=workflow.id, trigger_type="manual"))
    rows = []
    for i in range(nodes):
        key, node_type, config = LAP[i % len(LAP)]
        rows.append(
            WorkflowNode(
                workflow_id=workflow.id,
                node_id=f"{key}_{i}",
                node_type=node_type,
                label=f"{key.title()} {i}",
                position_x=100.0 + 220 * (i % 10),
                position_y=100.0 + 140 * (i // 10),
                configuration=config,
            )
        )
    db.session.add_all(rows)
    db.session.flush()
    edges = []
    for i, node in enumerate(rows[:-1]):
        following = rows[i + 1]
        if node.node_type == "condition":
            edges.append((node, following, "yes"))
            if i + 2 < len(rows):
                edges.append((node, rows[i + 2], "no"))
        else:
            edges.append((node, following, None))
    db.session.add_all(
        WorkflowEdge(
            workflow_id=workflow.id,
            source_node_id=source.id,
            target_node_id=target.id,
            condition_type=kind,
        )
        for source, target, kind in edges
    )
    db.session.flush()
    return workflow


def _setup(workflows: int, nodes: int) -> tuple[int, int, str]:
    """(big workflow id, id of a workflow for API creates, bearer token)."""
    from app.clock import now
    from app.extensions import db
    from app.models import ApiToken, Firm, User, Workflow, WorkflowNode, WorkflowTrigger
    from app.tenancy import firm_context

    firm = Firm(name="Bench")
    db.session.add(firm)
    db.session.commit()
    with firm_context(firm.id):
        user = User(email=EMAIL, role="admin", name="Bench Admin")
        user.set_password(PASSWORD)
        db.session.add(user)
        db.session.flush()
        moment = now()
        statuses = ("draft", "active", "paused", "archived")
        ids = db.session.scalars(
            insert(Workflow).returning(Workflow.id),
            [
                {
                    "firm_id": firm.id,
                    "name": f"Campaign {i:04d} {('spring', 'summer', 'autumn', 'winter')[i % 4]}",
                    "description": "",
                    "status": statuses[i % len(statuses)],
                    "version": 0,
                    "canvas_data": {},
                    "created_by_id": user.id,
                    "created_at": moment,
                    "updated_at": moment,
                }
                for i in range(workflows)
            ],
        ).all()
        db.session.execute(
            insert(WorkflowTrigger),
            [{"firm_id": firm.id, "workflow_id": wid, "trigger_type": "manual"} for wid in ids],
        )
        db.session.execute(
            insert(WorkflowNode),
            [
                {
                    "firm_id": firm.id,
                    "workflow_id": wid,
                    "node_id": f"{key}_{n}",
                    "node_type": node_type,
                    "label": key,
                    "position_x": 100.0,
                    "position_y": 100.0 + 140 * n,
                    "configuration": config,
                }
                for wid in ids
                for n, (key, node_type, config) in enumerate(LAP[:3])
            ],
        )
        big = _big_workflow(user, nodes)
        target = Workflow(name="API target", created_by_id=user.id)
        db.session.add(target)
        _, raw = ApiToken.issue(user, name="bench")
        db.session.commit()
        return big.id, target.id, raw


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _serve(database_url: str, redis_url: str | None, workers: int):
    port = _free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "SECRET_KEY": "web-bench",
        "INLINE_SCHEDULER": "false",
        "RATELIMIT_ENABLED": "false",  # one client sends hundreds a minute
        "LOG_LEVEL": "WARNING",
    }
    if redis_url:
        env["REDIS_URL"] = redis_url
        env["QUEUE_PREFIX"] = f"webbench-{uuid.uuid4().hex[:8]}"
    else:
        env.pop("REDIS_URL", None)
    # INLINE_RUNNER False: node creates must not start an engine thread.
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "--workers",
            str(workers),
            "--bind",
            f"127.0.0.1:{port}",
            "--log-level",
            "warning",
            "app:create_app({'INLINE_RUNNER': False})",
        ],
        cwd=ROOT,
        env=env,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise SystemExit("gunicorn exited")
        time.sleep(0.2)
    proc.kill()
    raise SystemExit("gunicorn did not answer /healthz")


def _stop(proc) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


def _login(client: httpx.Client) -> None:
    page = client.get("/login").text
    token = CSRF_META.search(page).group(1)
    response = client.post(
        "/login", data={"email": EMAIL, "password": PASSWORD, "csrf_token": token}
    )
    if response.status_code != 302:
        raise SystemExit(f"login failed: {response.status_code}")


def _server_cpu_ms(proc) -> float:
    """CPU time (user + system) of gunicorn's workers so far, in ms: a figure
    that, unlike latency, does not grow with the machine's load."""
    total = 0
    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
    for pid in children.read_text().split():
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total * 1000 / os.sysconf("SC_CLK_TCK")


def _time(client: httpx.Client, count: int, request, expect: int) -> list[float]:
    """Milliseconds per request (after three warm-up requests)."""
    for i in range(3):
        request(client, -1 - i)
    times = []
    for i in range(count):
        started = time.perf_counter()
        response = request(client, i)
        times.append((time.perf_counter() - started) * 1000)
        if response.status_code != expect:
            raise SystemExit(
                f"{response.request.url}: {response.status_code} {response.text[:300]}"
            )
    return times


def _p95(times: list[float]) -> float:
    return statistics.quantiles(times, n=100, method="inclusive")[94]


def main() -> int:
    parser = argparse.ArgumentParser(description="Page and API latency benchmark")
    parser.add_argument("--workflows", type=int, default=1000)
    parser.add_argument("--nodes", type=int, default=200)
    parser.add_argument("--requests", type=int, default=200, help="timed requests per metric")
    parser.add_argument("--server-workers", type=int, default=2)
    args = parser.parse_args()

    database_url, drop = harness.bench_database(os.environ.get("DATABASE_URL"), "web")
    redis_url = os.environ.get("REDIS_URL") or None
    from app import create_app
    from app.extensions import db

    app = create_app(
        {
            "SQLALCHEMY_DATABASE_URI": database_url,
            "REDIS_URL": None,
            "INLINE_SCHEDULER": False,
            "INLINE_RUNNER": False,
        }
    )
    proc = None
    results: dict[str, list[float]] = {}
    cpu: dict[str, float] = {}
    try:
        with app.app_context():
            db.create_all()
            big_id, target_id, token = _setup(args.workflows, args.nodes)
            db.session.remove()
            db.engine.dispose()
        proc, base = _serve(database_url, redis_url, args.server_workers)
        with httpx.Client(base_url=base, timeout=30) as browser:
            _login(browser)
            lists = ("/automation", "/automation?status=active", "/automation?q=summer")
            started = _server_cpu_ms(proc)
            results["list"] = _time(
                browser, args.requests, lambda c, i: c.get(lists[i % len(lists)]), 200
            )
            cpu["list"], started = _server_cpu_ms(proc) - started, _server_cpu_ms(proc)
            results["builder"] = _time(
                browser, args.requests, lambda c, i: c.get(f"/automation/builder/{big_id}"), 200
            )
            cpu["builder"] = _server_cpu_ms(proc) - started
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=base, timeout=30, headers=headers) as api:

            def create(c, i):
                return c.post(
                    "/api/v1/automation/nodes/",
                    json={
                        "workflow": target_id,
                        "node_id": f"mail_{i + 3}" if i >= 0 else f"warm_{-i}",
                        "node_type": "send_email",
                        "position_x": 100.0,
                        "position_y": 100.0 + 20 * i,
                        "configuration": {
                            "subject": "Hi",
                            "body_text": "Hello {{ contact.first_name }}",
                        },
                    },
                )

            started = _server_cpu_ms(proc)
            results["api_create"] = _time(api, args.requests, create, 201)
            cpu["api_create"] = _server_cpu_ms(proc) - started
    finally:
        if proc is not None:
            _stop(proc)
        if redis_url and proc is not None:
            _clean_redis(redis_url)
        drop()

    load = os.getloadavg()
    backend = "postgresql" if database_url.startswith("postgresql") else "sqlite"
    print(
        f"# {backend}, gunicorn {args.server_workers} sync workers, {args.workflows} workflows, "
        f"builder of {args.nodes} nodes, {args.requests} requests each; "
        f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} CPUs"
    )
    for name, times in results.items():
        print(
            f"# {name}: p50 {statistics.median(times):.1f} ms, p95 {_p95(times):.1f} ms, "
            f"max {max(times):.1f} ms; server CPU {cpu[name] / (args.requests + 3):.1f} ms/request"
        )
    for name, times in results.items():
        print(
            json.dumps(
                {
                    "benchmark": "web",
                    "metric": f"{name}_p95_ms",
                    "value": round(_p95(times), 1),
                    "unit": "ms",
                }
            )
        )
    return 0


def _clean_redis(redis_url: str) -> None:
    """Rate-limit and queue keys the server may have left under its prefix."""
    import redis

    connection = redis.Redis.from_url(redis_url)
    for key in connection.scan_iter("*webbench-*"):
        connection.delete(key)
    connection.close()


if __name__ == "__main__":
    raise SystemExit(main())
