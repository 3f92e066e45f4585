"""A 3-day wait, with the clock moved and everything restarted in between,
fires once and on time (within one sweeper interval).

The fast test moves the in-process clock (time-machine) and runs sweeps
and ``drain()``. The slow one uses real processes: the app served over
HTTP, ``worker.py`` processes whose clock is moved by a launcher that
starts time-machine before the worker, and a private ``redis-server``
that is restarted (coming back empty) while the execution waits.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import time_machine
from sqlalchemy import select

from app.automation.engine.jobs import drain
from app.automation.engine.sweeper import process_waiting_executions
from app.clock import ensure_utc
from app.extensions import db
from app.models import ContactFlowState, WorkflowExecution
from app.tenancy import firm_context
from tests.engine.helpers import active_workflow, chain, execution, start
from tests.factories import make_contact
from tests.faults.events_support import ROOT, served, stop

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
THREE_DAYS = timedelta(days=3)


def _flow(url: str | None = None):
    after = (
        ("hook", "webhook", {"url": url, "payload": {"who": "{{ contact.email }}"}})
        if url
        else ("after", "add_tag", {"tag": "woken"})
    )
    specs, edges = chain(("wait", "wait_time", {"wait_duration_hours": 72}), after)
    return specs, edges, after[0]


def _states(firm_id: int, execution_id: int, node_id: str) -> list[ContactFlowState]:
    db.session.rollback()
    with firm_context(firm_id):
        stmt = select(ContactFlowState).where(
            ContactFlowState.execution_id == execution_id, ContactFlowState.node_id == node_id
        )
        return list(db.session.scalars(stmt))


def test_a_three_day_wait_fires_once_when_the_clock_reaches_it(acme, alice):
    specs, edges, after = _flow()
    workflow = active_workflow(acme, alice, specs, edges)
    with time_machine.travel(T0, tick=False) as clock:
        [execution_id] = start(workflow, make_contact(acme))
        drain()
        waiting = execution(acme.id, execution_id)
        assert waiting.status == "waiting"
        assert ensure_utc(waiting.wake_at) == T0 + THREE_DAYS
        clock.move_to(T0 + THREE_DAYS - timedelta(seconds=1))
        process_waiting_executions()
        drain()
        assert execution(acme.id, execution_id).status == "waiting"
        assert _states(acme.id, execution_id, after) == []
        clock.move_to(T0 + THREE_DAYS)
        for _ in range(3):  # more sweeps change nothing
            process_waiting_executions()
            drain()
        done = execution(acme.id, execution_id)
        assert done.status == "completed", done.last_error
        [state] = _states(acme.id, execution_id, after)
        assert ensure_utc(state.entered_at) == T0 + THREE_DAYS
        clock.move_to(T0 + 2 * THREE_DAYS)
        process_waiting_executions()
        drain()
    assert len(_states(acme.id, execution_id, after)) == 1
    assert execution(acme.id, execution_id).execution_path == ["wait", after]


# --- real processes -------------------------------------------------------

# The worker with its clock moved by ``offset`` seconds: time-machine starts
# travelling (ticking) before worker.py imports anything.
LAUNCHER = """
import datetime, runpy, sys, time_machine
offset = float(sys.argv[1])
when = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=offset)
time_machine.travel(when, tick=True).start()
sys.argv = ["worker.py"]
runpy.run_path("worker.py", run_name="__main__")
"""
SWEEP = 2.0
ENGINE_PICKUP = 1.5


def _worker(faults, offset: float, log) -> subprocess.Popen:
    env = {**faults.workers.env, "SWEEP_INTERVAL_SECONDS": str(SWEEP)}
    return subprocess.Popen(
        [sys.executable, "-c", LAUNCHER, str(offset)],
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=log,
    )


def _until(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        db.session.rollback()
        if predicate():
            return True
        time.sleep(0.1)
    return False


def _fresh_app(faults):
    """A new web process, as after a restart: a new app on the same servers."""
    from app import create_app

    return create_app({**faults.app.config, "TESTING": True})


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.redis
def test_a_three_day_wait_survives_restarts_and_a_moved_clock(faults, tmp_path):
    from app.clock import now
    from tests.factories import make_user

    started = time.perf_counter()
    log = open(tmp_path / "long-wait-workers.log", "ab")  # noqa: SIM115
    firm, user = faults.firm, faults.user
    specs, edges, after = _flow(faults.hooks.url + "/woken")
    workflow = active_workflow(firm, user, specs, edges)
    contact = make_contact(firm)
    procs: list[subprocess.Popen] = []
    try:
        # Day 0: web + worker on the real clock; the contact starts waiting.
        procs.append(_worker(faults, 0, log))
        with served(_fresh_app(faults)) as base:
            token = _token(make_user, firm)
            [execution_id] = start(workflow, contact)
            assert _until(lambda: _status(firm.id, execution_id) == "waiting", 60)
            wake_at = ensure_utc(execution(firm.id, execution_id).wake_at)
            assert wake_at - now() > THREE_DAYS - timedelta(minutes=1)
        # Everything goes down; Redis comes back empty.
        stop(procs.pop())
        faults.redis.restart(down_for=0.5)

        # Day 3, 30 s before the wake-up: web and worker on the moved clock.
        offset = (wake_at - now()).total_seconds() - 30
        with time_machine.travel(now() + timedelta(seconds=offset), tick=True):
            procs.append(_worker(faults, offset, log))
            with served(_fresh_app(faults)) as base:
                shown = httpx.get(
                    f"{base}/api/v1/automation/executions/{execution_id}/",
                    headers=token,
                    trust_env=False,
                ).json()
                assert shown["status"] == "waiting", shown
            # Another restart of worker and Redis while it still waits.
            time.sleep(5)
            stop(procs.pop())
            faults.redis.restart(down_for=0.5)
            procs.append(_worker(faults, offset, log))
            assert _until(lambda: now() >= wake_at - timedelta(seconds=1), 60)
            assert _status(firm.id, execution_id) == "waiting"
            assert faults.hooks.requests == []
            assert _until(lambda: _status(firm.id, execution_id) == "completed", 60), (
                _status(firm.id, execution_id),
                (tmp_path / "long-wait-workers.log").read_text()[-3000:],
            )
            [state] = _states(firm.id, execution_id, after)
            lateness = (ensure_utc(state.entered_at) - wake_at).total_seconds()
            # Done: one more restart of everything, and several sweeps.
            stop(procs.pop())
            faults.redis.restart(down_for=0.5)
            procs.append(_worker(faults, offset, log))
            time.sleep(4 * SWEEP + 3)
    finally:
        for proc in procs:
            stop(proc)
        log.close()
    assert len(_states(firm.id, execution_id, after)) == 1
    assert len(faults.hooks.requests) == 1
    assert execution(firm.id, execution_id).execution_path == ["wait", after]
    # Due waits are found by the sweep (every SWEEP s); the engine job it
    # kicks then takes the step, which on this loaded 2-core box can add up
    # to about a second.
    assert 0 <= lateness <= SWEEP + ENGINE_PICKUP, lateness
    print(
        f"\n[3-day wait] restarts: web 2, worker 4, redis 3; fired: 1 "
        f"({len(faults.hooks.requests)} webhook), lateness {lateness:.2f}s "
        f"(sweep {SWEEP}s), duplicates: 0, {time.perf_counter() - started:.1f}s"
    )


def _status(firm_id: int, execution_id: int) -> str:
    with firm_context(firm_id):
        return db.session.scalar(
            select(WorkflowExecution.status).where(WorkflowExecution.id == execution_id)
        )


def _token(make_user, firm) -> dict:
    from app.models import ApiToken

    user = make_user(firm, "api@acme.test", role="admin")
    with firm_context(firm.id):
        _, raw = ApiToken.issue(user, name="long-wait")
        db.session.commit()
    return {"Authorization": f"Bearer {raw}"}
