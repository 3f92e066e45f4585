"""Pacing: messages held by a send window all released at its opening, and
the engine's steps/s with frequency caps on vs off (docs/SENDING.md).

1. ``--contacts`` (default 100,000) contacts enter a workflow whose only
   step sends an e-mail inside a window that is closed now: every one is
   held at the step (``deferred``). The clock is then moved (time-machine)
   to the window's opening and the engine runs until all are sent: the
   time to release them all is the figure (target < 60 s).
2. ``--cap-contacts`` (default 20,000) contacts through a two-step
   workflow (send_email, add_tag), once with no caps, once with caps that
   count every e-mail (and cap none): the steps/s of each and the cost of
   the caps in percent (target: at most 20%).

Statistics are refreshed after each bulk load (``harness.analyze``, as
autovacuum would in a long-lived database) and before the phase is timed;
before each caps run PostgreSQL is vacuumed too, so autovacuum's clean-up
after the release (100,000 rows updated) does not land inside one of the
2-9 s phases whose ratio is the caps' cost.
Beside each wall-clock figure, this process's CPU seconds for the phase
(``*_cpu_s``; the database server's work is not in them): on a shared
machine they move far less with its load.

In-process (the engine's batches advanced here), on a temporary SQLite file
or, with ``DATABASE_URL``, a fresh PostgreSQL database. No SMTP: messages
are ``recorded``. Figures are printed last as JSON lines.

    .venv/bin/python benchmarks/pacing.py
    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres .venv/bin/python benchmarks/pacing.py
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import time_machine
from sqlalchemy import func, select, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402

EMAIL = {"subject": "Hi {{ contact.first_name }}", "body_text": "Hello!", "max_attempts": 1}
# A Wednesday, 03:00 UTC: outside a 09:00-17:00 UTC weekday window.
CLOSED = datetime(2026, 12, 2, 3, tzinfo=UTC)
OPENING = datetime(2026, 12, 2, 9, tzinfo=UTC)
WINDOW = {"days": ["mon", "tue", "wed", "thu", "fri"], "start": "09:00", "end": "17:00"}


def _count(**where) -> int:
    from app.extensions import db
    from app.models import WorkflowExecution

    table = WorkflowExecution.__table__
    stmt = select(func.count()).where(*(table.c[k] == v for k, v in where.items()))
    value = db.session.connection().execute(stmt).scalar()
    db.session.rollback()
    return int(value or 0)


CPU: dict[str, float] = {}  # this process's CPU seconds (user + sys) per phase


def _advance_until(done, timeout: float, phase: str = "") -> float:
    """Run engine batches until ``done()``; the wall seconds it took (its
    CPU seconds go to :data:`CPU`, less sensitive to a shared machine's load).

    ``done()`` (a count over the executions) is asked only after a batch
    that was not full, as the engine's job decides whether to go on
    (engine/jobs.py): asked before every batch, that count was 3-5 s of a
    release's figure on PostgreSQL, the benchmark timing itself."""
    from flask import current_app

    from app.automation.engine.jobs import advance_ready_batch

    limit = int(current_app.config.get("ENGINE_BATCH_SIZE") or 500)
    started, cpu = time.monotonic(), time.process_time()
    while time.monotonic() - started < timeout:
        claimed = advance_ready_batch(limit)["executions"]
        if claimed >= limit:
            continue
        if done():
            break
        if not claimed:
            time.sleep(0.005)
    if phase:
        CPU[phase] = time.process_time() - cpu
    return time.monotonic() - started


def _settle() -> None:
    """Fresh statistics and, on PostgreSQL, no vacuum debt left for
    autovacuum to pay during the phase timed next."""
    from app.extensions import db

    harness.analyze()
    if db.engine.dialect.name == "postgresql":
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM"))


def _release(firm, user, count: int, timeout: float) -> dict:
    from app.automation.engine.enrollment import enroll
    from app.tenancy import firm_context

    with time_machine.travel(CLOSED, tick=True):
        with firm_context(firm.id):
            workflow = harness.build_workflow(
                user, [("mail", "send_email", EMAIL)], [], "manual", send_window=WINDOW
            )
            ids = harness.insert_contacts(firm.id, count, prefix="held")
            enroll(workflow, ids, trigger_type="manual")
        harness.analyze()
        hold = _advance_until(lambda: _count(status="running") == 0, timeout)
        held = _count(status="waiting", wait_reason="held")
    with time_machine.travel(OPENING + timedelta(seconds=1), tick=True):
        release = _advance_until(lambda: _count(status="waiting") == 0, timeout, "release")
        sent = _count(status="completed", workflow_id=workflow.id)
    return {"hold_s": hold, "held": held, "release_s": release, "released": sent}


def _cap_run(firm, user, count: int, caps: list, timeout: float) -> tuple[float, int]:
    from app.automation.engine.enrollment import enroll
    from app.extensions import db
    from app.models import ContactFlowState, Firm
    from app.tenancy import firm_context

    with firm_context(firm.id):
        row = db.session.get(Firm, firm.id)
        row.settings = {**(row.settings or {}), "sending": {"frequency_caps": caps}}
        db.session.commit()
        workflow = harness.build_workflow(
            user,
            [("mail", "send_email", EMAIL), ("tag", "add_tag", {"tag": "x"})],
            [("mail", "tag", None)],
            "manual",
        )
        ids = harness.insert_contacts(firm.id, count, prefix=f"cap{len(caps)}")
        enroll(workflow, ids, trigger_type="manual")
    _settle()
    elapsed = _advance_until(
        lambda: _count(status="running") == 0, timeout, f"caps_{'on' if caps else 'off'}"
    )
    table = ContactFlowState.__table__
    steps = (
        db.session.connection()
        .execute(select(func.count()).where(table.c.workflow_id == workflow.id))
        .scalar()
    )
    db.session.rollback()
    return elapsed, int(steps or 0)


def main() -> int:
    parser = argparse.ArgumentParser(description="Pacing benchmark")
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--cap-contacts", type=int, default=20_000)
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args()
    database_url, drop = harness.bench_database(os.environ.get("DATABASE_URL"), "pacing")
    from app import create_app
    from app.extensions import db

    app = create_app(
        {
            "SQLALCHEMY_DATABASE_URI": database_url,
            "REDIS_URL": None,
            "INLINE_SCHEDULER": False,
            "INLINE_RUNNER": False,
            "SMTP_HOST": None,
        }
    )
    try:
        with app.app_context():
            db.create_all()
            firm, user = harness.firm_and_user()
            release = _release(firm, user, args.contacts, args.timeout)
            off_s, off_steps = _cap_run(firm, user, args.cap_contacts, [], args.timeout)
            caps = [{"max": 1000, "per_days": 7}, {"max": 100, "per_days": 1}]
            on_s, on_steps = _cap_run(firm, user, args.cap_contacts, caps, args.timeout)
            mode = db.engine.dialect.name
            db.session.remove()
            db.engine.dispose()
    finally:
        drop()
    off_rate, on_rate = off_steps / off_s, on_steps / on_s
    print(
        f"# in-process, {mode}: {release['held']}/{args.contacts} held in "
        f"{release['hold_s']:.1f}s, {release['released']} released in {release['release_s']:.1f}s; "
        f"caps off {off_steps} steps in {off_s:.1f}s, on {on_steps} steps in {on_s:.1f}s"
    )
    print("# " + harness.load())
    harness.print_figures(
        "pacing",
        [
            ("held", release["held"], "messages"),
            ("release_all_s", release["release_s"], "s"),
            ("released_per_s", release["released"] / release["release_s"], "1/s"),
            ("steps_per_s_caps_off", off_rate, "1/s"),
            ("steps_per_s_caps_on", on_rate, "1/s"),
            ("caps_cost_percent", 100 * (1 - on_rate / off_rate), "%"),
            ("release_cpu_s", CPU["release"], "s"),
            ("caps_off_cpu_s", CPU["caps_off"], "s"),
            ("caps_on_cpu_s", CPU["caps_on"], "s"),
            ("caps_cost_cpu_percent", 100 * (CPU["caps_on"] / CPU["caps_off"] - 1), "%"),
        ],
    )
    ok = release["released"] == args.contacts == release["held"]
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
