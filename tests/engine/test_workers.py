"""Real ``worker.py`` processes on PostgreSQL + Redis: processing, a worker
killed with SIGKILL mid-batch, and a Redis flush while work is queued."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import ContactFlowState, WorkflowExecution
from app.queue import redis_connection
from tests.engine.helpers import active_workflow, chain, make_contacts, start
from tests.factories import make_contact

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

ROOT = Path(__file__).resolve().parents[2]
NODES = (
    ("tag", "add_tag", {"tag": "seen"}),
    ("check", "condition", {"rules": [{"tag": "seen", "op": "has"}]}),
    ("mail", "send_email", {"subject": "Hi", "body_text": "Hello {{ contact.first_name }}"}),
    ("score", "update_contact", {"fields": {"score": "+10"}}),
)
STEPS = len(NODES)


@pytest.fixture
def workers(database_url, redis_url):
    """Start worker processes: ``workers(n, **env)``; all stopped at the end."""
    started: list[subprocess.Popen] = []

    def spawn(count: int = 1, **env) -> list[subprocess.Popen]:
        environment = {
            **os.environ,
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "SWEEP_INTERVAL_SECONDS": "0.5",
            "LOG_LEVEL": "WARNING",
            **{key: str(value) for key, value in env.items()},
        }
        procs = [
            subprocess.Popen(
                [sys.executable, str(ROOT / "worker.py")],
                cwd=ROOT,
                env=environment,
                stdout=subprocess.DEVNULL,
                stderr=open(os.environ.get("WORKER_LOG", os.devnull), "a"),  # noqa: SIM115
            )
            for _ in range(count)
        ]
        started.extend(procs)
        return procs

    yield spawn
    for proc in started:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in started:
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


def _flow():
    specs, _ = chain(*NODES)
    return specs, [("tag", "check"), ("check", "mail", "yes"), ("mail", "score")]


def _wait_for(predicate, timeout: float = 90.0, every: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        db.session.rollback()
        if predicate():
            return True
        time.sleep(every)
    return False


def _statuses() -> dict[str, int]:
    stmt = select(WorkflowExecution.status, func.count()).group_by(WorkflowExecution.status)
    return dict(db.session.execute(stmt.execution_options(all_firms=True)).all())


def _outbox() -> dict:
    from app.models import OutboxMessage

    stmt = select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)
    return dict(db.session.execute(stmt.execution_options(all_firms=True)).all())


def _flow_state_counts() -> tuple[int, int]:
    table = ContactFlowState.__table__
    conn = db.session.connection()
    total = conn.execute(select(func.count()).select_from(table)).scalar()
    distinct = conn.execute(
        select(func.count()).select_from(
            select(table.c.execution_id, table.c.node_id, table.c.visit).distinct().subquery()
        )
    ).scalar()
    return total, distinct


def test_a_worker_process_runs_a_workflow(acme, alice, workers):
    specs, edges = _flow()
    workflow = active_workflow(acme, alice, specs, edges)
    workers(1)
    start(workflow, *[make_contact(acme) for _ in range(50)])
    assert _wait_for(lambda: _statuses() == {"completed": 50}), _statuses()
    assert _flow_state_counts() == (50 * STEPS, 50 * STEPS)


def test_a_worker_killed_mid_batch_is_finished_by_another(acme, alice, workers, app):
    specs, edges = _flow()
    workflow = active_workflow(acme, alice, specs, edges)
    contacts = make_contacts(acme, 600)
    (victim,) = workers(1, ENGINE_LEASE_SECONDS=3, ENGINE_BATCH_SIZE=600)
    start(workflow, *contacts)

    table = WorkflowExecution.__table__

    def leased() -> bool:
        stmt = select(func.count()).where(table.c.lease_owner.is_not(None))
        return db.session.connection().execute(stmt).scalar() > 0

    assert _wait_for(leased, every=0.005), "the worker never claimed a batch"
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=10)
    db.session.rollback()
    # The victim died holding a claimed, unwritten batch.
    stranded = (
        db.session.connection()
        .execute(
            select(func.count()).where(
                table.c.lease_owner.is_not(None), table.c.status == "running"
            )
        )
        .scalar()
    )
    assert stranded > 0

    workers(1, ENGINE_LEASE_SECONDS=3)
    assert _wait_for(lambda: _statuses() == {"completed": 600}), _statuses()
    assert _flow_state_counts() == (600 * STEPS, 600 * STEPS)


def test_a_redis_flush_only_delays_queued_work(acme, alice, workers):
    specs, edges = _flow()
    workflow = active_workflow(acme, alice, specs, edges)
    start(workflow, *[make_contact(acme) for _ in range(30)])  # kicks an RQ job
    connection = redis_connection()
    assert connection.dbsize() > 0
    connection.flushdb()
    workers(1)
    assert _wait_for(lambda: _statuses() == {"completed": 30}), _statuses()
    assert _flow_state_counts() == (30 * STEPS, 30 * STEPS)


def test_a_worker_killed_while_sending_leaves_one_email_per_step(
    acme, alice, workers, smtp_server, app
):
    specs, edges = chain(
        ("mail", "send_email", {"subject": "Hi", "body_text": "Hello {{ contact.first_name }}"}),
        ("after", "add_tag", {"tag": "mailed"}),
    )
    workflow = active_workflow(acme, alice, specs, edges)
    count = 300
    smtp = {"SMTP_HOST": "127.0.0.1", "SMTP_PORT": app.config["SMTP_PORT"]}
    (victim,) = workers(1, ENGINE_LEASE_SECONDS=3, **smtp)
    start(workflow, *make_contacts(acme, count))

    deadline = time.monotonic() + 60
    while len(smtp_server.messages) < count // 3 and time.monotonic() < deadline:
        time.sleep(0.005)
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=10)
    sent_before = len(smtp_server.messages)
    assert 0 < sent_before < count, "the worker was not killed mid-delivery"

    workers(1, ENGINE_LEASE_SECONDS=3, **smtp)
    assert _wait_for(lambda: _statuses() == {"completed": count}), (_statuses(), _outbox())
    ids = [message["Message-ID"] for message in smtp_server.messages]
    # One e-mail per step; a death between hand-over and record may repeat
    # at most that one message, with the same Message-ID.
    assert len(set(ids)) == count
    assert len(ids) <= count + 1
