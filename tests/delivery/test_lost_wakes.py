"""The sweeper's net for wakes lost between recording a send and waking the
execution (engine/sweeper.py ``wake_finished_deliveries``)."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import text

from app.automation.engine.sweeper import wake_finished_deliveries
from app.extensions import db
from app.models import OutboxMessage, WorkflowExecution
from app.tenancy import firm_context
from tests.conftest import USING_POSTGRES
from tests.delivery.conftest import queue_message

EMAIL = {"subject": "Hi", "body_text": "Hello"}


def _status(firm_id: int, execution_id: int) -> str:
    with firm_context(firm_id):
        db.session.expire_all()
        return db.session.get(WorkflowExecution, execution_id).status


def _set_status(message: OutboxMessage, status: str) -> None:
    with firm_context(message.firm_id):
        row = db.session.get(OutboxMessage, message.id)
        row.status = status
        db.session.commit()


def _queued(firm) -> OutboxMessage:
    message = queue_message(firm, "send_email", EMAIL)
    _set_status(message, "pending")  # as if an SMTP server were configured
    return message


def test_a_wait_on_a_pending_message_stays_and_a_sent_one_is_woken(acme):
    message = _queued(acme)
    assert wake_finished_deliveries(kick=False) == 0
    assert _status(acme.id, message.execution_id) == "waiting"

    _set_status(message, "sent")
    assert wake_finished_deliveries(kick=False) == 1
    assert _status(acme.id, message.execution_id) == "running"


@pytest.mark.skipif(not USING_POSTGRES, reason="row locks are PostgreSQL's")
def test_a_row_an_engine_batch_holds_is_skipped_not_waited_for(app, acme):
    """An engine write-back holding the row must not make the sweep wait on
    it (the unordered UPDATE it replaced waited, and deadlocked with the
    write-back's ordered locks)."""
    held, free = _queued(acme), _queued(acme)
    _set_status(held, "sent")
    _set_status(free, "sent")
    with db.engine.connect() as other:
        other.execute(
            text("SELECT id FROM workflow_executions WHERE id = :id FOR UPDATE"),
            {"id": held.execution_id},
        )
        result: list[int] = []
        sweep = threading.Thread(target=_sweep, args=(app, result), daemon=True)
        sweep.start()
        sweep.join(timeout=10)
        waited = sweep.is_alive()
        other.rollback()
    sweep.join(timeout=10)
    assert not waited, "the sweep waited for a row another transaction holds"
    assert result == [1]
    assert _status(acme.id, free.execution_id) == "running"
    assert _status(acme.id, held.execution_id) == "waiting"
    # Once the holder is gone, the next sweep wakes it.
    assert wake_finished_deliveries(kick=False) == 1
    assert _status(acme.id, held.execution_id) == "running"


def _sweep(app, result: list[int]) -> None:
    with app.app_context():
        result.append(wake_finished_deliveries(kick=False))
