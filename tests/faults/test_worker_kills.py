"""SIGKILL real workers at random points while contacts run a workflow with
an email, a webhook and a wait (issue 9): every execution finishes, each
receiver gets one message per contact and step, and the only repeats are
the message in flight at a kill, with the same Message-ID / Idempotency-Key
(docs/CONTRACT.md "exactly once in effect")."""

from __future__ import annotations

import json
import os
import random
import time

import pytest
from redis import Redis
from sqlalchemy import func, select

from app.extensions import db
from app.models import OutboxMessage, WorkflowExecution
from tests.conftest import ARTIFACTS
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
    webhooks,
)

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]

CONTACTS = 500  # per run; runs repeat until KILLS kills were made
KILLS = int(os.environ.get("FAULT_KILLS") or 50)
STEPS = 4
# Kill only workers that have been serving (registered with RQ) a moment,
# so that kills land on work in hand, not on a process still importing.
MIN_SERVING_SECONDS = 0.5
# Small batches: a kill loses at most one claimed batch (re-claimed after
# the lease), and a worker gets batches written between kills. With the
# default 500, walking a batch under load takes longer than the gap
# between kills and nothing would ever be written.
BATCH_SIZE = 50


def workflow_with_email_webhook_and_wait(faults):
    specs, edges = chain(
        ("mail", "send_email", {"subject": "Hi {{ contact.first_name }}", "body_text": "Hello"}),
        (
            "hook",
            "webhook",
            {"url": faults.hooks.url + "/crm", "payload": {"contact": "{{ contact.email }}"}},
        ),
        ("pause", "wait_time", {"wait_duration_seconds": 1}),
        # Not idempotent: a step run twice would leave a score of 20.
        ("score", "update_contact", {"fields": {"score": "+10"}}),
    )
    return active_workflow(faults.firm, faults.user, specs, edges)


def completed() -> int:
    db.session.rollback()
    stmt = select(func.count()).where(WorkflowExecution.status == "completed")
    return db.session.execute(stmt.execution_options(all_firms=True)).scalar()


def choose_victim(workers, redis, rng: random.Random):
    """Every other kill waits (up to a second) for a worker caught holding a
    claimed batch; the rest strike whatever the worker is doing (mostly
    sending, the longest part). Returns (worker, held a lease)."""
    candidates = [
        p for p in workers.serving(redis) if workers.serving_for(p) >= MIN_SERVING_SECONDS
    ]
    if not candidates:
        return None, False
    if rng.random() < 0.5:
        by_pid = {p.pid: p for p in candidates}
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            holders = [by_pid[pid] for pid in lease_holders() if pid in by_pid]
            if holders:
                return rng.choice(holders), True
            time.sleep(0.005)
    victim = rng.choice(candidates)
    return victim, victim.pid in lease_holders()


def outbox_attempts(message_ids: list[str]) -> list[tuple]:
    table = OutboxMessage.__table__
    stmt = select(table.c.message_id, table.c.attempts, table.c.last_error).where(
        table.c.message_id.in_(message_ids)
    )
    return [tuple(row) for row in db.session.connection().execute(stmt)]


def record(figures: dict) -> None:
    print(json.dumps(figures))
    ARTIFACTS.mkdir(exist_ok=True)
    with open(ARTIFACTS / "faults-figures.jsonl", "a") as out:
        out.write(json.dumps(figures) + "\n")


@pytest.mark.timeout(900)
def test_workers_killed_at_random_points_finish_everything_and_repeat_only_the_message_in_flight(
    faults,
):
    seed = int(os.environ.get("FAULT_SEED") or time.time())
    print(f"\nrandom seed {seed} (replay with FAULT_SEED={seed})", flush=True)
    rng = random.Random(seed)
    workflow = workflow_with_email_webhook_and_wait(faults)
    workers = faults.workers
    redis = Redis.from_url(faults.redis.url())
    workers.env["ENGINE_BATCH_SIZE"] = str(BATCH_SIZE)
    # Three, so one is serving while the killed one restarts (~3-5 s to
    # import the app on this loaded machine).
    workers.spawn(3)
    began = time.monotonic()
    kills = kills_holding_leases = runs = 0
    kill_times: list[float] = []

    while kills < KILLS:
        start(workflow, *make_contacts(faults.firm, CONTACTS))
        runs += 1
        while completed() < runs * CONTACTS and kills < KILLS:
            time.sleep(rng.uniform(0.3, 1.5))
            victim, held = choose_victim(workers, redis, rng)
            if victim is None:
                continue
            kill_times.append(time.monotonic())
            workers.kill(victim)
            workers.spawn(1)
            kills += 1
            kills_holding_leases += held
        assert time.monotonic() - began < 600, f"too slow: {runs} runs, {kills} kills"

    total = runs * CONTACTS
    done = settle(lambda: statuses() == {"completed": total}, timeout=120)
    assert done, (statuses(), outbox_statuses(), workers.log_tail())

    # Each step recorded once, each message written once and sent.
    assert flow_state_counts() == (total * STEPS, total * STEPS)
    assert scores() == {10: total}
    assert outbox_statuses() == {("email", "sent"): total, ("webhook", "sent"): total}

    mail, hooks = emails(faults.smtp), webhooks(faults.hooks)
    # One message per contact and step, and nothing but the outbox's ids.
    assert set(mail.ids) == set(outbox_ids("email")) and mail.distinct == total
    assert set(hooks.ids) == set(outbox_ids("webhook")) and hooks.distinct == total
    assert mail.recipients_with_two_messages() == []
    assert hooks.recipients_with_two_messages() == []
    # Repeats carry the same id, and a kill repeats at most the one message
    # its worker had in flight.
    duplicates = mail.duplicates + hooks.duplicates
    assert duplicates <= kills
    unexplained = repeats_without_a_kill(kill_times, mail, hooks)
    assert unexplained == [], (unexplained, outbox_attempts([u[0] for u in unexplained]))

    record(
        {
            "fault": "worker_sigkill",
            "seed": seed,
            "kills": kills,
            "kills_holding_leases": kills_holding_leases,
            "runs": runs,
            "executions": total,
            "emails_checked": len(mail.ids),
            "webhooks_checked": len(hooks.ids),
            "duplicates": duplicates,
            "batch_size": BATCH_SIZE,
            "seconds": round(time.monotonic() - began, 1),
            "load": os.getloadavg()[0],
        }
    )
