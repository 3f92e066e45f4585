"""A real worker process under its address-space cap (worker.py,
``WORKER_MEMORY_LIMIT_MB``, 4096 by default) renders a step whose template
allocates 10 GB in one C call the sandbox's weight checks never see (a
test-only filter, tests/security/hogs.py): the step fails with "template
used too much memory to render", nothing is sent for it, and the same
worker goes on to send the next message (docs/SENDING.md "Template
limits")."""

from __future__ import annotations

import pytest
from redis import Redis
from sqlalchemy import select

from app.extensions import db
from app.models import OutboxMessage, WorkflowExecution
from tests.engine.helpers import active_workflow, start
from tests.factories import make_contact
from tests.faults.checks import settle
from tests.faults.procs import wait_until

pytestmark = [pytest.mark.slow]


def _mail(faults, body: str):
    nodes = [
        {
            "node_id": "mail",
            "node_type": "send_email",
            "configuration": {"subject": "Hi", "body_html": body},
        }
    ]
    return active_workflow(faults.firm, faults.user, nodes, [])


def _execution(execution_id: int) -> WorkflowExecution:
    stmt = select(WorkflowExecution).where(WorkflowExecution.id == execution_id)
    return db.session.scalars(stmt.execution_options(all_firms=True)).one()


def test_a_worker_fails_the_step_and_serves_on(faults):
    redis = Redis.from_url(faults.redis.url())
    [proc] = faults.workers.spawn_command(["-m", "tests.faults.hog_worker"])
    assert wait_until(lambda: faults.workers.serving(redis), 60), faults.workers.log_tail()
    contact = make_contact(faults.firm, email="ada@example.com")

    bomb = start(_mail(faults, "<p>{{ 1|hog_lazy }}</p>"), contact)[0]
    assert settle(lambda: _execution(bomb).status == "failed", 60), faults.workers.log_tail()
    failed = _execution(bomb)
    assert failed.last_error and "too much memory to render" in failed.last_error
    outbox = select(OutboxMessage).where(OutboxMessage.execution_id == bomb)
    assert db.session.scalars(outbox.execution_options(all_firms=True)).all() == []

    fine = start(_mail(faults, "<p>Hello {{ contact.email }}</p>"), contact)[0]
    assert wait_until(lambda: len(faults.smtp.messages) == 1, 60), faults.workers.log_tail()
    assert "ada@example.com" in faults.smtp.messages[0].get_body().get_content()
    assert settle(lambda: _execution(fine).status == "completed", 30)
    assert proc.poll() is None, faults.workers.log_tail()  # the same worker, still serving
    assert "Traceback" not in faults.workers.log_tail(), faults.workers.log_tail()
