"""Enrollments that race for one contact in a re-entry workflow: the one
that commits first starts it, whatever either one's size, and one that
rolls back leaves the way free (PostgreSQL, real concurrent transactions)."""

from __future__ import annotations

import threading

import pytest

from app.automation.engine.enrollment import entry_of, start_entries
from app.automation.triggers.bus import emit
from app.extensions import db
from app.models import Workflow
from app.tenancy import firm_context
from tests.factories import make_contact
from tests.triggers.conftest import executions_of

pytestmark = pytest.mark.postgres

FAN_OUT = 100  # more contacts than any per-contact lock table would take


class HeldFanOut(threading.Thread):
    """Starts ``contact_ids`` in one transaction and holds it open until
    told to commit or roll back."""

    def __init__(self, app, firm_id: int, workflow_id: int, contact_ids: list[int]):
        super().__init__(daemon=True)
        self.app, self.firm_id, self.workflow_id = app, firm_id, workflow_id
        self.contact_ids = contact_ids
        self.inserted, self.finish = threading.Event(), threading.Event()
        self.commit = True
        self.started: list[tuple] = []
        self.errors: list[Exception] = []

    def run(self):
        with self.app.app_context(), firm_context(self.firm_id):
            try:
                workflow = db.session.get(Workflow, self.workflow_id)
                entries = [(cid, "fan-out", None) for cid in self.contact_ids]
                self.started = start_entries(workflow, entry_of(workflow), entries)
                self.inserted.set()
                self.finish.wait(10)
                db.session.commit() if self.commit else db.session.rollback()
            except Exception as exc:  # surfaced by the test
                self.errors.append(exc)
                self.inserted.set()
            finally:
                db.session.remove()


class Emit(threading.Thread):
    def __init__(self, app, firm_id: int, contact_id: int):
        super().__init__(daemon=True)
        self.app, self.firm_id, self.contact_id = app, firm_id, contact_id
        self.started: list[int] | None = None
        self.errors: list[Exception] = []

    def run(self):
        with self.app.app_context():
            try:
                self.started = emit(self.firm_id, "email_opened", self.contact_id, event_id="e1")
            except Exception as exc:  # surfaced by the test
                self.errors.append(exc)
            finally:
                db.session.remove()


def _race(app, acme, live_workflow, commit: bool):
    workflow = live_workflow(acme, "email_opened", allow_reentry=True)
    contact_ids = [make_contact(acme).id for _ in range(FAN_OUT)]
    contested = contact_ids[FAN_OUT // 2]
    fan_out = HeldFanOut(app, acme.id, workflow.id, contact_ids)
    fan_out.start()
    assert fan_out.inserted.wait(10) and not fan_out.errors
    assert len(fan_out.started) == FAN_OUT
    event = Emit(app, acme.id, contested)
    event.start()
    event.join(1.0)
    assert event.is_alive(), "the event did not wait for the open fan-out"
    fan_out.commit = commit
    fan_out.finish.set()
    fan_out.join(10)
    event.join(10)
    assert fan_out.errors == [] and event.errors == []
    db.session.expire_all()
    mine = [e for e in executions_of(acme, workflow) if e.contact_id == contested]
    return event.started, mine


def test_an_event_racing_an_open_fan_out_waits_and_does_not_start_the_contact_twice(
    app, acme, live_workflow
):
    started, executions = _race(app, acme, live_workflow, commit=True)
    assert started == []
    assert [e.event_id for e in executions] == ["fan-out"]


def test_an_event_racing_a_fan_out_that_rolls_back_starts_the_contact(app, acme, live_workflow):
    started, executions = _race(app, acme, live_workflow, commit=False)
    assert len(started) == 1
    assert [e.event_id for e in executions] == ["e1"]
