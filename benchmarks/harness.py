"""Shared parts of the timing benchmarks (latency, fanout, waits).

A private PostgreSQL database and Redis queue prefix per run, workflows and
contacts made set-based, real ``worker.py`` processes, cleanup, and the
figures printed last as JSON lines with the machine's load beside them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from app.automation.lifecycle.publishing import activate_workflow

ROOT = Path(__file__).resolve().parent.parent
# Production mode (DATABASE_URL) needs a SECRET_KEY shared by every process a
# benchmark starts; they inherit this one unless the caller set their own.
os.environ.setdefault("SECRET_KEY", "benchmark-secret")
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def require_services(name: str) -> tuple[str, str]:
    base, redis_url = os.environ.get("DATABASE_URL"), os.environ.get("REDIS_URL")
    if not base or not redis_url or not base.startswith("postgres"):
        raise SystemExit(f"{name}: set DATABASE_URL (PostgreSQL) and REDIS_URL")
    return base, redis_url


def bench_database(base: str | None, name: str):
    """(url, drop): a fresh PostgreSQL database next to ``base`` or, with
    no ``base``, a temporary SQLite file (the embedded default)."""
    if not base:
        path = Path(tempfile.mkdtemp()) / f"{name}-bench.db"
        return f"sqlite:///{path}", lambda: path.unlink(missing_ok=True)
    return fresh_database(base, name)


def fresh_database(base: str, name: str):
    """A new database next to ``base``; returns (url, drop)."""
    url = make_url(base)
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    database = f"{name}_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{database}"'))

    def drop():
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        admin.dispose()

    return url.set(database=database).render_as_string(hide_password=False), drop


def make_app(database_url: str, redis_url: str, prefix: str, **extra):
    from app import create_app

    return create_app(
        {
            "SQLALCHEMY_DATABASE_URI": database_url,
            "REDIS_URL": redis_url,
            "QUEUE_PREFIX": prefix,
            "INLINE_SCHEDULER": False,
            "INLINE_RUNNER": False,
            "SMTP_HOST": None,
            **extra,
        }
    )


def service_env(database_url: str, redis_url: str, prefix: str, **extra) -> dict:
    return {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "QUEUE_PREFIX": prefix,
        "LOG_LEVEL": "WARNING",
        **{key: str(value) for key, value in extra.items()},
    }


def start_workers(count: int, env: dict, connection, *args: str) -> list[subprocess.Popen]:
    """``count`` real ``worker.py`` processes, returned once registered."""
    from rq import Worker

    procs = [
        subprocess.Popen([sys.executable, str(ROOT / "worker.py"), *args], cwd=ROOT, env=env)
        for _ in range(count)
    ]
    prefix = env["QUEUE_PREFIX"]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        mine = [w for w in Worker.all(connection=connection) if prefix in " ".join(w.queue_names())]
        if len(mine) >= count:
            break
        time.sleep(0.1)
    return procs


def stop(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass
class ServiceRun:
    """What :func:`service_run` sets up: the app (its context is active),
    the environment for subprocesses, the Redis connection and queue
    prefix, and the processes to stop at the end."""

    app: object
    env: dict
    prefix: str
    connection: object = None
    procs: list[subprocess.Popen] = field(default_factory=list)


@contextmanager
def service_run(name: str, **env_extra):
    """A fresh PostgreSQL database with the schema, a private Redis queue
    prefix and an app context on them; on leaving, the processes in
    ``run.procs`` are stopped, the prefix's keys deleted and the database
    dropped. ``env_extra`` goes to the subprocesses' environment."""
    from app.extensions import db
    from app.queue import redis_connection

    base, redis_url = require_services(name)
    database_url, drop = fresh_database(base, name)
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    app = make_app(database_url, redis_url, prefix)
    run = ServiceRun(app, service_env(database_url, redis_url, prefix, **env_extra), prefix)
    try:
        with app.app_context():
            db.create_all()
            run.connection = redis_connection()
            yield run
            stop(run.procs)  # first, so no worker writes after the cleanup
            clean_redis(run.connection, prefix)
            db.session.remove()
            db.engine.dispose()
    finally:
        stop(run.procs)
        drop()


def clean_redis(connection, prefix: str) -> None:
    for key in connection.scan_iter(f"*{prefix}*"):
        connection.delete(key)


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load {one:.2f} {five:.2f} {fifteen:.2f} ({os.cpu_count()} cpus)"


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile (no interpolation)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-pct * len(ordered) // 100))))
    return ordered[rank - 1]


