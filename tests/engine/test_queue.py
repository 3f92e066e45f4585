"""The job plumbing: the in-process runner and scheduler, RQ queues, the
sweep command."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from app import queue
from app.automation.engine.sweeper import process_waiting_executions
from tests.engine.helpers import active_workflow, chain, execution, run, start
from tests.factories import make_contact

NODES = (("tag", "add_tag", {"tag": "x"}),)


def _wait_until(predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_without_redis_a_kick_runs_the_engine_in_a_background_thread(app, acme, alice, monkeypatch):
    if app.config.get("REDIS_URL"):
        pytest.skip("inline mode only")
    monkeypatch.setitem(app.config, "INLINE_RUNNER", True)
    specs, edges = chain(*NODES)
    workflow = active_workflow(acme, alice, specs, edges)
    (execution_id,) = start(workflow, make_contact(acme))  # enroll kicks
    assert _wait_until(lambda: execution(acme.id, execution_id).status == "completed")


def test_the_inline_scheduler_tick_runs_the_due_sweep(app, acme, alice):
    specs, edges = chain(("wait", "wait_time", {"wait_duration_seconds": 30}), *NODES)
    workflow = active_workflow(acme, alice, specs, edges)
    t0 = datetime(2026, 7, 1, tzinfo=UTC)
    with time_machine.travel(t0, tick=False) as clock:
        waiting = run(workflow, make_contact(acme))
        clock.shift(timedelta(seconds=31))
        next_run: dict[str, float] = {}
        queue.tick(app, next_run)  # runs the sweep: the wait becomes ready
        assert "sweep" in next_run
        from app.automation.engine.jobs import drain

        drain()
    assert execution(acme.id, waiting.id).status == "completed"


def test_the_sweep_reports_ready_work(acme, alice):
    specs, edges = chain(*NODES)
    workflow = active_workflow(acme, alice, specs, edges)
    start(workflow, make_contact(acme), make_contact(acme))
    result = process_waiting_executions()
    assert result["ready"] == 2


def test_process_waiting_command(runner, acme, alice):
    result = runner.invoke(args=["process-waiting"])
    assert result.exit_code == 0, result.output
    assert "processed" in result.output


@pytest.mark.redis
def test_with_redis_kicks_go_to_named_queues_once(app, acme, alice):
    from rq import Queue

    connection = queue.redis_connection()
    engine_queue = Queue(queue.queue_name("engine"), connection=connection)
    queue.kick_engine()
    queue.kick_engine()  # coalesced while the first waits
    assert engine_queue.count == 1
    assert engine_queue.jobs[0].func_name == "app.automation.engine.jobs.run_engine_job"
    queue.enqueue(process_waiting_executions, queue="default")
    assert Queue(queue.queue_name("default"), connection=connection).count == 1
    with pytest.raises(ValueError):
        queue.enqueue(process_waiting_executions, queue="nope")


@pytest.mark.redis
def test_a_small_batch_lingers_and_the_kicks_meanwhile_share_its_job(app, acme, alice, monkeypatch):
    """A trickle: the job that advanced one execution waits ENGINE_LINGER_MS
    holding the kick marker; an execution started meanwhile enqueues no job
    of its own and is advanced by the same job; the job stops at the first
    claim that finds nothing and leaves the marker clear."""
    from rq import Queue

    from app.automation.engine import jobs

    monkeypatch.setitem(app.config, "ENGINE_LINGER_MS", 15)
    engine_queue = Queue(queue.queue_name("engine"), connection=queue.redis_connection())
    specs, edges = chain(*NODES)
    workflow = active_workflow(acme, alice, specs, edges)
    (first,) = start(workflow, make_contact(acme))
    engine_queue.empty()
    later: list[int] = []
    lingers: list[float] = []

    def sleep(seconds):
        lingers.append(seconds)
        if not later:
            later.extend(start(workflow, make_contact(acme)))  # kicks while the job lingers

    monkeypatch.setattr(jobs.time, "sleep", sleep)
    totals = jobs.run_engine_job()
    assert totals["executions"] == 2
    assert lingers == [0.015, 0.015]  # after each non-empty small batch, then an empty claim
    assert engine_queue.count == 0  # the second start's kick was absorbed
    assert execution(acme.id, first).status == "completed"
    assert execution(acme.id, later[0]).status == "completed"
    queue.kick_engine()  # the marker was cleared: a kick enqueues again
    assert engine_queue.count == 1


@pytest.mark.redis
def test_a_job_does_not_linger_when_a_kick_already_queued_another(app, acme, alice, monkeypatch):
    from app.automation.engine import jobs

    monkeypatch.setitem(app.config, "ENGINE_LINGER_MS", 15)
    specs, edges = chain(*NODES)
    workflow = active_workflow(acme, alice, specs, edges)
    start(workflow, make_contact(acme))
    original = jobs.advance_ready_batch

    def advance(limit=None, owner=None):
        result = original(limit, owner)
        queue.kick_engine()  # a call arrives during the batch: its job is queued
        return result

    monkeypatch.setattr(jobs, "advance_ready_batch", advance)
    monkeypatch.setattr(jobs.time, "sleep", lambda seconds: pytest.fail("lingered"))
    assert jobs.run_engine_job()["executions"] == 1


@pytest.mark.redis
def test_a_held_kick_marker_expires_soon_so_a_dead_lingerer_delays_little(app):
    from rq import Queue

    engine_queue = Queue(queue.queue_name("engine"), connection=queue.redis_connection())
    assert queue.hold_kick("engine", 0.2)
    assert not queue.hold_kick("engine", 0.2)
    queue.kick_engine()
    assert engine_queue.count == 0  # absorbed while held
    time.sleep(0.3)  # the holder died: the marker is gone on its own
    queue.kick_engine()
    assert engine_queue.count == 1
