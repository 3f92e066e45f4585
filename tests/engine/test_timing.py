"""Waits end on time (the frequent wake job) and enrollment is set-based:
the same keys, tenancy and audit entries whichever path inserts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import time_machine
from sqlalchemy import select

from app import queue
from app.automation.engine import sweeper
from app.automation.engine.batch import run_batch
from app.automation.engine.claim import claim_ready, new_owner
from app.automation.engine.enrollment import enroll, entry_of, start_entries
from app.automation.engine.jobs import drain
from app.automation.engine.sweeper import wake_due
from app.extensions import db
from app.models import AuditLog, WorkflowExecution
from app.models.execution import idempotency_key_for
from app.tenancy import firm_context
from tests.engine.helpers import active_workflow, chain, execution, run, start
from tests.factories import make_contact

T0 = datetime(2026, 7, 1, tzinfo=UTC)
TAG = (("tag", "add_tag", {"tag": "x"}),)


def _waiting_for(seconds: int, acme, alice):
    specs, edges = chain(("wait", "wait_time", {"wait_duration_seconds": seconds}), *TAG)
    return active_workflow(acme, alice, specs, edges)


def test_the_wake_job_kicks_the_engine_only_when_a_wait_is_due(acme, alice, monkeypatch):
    kicks = []
    monkeypatch.setattr(sweeper, "kick_engine", lambda: kicks.append(1))
    short, long = _waiting_for(10, acme, alice), _waiting_for(60, acme, alice)
    with time_machine.travel(T0, tick=False) as clock:
        soon, later = run(short, make_contact(acme)), run(long, make_contact(acme))
        clock.shift(timedelta(seconds=9))
        kicks.clear()  # enrolling kicked
        assert wake_due() == 0
        assert kicks == []
        clock.shift(timedelta(seconds=2))
        assert wake_due() == 1
        assert kicks == [1]
        drain()
    assert execution(acme.id, soon.id).status == "completed"
    assert execution(acme.id, later.id).status == "waiting"


def test_a_claim_takes_a_due_wait_as_it_is_and_leaves_the_rest(acme, alice):
    short, long = _waiting_for(10, acme, alice), _waiting_for(60, acme, alice)
    with time_machine.travel(T0, tick=False) as clock:
        soon, later = run(short, make_contact(acme)), run(long, make_contact(acme))
        clock.shift(timedelta(seconds=11))
        owner = new_owner()
        [row] = claim_ready(10, owner)
        assert (row["id"], row["status"], row["wait_reason"]) == (soon.id, "waiting", "time")
        assert claim_ready(10, new_owner()) == []  # leased: no second worker takes it
        leased = execution(acme.id, soon.id)
        assert (leased.status, leased.lease_owner) == ("waiting", owner)
        run_batch([row], owner)
    done = execution(acme.id, soon.id)
    assert (done.status, done.execution_path, done.lease_owner) == (
        "completed",
        ["wait", "tag"],
        None,
    )
    assert execution(acme.id, later.id).status == "waiting"


def test_a_claim_shares_its_batch_between_running_executions_and_due_waits(acme, alice):
    waits, tags = _waiting_for(10, acme, alice), active_workflow(acme, alice, *chain(*TAG))
    with time_machine.travel(T0, tick=False) as clock:
        due = set(start(waits, *(make_contact(acme) for _ in range(3))))
        drain()
        clock.shift(timedelta(seconds=11))
        fresh = set(start(tags, *(make_contact(acme) for _ in range(6))))

        def claimed(limit: int) -> tuple[int, int]:
            ids = {row["id"] for row in claim_ready(limit, new_owner())}
            return len(ids & fresh), len(ids & due)

        assert claimed(4) == (2, 2)  # half each
        assert claimed(4) == (3, 1)  # the last due wait; running rows fill in
        assert claimed(4) == (1, 0)


def test_a_due_wait_whose_lease_expired_is_claimed_again(acme, alice, app):
    workflow = _waiting_for(10, acme, alice)
    with time_machine.travel(T0, tick=False) as clock:
        waiting = run(workflow, make_contact(acme))
        clock.shift(timedelta(seconds=11))
        stale = new_owner()
        assert len(claim_ready(10, stale)) == 1
        clock.shift(timedelta(seconds=app.config["ENGINE_LEASE_SECONDS"] + 1))
        assert wake_due() == 1
        [row] = claim_ready(10, new_owner())
    assert row["id"] == waiting.id


def test_the_wake_job_is_periodic_on_its_own_short_interval(app):
    wake = next(job for job in queue.PERIODIC_JOBS if job["name"] == "wake")
    assert wake["func"] is wake_due
    assert queue.periodic_interval(wake, app) < queue.periodic_interval(
        next(job for job in queue.PERIODIC_JOBS if job["name"] == "sweep"), app
    )


def test_a_tick_limited_to_some_jobs_runs_only_those(app, acme, alice):
    workflow = _waiting_for(10, acme, alice)
    with time_machine.travel(T0, tick=False) as clock:
        waiting = run(workflow, make_contact(acme))
        clock.shift(timedelta(seconds=11))
        next_run: dict[str, float] = {}
        wake = [job for job in queue.PERIODIC_JOBS if job["name"] == "wake"]
        queue.tick(app, next_run, jobs=wake)
        assert set(next_run) == {"wake"}
        drain()
    assert execution(acme.id, waiting.id).status == "completed"


def _executions(firm_id: int, workflow_id: int) -> list[WorkflowExecution]:
    with firm_context(firm_id):
        stmt = select(WorkflowExecution).where(WorkflowExecution.workflow_id == workflow_id)
        return list(db.session.scalars(stmt.order_by(WorkflowExecution.contact_id)))


def test_enrollment_keys_are_the_documented_hash_without_and_with_reentry(acme, alice):
    specs, edges = chain(*TAG)
    once = active_workflow(acme, alice, specs, edges)
    again = active_workflow(acme, alice, specs, edges, allow_reentry=True)
    contact = make_contact(acme)
    with firm_context(acme.id):
        enroll(once, [contact.id], event_id="e1")
        enroll(again, [contact.id], event_id="e1")
    (first,) = _executions(acme.id, once.id)
    (second,) = _executions(acme.id, again.id)
    assert first.idempotency_key == idempotency_key_for(once.id, contact.id, None, "once")
    assert second.idempotency_key == idempotency_key_for(again.id, contact.id, None, "e1")


def test_enrollment_skips_another_firms_contacts(acme, globex, alice):
    specs, edges = chain(*TAG)
    workflow = active_workflow(acme, alice, specs, edges)
    ours, theirs = make_contact(acme), make_contact(globex)
    with firm_context(acme.id):
        started = enroll(workflow, [ours.id, theirs.id])
    assert len(started) == 1
    assert [e.contact_id for e in _executions(acme.id, workflow.id)] == [ours.id]


def test_entries_keep_each_events_context_and_the_first_entry_per_contact_wins(acme, alice):
    specs, edges = chain(*TAG)
    workflow = active_workflow(acme, alice, specs, edges, allow_reentry=True)
    a, b = make_contact(acme), make_contact(acme)
    entries = [(a.id, "ev-a", {"n": 1}), (b.id, "ev-b", {"n": 2}), (a.id, "ev-a2", {"n": 3})]
    with firm_context(acme.id):
        started = start_entries(workflow, entry_of(workflow), entries, trigger_type="api")
        db.session.commit()
    assert sorted((cid, event) for _, cid, event in started) == [(a.id, "ev-a"), (b.id, "ev-b")]
    rows = {e.contact_id: e for e in _executions(acme.id, workflow.id)}
    assert (rows[a.id].event_id, rows[a.id].context_data) == ("ev-a", {"n": 1})
    assert (rows[b.id].event_id, rows[b.id].context_data) == ("ev-b", {"n": 2})


def test_audit_many_writes_one_entry_per_contact(acme, alice):
    from app.automation.triggers.bus import audit_many

    specs, edges = chain(*TAG)
    workflow = active_workflow(acme, alice, specs, edges)
    contacts = [make_contact(acme) for _ in range(3)]
    with firm_context(acme.id):
        audit_many(workflow, None, [c.id for c in contacts], "evt-1", "scheduler")
        db.session.commit()
        entries = db.session.scalars(
            select(AuditLog).where(AuditLog.action == "trigger.fired").order_by(AuditLog.id)
        ).all()
    assert [e.data["contact_id"] for e in entries] == [c.id for c in contacts]
    assert {(e.data["event_id"], e.data["source"], e.object_id) for e in entries} == {
        ("evt-1", "scheduler", str(workflow.id))
    }
