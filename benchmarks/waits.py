"""Waits: 1,000,000 executions due at once, and single waits due at 1/s.

The workflows are a wait (wait_time for the singles, wait_until for the
wake-all) -> goal.
``--workers`` real ``worker.py`` processes run the engine and the periodic
jobs (the frequent wake job and the sweep), as in production.

1. Lateness: ``--singles`` contacts enrolled one per second into a 5 s
   wait_time, so their waits fall due one per second; lateness = the goal
   step's flow state (its database timestamp) minus the wait's start plus
   5 s. Metric ``wake_lateness_p99_s``.
2. Wake all: ``--contacts`` executions walked to the wait (due a day from
   now; untimed setup), then their moment is moved to ``--lead`` seconds
   ahead (the contacts' field and the executions' ``wake_at``, one UPDATE
   each). ``wake_all_seconds`` = the last goal step's timestamp minus that
   moment. The lead must outlast those UPDATEs (about 3 s per 100,000 on a quiet day;
   1,000,000 took over 48 s while the box was loaded, hence a default of 40 s
   plus 100 s per million):
   rows not yet committed at the moment are not due at it, and the figure
   would count the benchmark's own setup; the run fails if it does not.

Needs DATABASE_URL (PostgreSQL; a fresh database, dropped afterwards) and
REDIS_URL (a private queue prefix, cleaned). Prints figures last as JSON.
The wake-all phase's CPU per execution by process kind (workers,
PostgreSQL, Redis) is printed beside it.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres \\
        REDIS_URL=redis://127.0.0.1:6379/0 .venv/bin/python benchmarks/waits.py
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import timedelta

sys.path.insert(0, __file__.rsplit("/", 1)[0])

import harness  # noqa: E402
import services  # noqa: E402

NODES = [("wait", "wait_until", {"field": "custom.wake"}), ("done", "goal", {"goal_value": 1})]
EDGES = [("wait", "done", None)]


def _count(workflow_id: int, **where) -> int:
    from sqlalchemy import func, select

    from app.extensions import db
    from app.models import WorkflowExecution

    table = WorkflowExecution.__table__
    stmt = select(func.count()).where(table.c.workflow_id == workflow_id)
    for column, value in where.items():
        stmt = stmt.where(table.c[column] == value)
    value = db.session.connection().execute(stmt).scalar()
    db.session.rollback()
    return int(value or 0)


def _wait_for(predicate, timeout: float, step: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(step)
    return True


def _workflow(user, contact_ids: list[int]) -> int:
    """An active wait_until -> goal workflow with ``contact_ids`` enrolled."""
    from app.automation.engine.enrollment import enroll

    workflow = harness.build_workflow(user, NODES, EDGES, "manual")
    enroll(workflow, contact_ids, trigger_type="manual")
    return workflow.id


def _goals(workflow_id: int) -> int:
    from sqlalchemy import func, select

    from app.extensions import db
    from app.models import ContactFlowState

    table = ContactFlowState.__table__
    stmt = select(func.count()).where(table.c.workflow_id == workflow_id, table.c.node_id == "done")
    value = db.session.connection().execute(stmt).scalar()
    db.session.rollback()
    return int(value or 0)


def _goal_moments(workflow_id: int) -> dict[int, float]:
    """Execution id -> epoch seconds its goal step was recorded."""
    from sqlalchemy import func, select

    from app.extensions import db
    from app.models import ContactFlowState

    table = ContactFlowState.__table__
    stmt = select(table.c.execution_id, func.coalesce(table.c.exited_at, table.c.entered_at)).where(
        table.c.workflow_id == workflow_id, table.c.node_id == "done"
    )
    found = {eid: moment.timestamp() for eid, moment in db.session.connection().execute(stmt)}
    db.session.rollback()
    return found


SINGLE_WAIT_SECONDS = 5.0
SINGLE_NODES = [
    ("wait", "wait_time", {"wait_duration_seconds": SINGLE_WAIT_SECONDS}),
    ("done", "goal", {"goal_value": 1}),
]


def _lateness(firm_id: int, user, singles: int) -> list[float]:
    """Single waits due at 1/s (one contact enrolled a second into a
    ``SINGLE_WAIT_SECONDS`` wait_time); returns each one's lateness in
    seconds: its goal step minus the moment its wait began plus the wait.
    (A wait_until on a contact's field waits for the field's day at
    ``at``, 09:00 by default, so it cannot make a wait due in seconds.)"""
    from sqlalchemy import select

    from app.automation.engine.enrollment import enroll
    from app.extensions import db
    from app.models import ContactFlowState
    from app.tenancy import firm_context

    ids = harness.insert_contacts(firm_id, singles, prefix="single")
    with firm_context(firm_id):
        workflow = harness.build_workflow(user, SINGLE_NODES, EDGES, "manual")
        workflow_id = workflow.id
        for contact_id in ids:
            enroll(workflow, [contact_id], trigger_type="manual")
            db.session.commit()
            time.sleep(1.0)
    _wait_for(lambda: len(_goal_moments(workflow_id)) == singles, SINGLE_WAIT_SECONDS + 30)
    table = ContactFlowState.__table__
    began = {
        eid: entered.timestamp()
        for eid, entered in db.session.execute(
            select(table.c.execution_id, table.c.entered_at).where(
                table.c.workflow_id == workflow_id, table.c.node_id == "wait"
            )
        )
    }
    db.session.rollback()
    return [
        moment - (began[eid] + SINGLE_WAIT_SECONDS)
        for eid, moment in _goal_moments(workflow_id).items()
        if eid in began
    ]


def _wake_all(
    firm_id: int, user, count: int, timeout: float, lead: float, meter
) -> tuple[float, int, float, dict[str, float]]:
    """(seconds from the common due moment to the last goal step, how many
    made it, seconds the setup walk took, CPU seconds by process kind from
    the due moment's setting to the last goal step)."""
    from sqlalchemy import func, update

    from app.clock import now
    from app.extensions import db
    from app.models import Contact, WorkflowExecution
    from app.tenancy import firm_context

    later = (now() + timedelta(days=1)).isoformat()
    ids = harness.insert_contacts(firm_id, count, custom_fields=lambda i: {"wake": later})
    harness.analyze()
    walk = time.monotonic()
    with firm_context(firm_id):
        workflow_id = _workflow(user, ids)
    # Every execution leaves "running" once, for its wait (a probe, not a
    # count of up to a million rows at every poll).
    walking = harness.StatusProbe(workflow_id, "running")
    _wait_for(lambda: not walking.any(), timeout, 0.5)
    if _count(workflow_id, status="waiting") != count:
        statuses = {s: _count(workflow_id, status=s) for s in ("running", "waiting", "failed")}
        raise SystemExit(f"the executions did not all reach their wait: {statuses}")
    walk = time.monotonic() - walk
    harness.analyze()
    moment = now() + timedelta(seconds=lead)
    contacts, executions = Contact.__table__, WorkflowExecution.__table__
    meter.start()
    db.session.execute(
        update(contacts)
        .where(contacts.c.id.between(min(ids), max(ids)))
        .values(custom_fields=func.jsonb_build_object("wake", moment.isoformat()))
    )
    db.session.execute(
        update(executions)
        .where(executions.c.workflow_id == workflow_id, executions.c.status == "waiting")
        .values(wake_at=moment)
    )
    db.session.commit()
    late = (now() - moment).total_seconds()
    if late > 0:
        raise SystemExit(f"the setup committed {late:.2f}s after the due moment: raise --lead")
    # Woken waits walk on to the goal and complete: none left waiting, then
    # none running (an execution never goes back).
    waiting = harness.StatusProbe(workflow_id, "waiting")
    running = harness.StatusProbe(workflow_id, "running")
    _wait_for(
        lambda: not waiting.any() and not running.any(),
        timeout,
        0.25,
    )
    cpu = meter.stop()
    done = _goals(workflow_id) == count
    moments = _goal_moments(workflow_id)
    last = max(moments.values()) if moments else float("nan")
    if not done:
        print(f"# warning: {len(moments)}/{count} past the wait after {timeout}s")
    return last - moment.timestamp(), len(moments), walk, cpu


def main() -> int:
    parser = argparse.ArgumentParser(description="Waits falling due")
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--singles", type=int, default=30, help="single waits, one per second")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument(
        "--lead",
        type=float,
        default=None,
        help="seconds from the setup's start to the due moment (default: 40 + 100 per million)",
    )
    args = parser.parse_args()
    lead = args.lead if args.lead is not None else 40.0 + args.contacts * 100e-6
    with harness.service_run("waits") as run:
        firm, user = harness.firm_and_user()
        workers = harness.start_workers(args.workers, run.env, run.connection)
        run.procs += workers
        load_lateness = harness.load()
        lateness = _lateness(firm.id, user, args.singles)
        load_setup = harness.load()
        meter = services.CpuMeter(
            [], workers, run.app.config["SQLALCHEMY_DATABASE_URI"], run.connection
        )
        wake_all, woken, walk, cpu = _wake_all(
            firm.id, user, args.contacts, args.timeout, lead, meter
        )
        load_after = harness.load()
    print(
        f"# lateness s over {len(lateness)}/{args.singles} singles: "
        f"min {min(lateness):.3f} p50 {harness.percentile(lateness, 50):.3f} "
        f"max {max(lateness):.3f}; {load_lateness}"
    )
    print(
        f"# wake all: {woken}/{args.contacts} past the wait {wake_all:.2f}s after the due moment "
        f"(setup walk to the wait {walk:.1f}s); {args.workers} workers; "
        f"before: {load_setup}; after: {load_after}"
    )
    cpu.pop("web")
    print(f"# wake all: {services.cpu_line(cpu, args.contacts)}")
    harness.print_figures(
        "waits",
        [
            ("wake_all_seconds", wake_all, "s"),
            ("wake_lateness_p99_s", harness.percentile(lateness, 99), "s"),
            *services.cpu_figures("wake_all_", cpu, args.contacts),
        ],
    )
    return 0 if woken == args.contacts and len(lateness) == args.singles else 1


if __name__ == "__main__":
    raise SystemExit(main())
