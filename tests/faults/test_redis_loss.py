"""Redis loses everything (FLUSHALL, or a restart of a server without
persistence) while 1,000 executions are queued, waiting and delivering
(issue 9): the database says what is to be done, so the sweeper's next
pass re-kicks the work; every execution finishes and nothing runs twice."""

from __future__ import annotations

import os
import time

import pytest
from redis import Redis
from sqlalchemy import func, select

from app.extensions import db
from app.models import OutboxMessage, WorkflowExecution
from tests.engine.helpers import active_workflow, chain, make_contacts, start
from tests.faults.checks import (
    emails,
    flow_state_counts,
    outbox_statuses,
    settle,
    statuses,
    webhooks,
)
from tests.faults.conftest import SWEEP_SECONDS
from tests.faults.test_worker_kills import record

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]

EXECUTIONS = 1000
STEPS = 4
WAIT_SECONDS = 2


def _count(table, *where) -> int:
    db.session.rollback()
    return (
        db.session.connection()
        .execute(select(func.count()).select_from(table).where(*where))
        .scalar()
    )


def waiting_on_the_timer() -> int:
    table = WorkflowExecution.__table__
    return _count(table, table.c.status == "waiting", table.c.wait_reason == "time")


def messages_pending() -> int:
    table = OutboxMessage.__table__
    return _count(table, table.c.status == "pending")


@pytest.mark.parametrize("fault", ["flushall", "restart"])
def test_losing_redis_while_executions_are_queued_or_waiting_only_delays_them(faults, fault):
    specs, edges = chain(
        ("pause", "wait_time", {"wait_duration_seconds": WAIT_SECONDS}),
        ("mail", "send_email", {"subject": "Hi", "body_text": "Hello {{ contact.first_name }}"}),
        (
            "hook",
            "webhook",
            {"url": faults.hooks.url + "/crm", "payload": {"contact": "{{ contact.email }}"}},
        ),
        ("done", "add_tag", {"tag": "done"}),
    )
    workflow = active_workflow(faults.firm, faults.user, specs, edges)
    redis = Redis.from_url(faults.redis.url())

    def lose_redis() -> None:
        if fault == "flushall":
            redis.flushall()
        else:
            faults.redis.restart(down_for=1.0)

    began = time.monotonic()
    # Queued: enrolled with no worker up, so the only trace in Redis is the
    # kick job -- which is lost.
    start(workflow, *make_contacts(faults.firm, EXECUTIONS))
    assert redis.dbsize() > 0, "enrolling queued no job"
    lose_redis()
    assert redis.dbsize() == 0
    injections = ["queued"]
    faults.workers.spawn(2)

    # Waiting on the timer, then with messages due for delivery.
    assert settle(lambda: waiting_on_the_timer() > 0, timeout=60, every=0.05), statuses()
    lose_redis()
    injections.append("waiting")
    assert settle(lambda: messages_pending() > 0, timeout=60, every=0.05), (
        outbox_statuses(),
        statuses(),
        faults.workers.log_tail(),
    )
    lose_redis()
    injections.append("delivering")
    lost_at = time.monotonic()

    done = settle(lambda: statuses() == {"completed": EXECUTIONS}, timeout=120)
    assert done, (statuses(), outbox_statuses(), faults.workers.log_tail())
    finished_after = time.monotonic() - lost_at

    assert flow_state_counts() == (EXECUTIONS * STEPS, EXECUTIONS * STEPS)
    assert outbox_statuses() == {("email", "sent"): EXECUTIONS, ("webhook", "sent"): EXECUTIONS}
    mail, hooks = emails(faults.smtp), webhooks(faults.hooks)
    # No worker died: not even the same message twice.
    assert (mail.distinct, mail.duplicates) == (EXECUTIONS, 0)
    assert (hooks.distinct, hooks.duplicates) == (EXECUTIONS, 0)
    assert faults.workers.alive() == faults.workers.procs, "a worker died"

    record(
        {
            "fault": f"redis_{fault}",
            "injections": injections,
            "executions": EXECUTIONS,
            "emails_checked": len(mail.ids),
            "webhooks_checked": len(hooks.ids),
            "duplicates": mail.duplicates + hooks.duplicates,
            "finished_after_last_loss_s": round(finished_after, 1),
            "sweep_interval_s": SWEEP_SECONDS,
            "seconds": round(time.monotonic() - began, 1),
            "load": os.getloadavg()[0],
        }
    )
