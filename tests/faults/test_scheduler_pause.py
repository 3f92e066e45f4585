"""Two workers with schedulers; one is frozen (SIGSTOP) past its scheduler
lock and its engine lease -- ideally while it holds a claimed batch -- and
then resumed (SIGCONT), several times (issue 9). The other worker takes the
periodic jobs and the expired leases over; the resumed one finds its claim
gone and writes nothing: no step runs twice, no message goes out twice."""

from __future__ import annotations

import os
import random
import signal
import time

import pytest

from app.extensions import db
from tests.engine.helpers import active_workflow, chain, make_contacts, start
from tests.faults.checks import (
    emails,
    flow_state_counts,
    lease_holders,
    outbox_statuses,
    scores,
    settle,
    statuses,
    webhooks,
)
from tests.faults.conftest import LEASE_SECONDS, SWEEP_SECONDS
from tests.faults.test_worker_kills import record

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]

EXECUTIONS = 500
STEPS = 4
PAUSES = 6
# Past the scheduler lock (one sweep interval) and the engine lease.
PAUSE_SECONDS = LEASE_SECONDS + 2.0


def pick_victim(workers, rng: random.Random, within: float = 3.0):
    """A worker caught holding a lease if one shows up soon, else any."""
    by_pid = {proc.pid: proc for proc in workers}
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        holders = [by_pid[pid] for pid in lease_holders() if pid in by_pid]
        if holders:
            return rng.choice(holders), True
        time.sleep(0.005)
    return rng.choice(workers), False


def test_a_worker_paused_past_its_scheduler_lock_and_lease_runs_no_step_twice(faults):
    seed = int(os.environ.get("FAULT_SEED") or time.time())
    print(f"\nrandom seed {seed} (replay with FAULT_SEED={seed})", flush=True)
    rng = random.Random(seed)
    specs, edges = chain(
        ("mail", "send_email", {"subject": "Hi", "body_text": "Hello {{ contact.first_name }}"}),
        (
            "hook",
            "webhook",
            {"url": faults.hooks.url + "/crm", "payload": {"contact": "{{ contact.email }}"}},
        ),
        ("pause", "wait_time", {"wait_duration_seconds": 1}),
        # Not idempotent: a step run twice would leave a score of 20.
        ("score", "update_contact", {"fields": {"score": "+10"}}),
    )
    workflow = active_workflow(faults.firm, faults.user, specs, edges)
    workers = faults.workers.spawn(2)
    began = time.monotonic()
    start(workflow, *make_contacts(faults.firm, EXECUTIONS))

    pauses = pauses_holding_leases = 0
    while pauses < PAUSES:
        victim, holding = pick_victim(workers, rng)
        victim.send_signal(signal.SIGSTOP)
        time.sleep(PAUSE_SECONDS)
        victim.send_signal(signal.SIGCONT)
        pauses += 1
        pauses_holding_leases += holding
        time.sleep(rng.uniform(0.2, 1.0))
        if statuses() == {"completed": EXECUTIONS}:
            start(workflow, *make_contacts(faults.firm, EXECUTIONS))  # keep them busy

    db.session.rollback()
    total = sum(statuses().values())
    done = settle(lambda: statuses() == {"completed": total}, timeout=120)
    assert done, (statuses(), outbox_statuses(), faults.workers.log_tail())
    assert [p.poll() for p in workers] == [None, None]

    assert flow_state_counts() == (total * STEPS, total * STEPS)
    assert scores() == {10: total}
    assert outbox_statuses() == {("email", "sent"): total, ("webhook", "sent"): total}
    mail, hooks = emails(faults.smtp), webhooks(faults.hooks)
    # Nobody died: not even a repeat with the same id is allowed.
    assert (mail.distinct, mail.duplicates) == (total, 0)
    assert (hooks.distinct, hooks.duplicates) == (total, 0)

    record(
        {
            "fault": "scheduler_sigstop",
            "seed": seed,
            "pauses": pauses,
            "pauses_holding_leases": pauses_holding_leases,
            "pause_s": PAUSE_SECONDS,
            "lease_s": LEASE_SECONDS,
            "scheduler_lock_s": SWEEP_SECONDS,
            "executions": total,
            "emails_checked": len(mail.ids),
            "webhooks_checked": len(hooks.ids),
            "duplicates": 0,
            "seconds": round(time.monotonic() - began, 1),
            "load": os.getloadavg()[0],
        }
    )
