"""Deferral is exactly once like every send (issue 17): real workers are
SIGKILLed while 100 messages are held for their send window and again while
the window opens and they are released and sent (under a firm rate limit,
so the sending takes a few seconds). Every contact gets one e-mail, every
outbox row is sent once, every execution completes; the only repeats are a
message in flight at a kill, with the same Message-ID (docs/CONTRACT.md
"exactly once in effect", docs/SENDING.md "Send windows").

A window opens on a whole minute, and a worker's clock cannot be moved from
here: the workers start with their clock moved forward (time-machine,
ticking, the same offset for all of them) so that the window opens about
``LEAD`` seconds after they are launched.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import pytest
from redis import Redis
from sqlalchemy import func, select

from app.extensions import db
from app.models import WorkflowExecution
from app.tenancy import firm_context
from tests.engine.helpers import active_workflow, chain, make_contacts, start
from tests.faults.checks import (
    emails,
    flow_state_counts,
    lease_holders,
    outbox_ids,
    outbox_statuses,
    repeats_without_a_kill,
    scores,
    settle,
    statuses,
)
from tests.faults.procs import ROOT, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]

CONTACTS = 100
# Seconds from launching the workers to the window's opening (their clock):
# enough for them to start (3-5 s here), enroll and hold everything.
LEAD = 35
BATCH_SIZE = 20  # the release takes several claimed batches
PER_SECOND = 25  # the sending takes about 4 s: time to kill a sender

LAUNCHER = """
import datetime, runpy, sys, time_machine
offset = float(sys.argv[1])
when = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=offset)
time_machine.travel(when, tick=True).start()
sys.argv = ["worker.py"]
runpy.run_path("worker.py", run_name="__main__")
"""


def spawn(workers, offset: float, count: int = 1) -> None:
    """Like ``Workers.spawn``, with the worker's clock ``offset`` s ahead."""
    environment = {**os.environ, **workers.env}
    for _ in range(count):
        with open(workers.log, "a") as log:
            proc = subprocess.Popen(
                [sys.executable, "-c", LAUNCHER, str(offset)],
                cwd=ROOT,
                env=environment,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        workers.born[proc.pid] = time.monotonic()
        workers.procs.append(proc)


def window_opening_at(opening: datetime) -> dict:
    """A window, every day, that opens at ``opening`` (a whole minute), read
    in a fixed-offset zone where that is about noon (so it never wraps past
    midnight) and open for two hours."""
    shift = 12 - opening.hour
    zone = "UTC" if shift == 0 else f"Etc/GMT{'-' if shift > 0 else '+'}{abs(shift)}"
    local = opening + timedelta(hours=shift)
    return {
        "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
        "start": f"{local:%H:%M}",
        "end": f"{local + timedelta(hours=2):%H:%M}",
        "timezone": zone,
    }


def held() -> int:
    db.session.rollback()
    table = WorkflowExecution.__table__
    stmt = select(func.count()).where(table.c.status == "waiting", table.c.wait_reason == "held")
    return db.session.connection().execute(stmt).scalar()


def kill_one(workers, redis, rng, kill_times, prefer_lease: bool, offset: float) -> bool:
    """SIGKILL a serving worker (one holding a claimed batch when
    ``prefer_lease`` and one shows up within 5 s) and start another; returns
    whether the victim held a lease."""
    candidates = [p for p in workers.serving(redis) if workers.serving_for(p) >= 0.5]
    assert candidates, workers.log_tail()
    victim = None
    if prefer_lease:
        by_pid = {p.pid: p for p in candidates}
        deadline = time.monotonic() + 5.0
        while victim is None and time.monotonic() < deadline:
            holders = [by_pid[pid] for pid in lease_holders() if pid in by_pid]
            victim = rng.choice(holders) if holders else None
            time.sleep(0.005)
    victim = victim or rng.choice(candidates)
    holding = victim.pid in lease_holders()
    kill_times.append(time.monotonic())
    workers.kill(victim)
    spawn(workers, offset)
    return holding


@pytest.mark.timeout(240)
def test_workers_killed_while_messages_are_held_and_released_send_each_once(faults):
    seed = int(os.environ.get("FAULT_SEED") or time.time())
    print(f"\nrandom seed {seed} (replay with FAULT_SEED={seed})", flush=True)
    rng = random.Random(seed)
    began = time.monotonic()
    workers = faults.workers
    redis = Redis.from_url(faults.redis.url())
    workers.env["ENGINE_BATCH_SIZE"] = str(BATCH_SIZE)

    real = datetime.now(UTC)
    target = real + timedelta(seconds=LEAD)
    opening = (target + timedelta(minutes=1)).replace(second=0, microsecond=0)
    offset = (opening - target).total_seconds()  # 0-60 s ahead

    def worker_now() -> datetime:
        return datetime.now(UTC) + timedelta(seconds=offset)

    spawn(workers, offset, 3)
    opens_at = time.monotonic() + (opening - worker_now()).total_seconds()
    with firm_context(faults.firm.id):
        faults.firm.settings = {
            **(faults.firm.settings or {}),
            "sending": {"max_per_second": PER_SECOND},
        }
        db.session.commit()
    specs, edges = chain(
        ("mail", "send_email", {"subject": "Hi {{ contact.first_name }}", "body_text": "Hello"}),
        # Not idempotent: a step run twice would leave a score of 20.
        ("score", "update_contact", {"fields": {"score": "+10"}}),
    )
    workflow = active_workflow(
        faults.firm, faults.user, specs, edges, send_window=window_opening_at(opening)
    )
    assert wait_until(lambda: len(workers.serving(redis)) == 3, 60), workers.log_tail()
    start(workflow, *make_contacts(faults.firm, CONTACTS))

    # Held: every execution waits at the send step for the window.
    assert settle(lambda: held() == CONTACTS, timeout=30), (statuses(), workers.log_tail())
    assert worker_now() < opening - timedelta(seconds=3), "held too late for the test"
    assert faults.smtp.messages == [] and outbox_statuses() == {}
    kill_times: list[float] = []
    held_before = time.monotonic()
    kill_one(workers, redis, rng, kill_times, prefer_lease=False, offset=offset)

    # Released: the window opens; kill a worker walking a released batch,
    # then two while the messages go out.
    assert wait_until(lambda: worker_now() >= opening, LEAD + 60)
    held_seconds = time.monotonic() - held_before
    released_holding = kill_one(workers, redis, rng, kill_times, prefer_lease=True, offset=offset)
    sent_at_kills = []
    for share in (0.2, 0.6):
        assert wait_until(lambda s=share: len(faults.smtp.messages) >= CONTACTS * s, 60), (
            statuses(),
            outbox_statuses(),
            workers.log_tail(),
        )
        sent_at_kills.append(len(faults.smtp.messages))
        kill_one(workers, redis, rng, kill_times, prefer_lease=False, offset=offset)

    done = settle(lambda: statuses() == {"completed": CONTACTS}, timeout=90)
    assert done, (statuses(), outbox_statuses(), workers.log_tail())
    assert scores() == {10: CONTACTS}
    # Each step recorded once: the held send step's state became its send.
    assert flow_state_counts() == (2 * CONTACTS, 2 * CONTACTS)
    assert outbox_statuses() == {("email", "sent"): CONTACTS}

    mail = emails(faults.smtp)
    assert set(mail.ids) == set(outbox_ids("email")) and mail.distinct == CONTACTS
    assert mail.recipients_with_two_messages() == []
    assert mail.duplicates <= len(kill_times)
    assert repeats_without_a_kill(kill_times, mail) == []
    # None went out before the window opened (on the workers' clock).
    assert min(mail.times) >= opens_at - 0.5, "a held message went out before its window"

    print(
        f"[held messages] contacts {CONTACTS}, kills {len(kill_times)} (held, released"
        f"{' holding a lease' if released_holding else ''}, sending after {sent_at_kills} sent), "
        f"held {held_seconds:.1f}s, duplicates {mail.duplicates}, "
        f"{time.monotonic() - began:.1f}s, load {os.getloadavg()[0]:.1f}"
    )
