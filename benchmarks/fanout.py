"""Fan-out: one event enrolls 100,000, 400,000 and 1,000,000 contacts.

The event is a ``date_reached`` trigger coming due (every contact of the
firm, no rules): this process runs the trigger the way the sweeper does
(``run_trigger``: contact ids in pages, one set-based INSERT ... SELECT per
5,000 contacts with the idempotency key ``ON CONFLICT DO NOTHING``, a kick
per page), while ``--workers`` real ``worker.py`` processes (scheduler off,
so only this process fires the trigger) advance the executions. The
workflow is add_tag -> wait_time (a day), so the first step is the tag.
``fanout_seconds`` runs from the trigger call to the last first step's
flow state (its database timestamp; one machine, one clock).

``--profile DIR`` records py-spy profiles of the workers and of this
process (the enrollment) per size, and prints their top frames.

``--contacts`` takes a comma-separated series of sizes, each run on a fresh
database; ``fanout_seconds_<n>`` per size and ``fanout_linearity``: the
largest size's seconds per contact over the smallest's (1.0 is linear).

Needs DATABASE_URL (PostgreSQL; a fresh database, dropped afterwards) and
REDIS_URL (a private queue prefix, cleaned). Prints its figures last as
JSON lines.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres \\
        REDIS_URL=redis://127.0.0.1:6379/0 .venv/bin/python benchmarks/fanout.py
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import timedelta

sys.path.insert(0, __file__.rsplit("/", 1)[0])

import harness  # noqa: E402
import services  # noqa: E402

NODES = [("tag", "add_tag", {"tag": "fanout"}), ("later", "wait_time", {"wait_duration_hours": 24})]
EDGES = [("tag", "later", None)]


def _first_steps(workflow_id: int):
    """(count, latest recorded moment) of the first step's flow states."""
    from sqlalchemy import func, select

    from app.extensions import db
    from app.models import ContactFlowState

    table = ContactFlowState.__table__
    stmt = select(
        func.count(), func.max(func.coalesce(table.c.exited_at, table.c.entered_at))
    ).where(table.c.workflow_id == workflow_id, table.c.node_id == NODES[0][0])
    count, latest = db.session.connection().execute(stmt).one()
    db.session.rollback()
    return int(count or 0), latest


def main() -> int:
    parser = argparse.ArgumentParser(description="One event enrolls many contacts")
    parser.add_argument(
        "--contacts", default="100000,400000,1000000", help="sizes, comma-separated"
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument(
        "--profile", default="", help="directory: py-spy of the workers and this process"
    )
    args = parser.parse_args()
    sizes = [int(size) for size in args.contacts.split(",")]
    results = [(size, *_fanout(size, args.workers, args.timeout, args.profile)) for size in sizes]
    figures = [(f"fanout_seconds_{size}", elapsed, "s") for size, elapsed, _, _ in results]
    for size, _, _, cpu in results:
        figures += services.cpu_figures(f"{size}_", cpu, size)
    if len(results) > 1:
        (small, first, _, _), (large, last, _, _) = results[0], results[-1]
        figures.append(("fanout_linearity", (last / large) / (first / small), "ratio"))
    harness.print_figures("fanout", figures)
    return 0 if all(ok for _, _, ok, _ in results) else 1


def _fanout(
    contacts: int, workers: int, timeout: float, profile: str
) -> tuple[float, bool, dict[str, float]]:
    """(seconds from the trigger call to the last first step, all made it,
    CPU seconds by process kind: the enrolling process, the workers,
    PostgreSQL)."""
    from app.automation.triggers.scheduler import run_trigger
    from app.clock import now
    from app.extensions import db
    from app.models import PublishedTrigger
    from app.tenancy import firm_context

    with harness.service_run("fanout") as run:
        firm, user = harness.firm_and_user()
        harness.insert_contacts(firm.id, contacts)
        with firm_context(firm.id):
            workflow = harness.build_workflow(
                user, NODES, EDGES, "date_reached", {"at": now().isoformat()}
            )
            workflow_id = workflow.id
            trigger = db.session.scalars(
                db.select(PublishedTrigger).where(PublishedTrigger.workflow_id == workflow_id)
            ).one()
            trigger_id = trigger.id
        harness.analyze()
        procs = harness.start_workers(workers, run.env, run.connection, "--no-scheduler")
        run.procs += procs
        recorder = None
        if profile:
            import profiles

            targets = {"enroll": os.getpid()}
            targets.update((f"worker{i}", p.pid) for i, p in enumerate(procs))
            recorder = profiles.Recorder(targets, f"{profile}/{contacts}")
        time.sleep(1.0)
        with firm_context(firm.id):
            # Due a second ago; the window opened a minute ago.
            trigger = db.session.get(PublishedTrigger, trigger_id)
            trigger.configuration = {"at": (now() - timedelta(seconds=1)).isoformat()}
            trigger.scheduled_through = now() - timedelta(seconds=60)
            db.session.commit()
            load_before = harness.load()
            meter = services.CpuMeter([], procs, run.app.config["SQLALCHEMY_DATABASE_URI"])
            meter.start()
            started_at = time.time()
            own_cpu = time.process_time()
            enrolled = run_trigger(trigger_id)
            own_cpu = time.process_time() - own_cpu
            enroll_seconds = time.time() - started_at
        deadline = time.monotonic() + timeout
        # Running until the first step (the tag; then it waits).
        running = harness.StatusProbe(workflow_id, "running")
        while running.any() and time.monotonic() < deadline:
            time.sleep(0.1)
        count, latest = _first_steps(workflow_id)
        cpu = meter.stop()
        if recorder is not None:
            for path in recorder.stop().values():
                print(profiles.summary(path), flush=True)
        elapsed = latest.timestamp() - started_at if latest else float("nan")
        load_after = harness.load()
    print(
        f"# {enrolled} enrolled in {enroll_seconds:.2f}s (trigger call); {count}/{contacts} "
        f"first steps by {elapsed:.2f}s; {workers} workers; "
        f"before: {load_before}; after: {load_after}",
        flush=True,
    )
    split = {"enroll": own_cpu, "workers": cpu["workers"], "postgres": cpu["postgres"]}
    print("# " + services.cpu_line(split, contacts), flush=True)
    return elapsed, count == contacts == enrolled, split


if __name__ == "__main__":
    raise SystemExit(main())
