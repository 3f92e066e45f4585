"""Engine throughput: 20,000 contacts through a five-step workflow.

add_tag -> condition (has the tag) -> send_email (an outbox row; no SMTP
configured, so "recorded") -> update_contact (score +10) -> goal.

With ``DATABASE_URL`` and ``REDIS_URL`` it creates a fresh PostgreSQL
database, enrolls the contacts, starts ``--workers`` real ``worker.py``
processes (default 2) on a private queue prefix and times them from the
kick until every execution has finished. Without them it uses a temporary
SQLite file and advances the batches in this process (the embedded mode).
It cleans up (database, Redis keys, processes) and prints its figures last
as JSON lines: ``node_steps_per_s``, ``executions_per_s``, ``worker_rss_mb``.

    .venv/bin/python benchmarks/engine.py
    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres \\
        REDIS_URL=redis://127.0.0.1:6379/0 .venv/bin/python benchmarks/engine.py
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import uuid
from pathlib import Path

from sqlalchemy import func, select, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402

NODES = [
    ("tag", "add_tag", {"tag": "bench"}),
    ("check", "condition", {"rules": [{"tag": "bench", "op": "has"}]}),
    ("mail", "send_email", {"subject": "Hi {{ contact.first_name }}", "body_text": "Hello!"}),
    ("score", "update_contact", {"fields": {"score": "+10"}}),
    ("done", "goal", {"goal_value": 1}),
]
EDGES = [
    ("tag", "check", None),
    ("check", "mail", "yes"),
    ("mail", "score", None),
    ("score", "done", None),
]


def _setup(count: int, hooks: bool = False):
    """A firm, a user, the active workflow and ``count`` enrolled contacts;
    with ``hooks``, REST hook subscriptions to its execution and goal
    events (each finished execution then writes three deliveries)."""
    from app.automation.engine.enrollment import enroll
    from app.extensions import db
    from app.models import HookSubscription
    from app.tenancy import firm_context

    firm, user = harness.firm_and_user()
    with firm_context(firm.id):
        workflow = harness.build_workflow(user, NODES, EDGES, "manual")
        if hooks:
            for event in ("execution.started", "execution.completed", "goal.reached"):
                db.session.add(HookSubscription(target_url="https://hooks.example/in", event=event))
            db.session.commit()
        enroll(workflow, harness.insert_contacts(firm.id, count), trigger_type="manual")


def _hook_deliveries() -> int:
    from app.extensions import db
    from app.models import HookDelivery

    stmt = select(func.count()).select_from(HookDelivery.__table__)
    return int(db.session.connection().execute(stmt).scalar() or 0)


def _finished() -> int:
    from app.extensions import db
    from app.models import WorkflowExecution

    table = WorkflowExecution.__table__
    stmt = select(func.count()).where(table.c.status.notin_(("running", "waiting")))
    value = db.session.connection().execute(stmt).scalar()
    db.session.rollback()
    return int(value or 0)


def _any_active() -> bool:
    """Whether some execution is still running or waiting: one probe of
    the status index, cheap enough to poll (a count would scan every
    execution twenty times a second, on the cores the workers need)."""
    from app.extensions import db
    from app.models import WorkflowExecution

    table = WorkflowExecution.__table__
    stmt = select(table.c.id).where(table.c.status.in_(("running", "waiting"))).limit(1)
    value = db.session.connection().execute(stmt).first()
    db.session.rollback()
    return value is not None


def _statuses() -> dict:
    from app.extensions import db
    from app.models import WorkflowExecution

    table = WorkflowExecution.__table__
    stmt = select(table.c.status, func.count()).group_by(table.c.status)
    return dict(db.session.connection().execute(stmt).all())


def _steps() -> int:
    from app.extensions import db
    from app.models import ContactFlowState

    stmt = select(func.count()).select_from(ContactFlowState.__table__)
    return int(db.session.connection().execute(stmt).scalar() or 0)


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _cpu_seconds(pid: int) -> float:
    """utime + stime of a process (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _backend_pids() -> list[int]:
    """The PostgreSQL server processes of this benchmark's database other
    than our own connection (the workers' connections)."""
    from app.extensions import db

    stmt = text(
        "SELECT pid FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
    )
    pids = list(db.session.connection().execute(stmt).scalars())
    db.session.rollback()
    return pids


def _cpu_of(pids) -> dict[int, float]:
    return {pid: _cpu_seconds(pid) for pid in pids}


def _run_workers(app, count: int, workers: int, database_url: str, prefix: str, timeout: float):
    from rq import Worker

    from app.queue import kick_engine, redis_connection

    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": app.config["REDIS_URL"],
        "QUEUE_PREFIX": prefix,
        "LOG_LEVEL": "WARNING",
    }
    procs = [
        subprocess.Popen([sys.executable, str(ROOT / "worker.py")], cwd=ROOT, env=env)
        for _ in range(workers)
    ]
    try:
        connection = redis_connection()
        deadline = time.monotonic() + 60
        while len(Worker.all(connection=connection)) < workers and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)
        before = _cpu_of([proc.pid for proc in procs] + _backend_pids())
        started = time.monotonic()
        kick_engine()
        while _any_active() and time.monotonic() - started < timeout:
            time.sleep(0.05)
        elapsed = time.monotonic() - started
        rss = max(_peak_rss_mb(proc.pid) for proc in procs)
        # CPU seconds the run cost (workers, and the server processes that
        # serve them): on a shared machine this, unlike the wall clock,
        # does not depend on what else runs.
        after = _cpu_of(_backend_pids())
        cpu = {
            "worker": sum(_cpu_seconds(p.pid) - before.get(p.pid, 0.0) for p in procs),
            "postgres": sum(value - before.get(pid, 0.0) for pid, value in after.items()),
        }
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
    return elapsed, rss, cpu


