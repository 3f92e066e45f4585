"""PostgreSQL restarted under running workers (issue 9): the same worker
processes reconnect on their own, no execution stays stuck past its lease,
and everything finishes. A restart can cost at most the message each worker
had handed over but could not record (same Message-ID / Idempotency-Key)."""

from __future__ import annotations

import os
import time
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.clock import now
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
from tests.faults.conftest import LEASE_SECONDS, SWEEP_SECONDS
from tests.faults.test_worker_kills import record

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]

EXECUTIONS = 500
STEPS = 4
WORKERS = 2
# An expired lease must be taken over within a few sweeps; beyond this the
# execution counts as stuck (generous: the machine is shared and loaded).
STUCK_AFTER_SECONDS = 15
# "fast" ends every session (an admin restart); "immediate" is a crash
# with recovery on start.
RESTARTS = ("fast", "immediate")


def stuck_past_lease() -> int:
    """Running executions whose lease expired long ago and nobody took."""
    table = WorkflowExecution.__table__
    overdue = now() - timedelta(seconds=STUCK_AFTER_SECONDS)
    stmt = select(func.count()).where(table.c.status == "running", table.c.lease_until < overdue)
    return db.session.connection().execute(stmt).scalar()


def in_progress(total: int) -> bool:
    """The wave under way: some of its messages sent, and not every
    execution finished (they end a second after their messages, behind
    the wait, so "messages still pending" may never be seen)."""
    table = OutboxMessage.__table__
    sent = (
        db.session.connection()
        .execute(select(func.count()).where(table.c.status == "sent"))
        .scalar()
    )
    earlier_waves = total - EXECUTIONS
    return sent > 2 * earlier_waves and statuses().get("completed", 0) < total


def test_workers_reconnect_after_postgres_restarts_and_no_execution_stays_stuck(faults, pg_cluster):
    specs, edges = chain(
        ("mail", "send_email", {"subject": "Hi", "body_text": "Hello {{ contact.first_name }}"}),
        (
            "hook",
            "webhook",
            {"url": faults.hooks.url + "/crm", "payload": {"contact": "{{ contact.email }}"}},
        ),
        ("pause", "wait_time", {"wait_duration_seconds": 1}),
        ("done", "add_tag", {"tag": "done"}),
    )
    workflow = active_workflow(faults.firm, faults.user, specs, edges)
    workers = faults.workers.spawn(WORKERS)
    began = time.monotonic()
    # Twice the contacts, in two waves: one restart lands on each.
    total = 0
    for mode in RESTARTS:
        enrolled = start(workflow, *make_contacts(faults.firm, EXECUTIONS))
        assert len(enrolled) == EXECUTIONS, (mode, len(enrolled), statuses())
        total += EXECUTIONS
        assert settle(lambda total=total: in_progress(total), timeout=90, every=0.05), (
            statuses(),
            outbox_statuses(),
        )
        db.session.rollback()  # our pool pre-pings: its connections recover
        pg_cluster.stop(mode)
        time.sleep(2)  # workers hit a dead server for a while
        pg_cluster.start()

    worst_stuck = 0

    def finished() -> bool:
        nonlocal worst_stuck
        worst_stuck = max(worst_stuck, stuck_past_lease())
        return statuses() == {"completed": total}

    done = settle(finished, timeout=180)
    assert done, (statuses(), outbox_statuses(), faults.workers.log_tail())
    assert worst_stuck == 0
    # The very processes started before the restarts did all of it.
    assert [p.poll() for p in workers] == [None] * WORKERS
    assert faults.workers.procs == workers

    assert flow_state_counts() == (total * STEPS, total * STEPS)
    assert outbox_statuses() == {("email", "sent"): total, ("webhook", "sent"): total}
    mail, hooks = emails(faults.smtp), webhooks(faults.hooks)
    assert mail.distinct == total and hooks.distinct == total
    assert mail.recipients_with_two_messages() == []
    assert hooks.recipients_with_two_messages() == []
    duplicates = mail.duplicates + hooks.duplicates
    assert duplicates <= len(RESTARTS) * WORKERS

    record(
        {
            "fault": "postgres_restart",
            "restarts": list(RESTARTS),
            "executions": total,
            "emails_checked": len(mail.ids),
            "webhooks_checked": len(hooks.ids),
            "duplicates": duplicates,
            "lease_s": LEASE_SECONDS,
            "sweep_interval_s": SWEEP_SECONDS,
            "seconds": round(time.monotonic() - began, 1),
            "load": os.getloadavg()[0],
        }
    )