def print_figures(benchmark: str, figures: list[tuple[str, float, str]]) -> None:
    for metric, value, unit in figures:
        print(
            json.dumps(
                {"benchmark": benchmark, "metric": metric, "value": round(value, 3), "unit": unit}
            ),
            flush=True,
        )


def firm_and_user():
    """The firm and admin user everything belongs to; commits."""
    from app.extensions import db
    from app.models import Firm, User
    from app.tenancy import firm_context

    firm = Firm(name="Bench")
    db.session.add(firm)
    db.session.commit()
    with firm_context(firm.id):
        user = User(email="bench@example.com", role="admin")
        db.session.add(user)
        db.session.commit()
    return firm, user


def build_workflow(
    user, nodes, edges, trigger_type: str, trigger_config=None, activate=True, **settings
):
    """A workflow (current firm; active unless ``activate`` is false) from
    ``(key, type, config)`` nodes and ``(source, target, condition_type)`` edges."""
    from app.extensions import db
    from app.models import Workflow, WorkflowEdge, WorkflowNode, WorkflowTrigger

    workflow = Workflow(name=f"Bench {trigger_type}", **settings)
    db.session.add(workflow)
    db.session.flush()
    db.session.add(
        WorkflowTrigger(
            workflow_id=workflow.id,
            trigger_type=trigger_type,
            configuration=trigger_config or {},
        )
    )
    made = {}
    for key, node_type, config in nodes:
        made[key] = WorkflowNode(
            workflow_id=workflow.id, node_id=key, node_type=node_type, configuration=config
        )
        db.session.add(made[key])
    db.session.flush()
    for source, target, kind in edges:
        db.session.add(
            WorkflowEdge(
                workflow_id=workflow.id,
                source_node_id=made[source].id,
                target_node_id=made[target].id,
                condition_type=kind,
            )
        )
    db.session.flush()
    if activate:
        activate_workflow(workflow, user)
    db.session.commit()
    return workflow


def insert_contacts(
    firm_id: int,
    count: int,
    custom_fields=None,
    chunk: int = 10_000,
    prefix: str = "c",
    score: int = 0,
) -> list[int]:
    """``count`` contacts, set-based; ``custom_fields(i)`` gives each one's."""
    from app.clock import now
    from app.extensions import db
    from app.models import Contact

    moment = now()
    table = Contact.__table__
    ids: list[int] = []
    for start in range(0, count, chunk):
        rows = [
            {
                "firm_id": firm_id,
                "email": f"{prefix}{i}@bench.example.com",
                "first_name": f"C{i}",
                "last_name": "",
                "phone": "",
                "score": score,
                "timezone": "UTC",
                "custom_fields": custom_fields(i) if custom_fields else {},
                "unsubscribed": False,
                "created_at": moment,
                "updated_at": moment,
            }
            for i in range(start, min(count, start + chunk))
        ]
        ids.extend(db.session.execute(table.insert().returning(table.c.id), rows).scalars())
        db.session.commit()
    return ids


def analyze() -> None:
    """Fresh statistics after bulk loading (as autovacuum would give a
    long-lived database); without them the planner takes a 100,000-row
    table for an empty one."""
    from app.extensions import db

    db.session.commit()
    with db.engine.connect() as conn:
        conn.execute(text("ANALYZE"))
        conn.commit()


class StatusProbe:
    """Whether any execution of a workflow is still in ``status``, for
    runs in which executions leave that status and never come back (a
    fan-out's first step, a mass wake). Each poll is one index probe from
    the lowest id found in that status last time: the rows below it have
    left for good. Probing from the start every time walked the index
    entries of every row that had left (dead until a vacuum, and this
    machine's PostgreSQL runs without autovacuum): 1.4 s a probe at
    850,000 of 1,000,000, a core of the database's CPU spent by the
    benchmark itself."""

    def __init__(self, workflow_id: int, status: str):
        self.workflow_id, self.status, self.floor = workflow_id, status, 0

    def any(self) -> bool:
        from sqlalchemy import select

        from app.extensions import db
        from app.models import WorkflowExecution

        table = WorkflowExecution.__table__
        stmt = (
            select(table.c.id)
            .where(
                table.c.workflow_id == self.workflow_id,
                table.c.status == self.status,
                table.c.id >= self.floor,
            )
            .order_by(table.c.id)
            .limit(1)
        )
        found = db.session.connection().execute(stmt).scalar()
        db.session.rollback()
        if found is None:
            return False
        self.floor = found
        return True
