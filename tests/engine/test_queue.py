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