def _run_inline(count: int, timeout: float):
    from app.automation.engine.jobs import advance_ready_batch

    started, cpu_started = time.monotonic(), time.process_time()
    while _any_active() and time.monotonic() - started < timeout:
        if not advance_ready_batch()["executions"]:
            time.sleep(0.01)
    elapsed = time.monotonic() - started
    cpu = {"worker": time.process_time() - cpu_started}
    return elapsed, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, cpu


def main() -> int:
    parser = argparse.ArgumentParser(description="Engine throughput benchmark")
    parser.add_argument("--contacts", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=None, help="ENGINE_BATCH_SIZE")
    parser.add_argument("--timeout", type=float, default=240.0)
    parser.add_argument(
        "--hooks", action="store_true", help="subscribe REST hooks to the workflow's events"
    )
    args = parser.parse_args()
    if args.batch:
        os.environ["ENGINE_BATCH_SIZE"] = str(args.batch)

    database_url, drop = harness.bench_database(os.environ.get("DATABASE_URL"), "engine")
    redis_url = os.environ.get("REDIS_URL") or None
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    from app import create_app
    from app.extensions import db

    app = create_app(
        {
            "SQLALCHEMY_DATABASE_URI": database_url,
            "REDIS_URL": redis_url,
            "QUEUE_PREFIX": prefix,
            "INLINE_SCHEDULER": False,
            "INLINE_RUNNER": False,
            "SMTP_HOST": None,
        }
    )
    try:
        with app.app_context():
            db.create_all()
            _setup(args.contacts, hooks=args.hooks)
            if redis_url:
                from app.queue import redis_connection

                connection = redis_connection()
                for key in connection.scan_iter(f"*{prefix}*"):
                    connection.delete(key)  # start timing from our own kick
                elapsed, rss, cpu = _run_workers(
                    app, args.contacts, args.workers, database_url, prefix, args.timeout
                )
                mode = f"{args.workers} workers, PostgreSQL + Redis"
            else:
                elapsed, rss, cpu = _run_inline(args.contacts, args.timeout)
                mode = "in-process, " + db.engine.dialect.name
            steps, finished, statuses = _steps(), _finished(), _statuses()
            hook_rows = _hook_deliveries()
            if redis_url:
                for key in redis_connection().scan_iter(f"*{prefix}*"):
                    redis_connection().delete(key)
            db.session.remove()
            db.engine.dispose()
    finally:
        drop()
    spent = sum(cpu.values())
    print(
        f"# {mode}: {finished}/{args.contacts} executions {statuses}, {steps} steps in "
        f"{elapsed:.2f}s; CPU " + ", ".join(f"{k} {v:.2f}s" for k, v in cpu.items())
    )
    if args.hooks:
        print(f"# REST hook deliveries written: {hook_rows}")
    print("# load average (1, 5, 15 min): " + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    figures = [
        ("node_steps_per_s", steps / elapsed, "1/s"),
        ("executions_per_s", finished / elapsed, "1/s"),
        ("worker_rss_mb", rss, "MB"),
        # Load-independent: steps per CPU second of workers (and the
        # PostgreSQL processes serving them); the rate the machine's cores
        # would reach with nothing else running is this times their number.
        ("node_steps_per_cpu_s", steps / spent if spent else 0.0, "1/s"),
    ]
    figures += [(f"{name}_cpu_s", value, "s") for name, value in cpu.items()]
    for metric, value, unit in figures:
        print(
            json.dumps(
                {"benchmark": "engine", "metric": metric, "value": round(value, 1), "unit": unit}
            )
        )
    return 0 if finished == args.contacts else 1


if __name__ == "__main__":
    raise SystemExit(main())
