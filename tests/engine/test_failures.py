"""Retries with backoff, dead letters, retry, cancel, lease fencing, the
runaway guard and test runs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from sqlalchemy import select

from app.automation.engine import test_runs
from app.automation.engine.batch import run_batch
from app.automation.engine.claim import claim_ready, new_owner
from app.automation.engine.jobs import drain
from app.automation.engine.operator import cancel_execution, retry_execution
from app.automation.nodes.registry import get_node_type
from app.extensions import db
from app.models import ContactFlowState, DeadLetter, OutboxMessage, Tag
from app.tenancy import firm_context
from tests.engine.helpers import active_workflow, chain, execution, flow_states, run, start
from tests.factories import make_contact

T0 = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)


@pytest.fixture
def flaky_add_tag(monkeypatch):
    """add_tag raises for its first ``failures[0]`` calls (fault injection)."""
    kind = get_node_type("add_tag")
    original = kind.execute
    failures = [0]

    def flaky(step):
        if failures[0] > 0:
            failures[0] -= 1
            raise ConnectionError("CRM is down")
        return original(step)

    monkeypatch.setattr(kind, "execute", staticmethod(flaky))
    return failures


def _tagging(acme, alice, **config):
    nodes, edges = chain(
        ("tag", "add_tag", {"tag": "vip", **config}), ("after", "add_tag", {"tag": "done"})
    )
    return active_workflow(acme, alice, nodes, edges)


def test_a_failing_action_is_retried_with_doubling_backoff(acme, alice, flaky_add_tag):
    flaky_add_tag[0] = 2
    workflow = _tagging(acme, alice, max_attempts=3, retry_backoff_seconds=10)
    with time_machine.travel(T0, tick=False) as clock:
        first = run(workflow, make_contact(acme))
        assert (first.status, first.wait_reason, first.attempts) == ("waiting", "retry", 1)
        assert first.wake_at == T0 + timedelta(seconds=10)
        assert "CRM is down" in first.last_error
        clock.shift(timedelta(seconds=10))
        drain()
        second = execution(acme.id, first.id)
        assert second.wake_at == T0 + timedelta(seconds=30)
        clock.shift(timedelta(seconds=20))
        drain()
    done = execution(acme.id, first.id)
    assert done.status == "completed"
    states = flow_states(acme.id, done.id)
    assert [(s.node_id, s.visit, s.action_status) for s in states] == [
        ("tag", 1, "success"),
        ("after", 1, "success"),
    ]


def test_an_action_failing_every_attempt_fails_the_execution_with_a_dead_letter(
    acme, alice, flaky_add_tag
):
    flaky_add_tag[0] = 5
    workflow = _tagging(acme, alice, max_attempts=2, retry_backoff_seconds=1)
    with time_machine.travel(T0, tick=False) as clock:
        failed = run(workflow, make_contact(acme))
        clock.shift(timedelta(seconds=1))
        drain()
    failed = execution(acme.id, failed.id)
    assert failed.status == "failed"
    assert failed.current_node == "tag"
    with firm_context(acme.id):
        dead = db.session.scalars(select(DeadLetter)).one()
    assert (dead.execution_id, dead.node_id, dead.attempts) == (failed.id, "tag", 2)
    assert "CRM is down" in dead.error


def test_retry_resumes_a_failed_execution_at_its_failed_node(acme, alice, flaky_add_tag):
    flaky_add_tag[0] = 1
    workflow = _tagging(acme, alice, max_attempts=1)
    failed = run(workflow, make_contact(acme))
    assert failed.status == "failed"
    with firm_context(acme.id):
        assert retry_execution(failed) is True
        assert retry_execution(failed) is False  # not failed any more
    drain()
    done = execution(acme.id, failed.id)
    assert done.status == "completed"
    assert done.execution_path == ["tag", "after"]
    states = flow_states(acme.id, done.id)
    assert [(s.node_id, s.action_status) for s in states] == [
        ("tag", "success"),
        ("after", "success"),
    ]
    with firm_context(acme.id):
        assert db.session.scalars(select(DeadLetter)).one().resolved_at is not None


def test_a_canceled_execution_never_takes_another_step(acme, alice):
    workflow = _tagging(acme, alice)
    (execution_id,) = start(workflow, make_contact(acme))
    with firm_context(acme.id):
        assert cancel_execution(execution(acme.id, execution_id)) is True
    drain()
    assert execution(acme.id, execution_id).status == "canceled"
    assert flow_states(acme.id, execution_id) == []


def test_a_cancel_while_a_batch_runs_wins_over_the_write_back(acme, alice):
    workflow = _tagging(acme, alice)
    (execution_id,) = start(workflow, make_contact(acme))
    owner = new_owner()
    rows = claim_ready(10, owner)
    with firm_context(acme.id):
        cancel_execution(execution(acme.id, execution_id))
    run_batch(rows, owner)
    assert execution(acme.id, execution_id).status == "canceled"
    assert flow_states(acme.id, execution_id) == []
    with firm_context(acme.id):
        assert db.session.scalars(select(Tag)).all() == []


def test_a_worker_that_lost_its_lease_writes_nothing(acme, alice, app):
    workflow = _tagging(acme, alice)
    (execution_id,) = start(workflow, make_contact(acme))
    slow, fast = new_owner(), new_owner()
    with time_machine.travel(T0, tick=False) as clock:
        stale_rows = claim_ready(10, slow)
        clock.shift(timedelta(seconds=app.config["ENGINE_LEASE_SECONDS"] + 1))
        fresh_rows = claim_ready(10, fast)
        assert [r["id"] for r in fresh_rows] == [execution_id]
        run_batch(fresh_rows, fast)
        run_batch(stale_rows, slow)  # woke up late: fenced off
    states = flow_states(acme.id, execution_id)
    assert [(s.node_id, s.visit) for s in states] == [("tag", 1), ("after", 1)]
    assert execution(acme.id, execution_id).status == "completed"


def test_the_runaway_guard_stops_long_walks(acme, alice, app, monkeypatch):
    monkeypatch.setitem(app.config, "ENGINE_MAX_STEPS_WITHOUT_WAIT", 3)
    nodes, edges = chain(*[(f"n{i}", "add_tag", {"tag": f"t{i}"}) for i in range(5)])
    workflow = active_workflow(acme, alice, nodes, edges)
    stopped = run(workflow, make_contact(acme))
    assert stopped.status == "failed"
    assert "3 steps without a wait" in stopped.last_error
    assert len(flow_states(acme.id, stopped.id)) == 3


def test_a_test_run_changes_nothing_and_records_what_it_would_do(acme, alice):
    nodes, edges = chain(
        ("tag", "add_tag", {"tag": "vip"}),
        ("wait", "wait_time", {"wait_duration_hours": 24}),
        ("mail", "send_email", {"subject": "Hi", "body_text": "x"}),
    )
    workflow = active_workflow(acme, alice, nodes, edges)
    contact = make_contact(acme)
    with firm_context(acme.id):
        done = test_runs.test_run(workflow, contact, alice)
        assert done.test_mode is True
        assert done.status == "completed"
        assert db.session.scalars(select(Tag)).all() == []
        assert db.session.scalars(select(OutboxMessage.status)).all() == ["test"]
        states = db.session.scalars(
            select(ContactFlowState)
            .where(ContactFlowState.execution_id == done.id)
            .order_by(ContactFlowState.id)
        ).all()
    assert states[0].action_result == {"test": True, "would": {"add_tag": "vip"}}
    assert "would_wait_until" in states[1].action_result


def test_drain_reports_what_it_did(acme, alice):
    workflow = _tagging(acme, alice)
    start(workflow, *[make_contact(acme) for _ in range(3)])
    totals = drain()
    assert totals["executions"] == 3
    assert totals["steps"] == 6
