"""SIGKILL real workers at random points while contacts run a workflow with
an email, a webhook and a wait (issue 9): every execution finishes, each
receiver gets one message per contact and step, and the only repeats are
the message in flight at a kill, with the same Message-ID / Idempotency-Key
(CONTRACT.md "exactly once in effect")."""

from __future__ import annotations

import json
import os
import random
import time

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import WorkflowExecution
from tests.conftest import ARTIFACTS
from tests.engine.helpers import active_workflow, chain, make_contacts, start
from tests.faults.checks import (
    emails,
    flow_state_counts,
    outbox_ids,
    outbox_statuses,
    settle,
    statuses,
    webhooks,
)

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]

CONTACTS = 500  # per run; runs repeat until KILLS kills were made
KILLS = int(os.environ.get("FAULT_KILLS") or 50)
STEPS = 4
# A worker needs ~2 s to import the app: kill only ones that lived longer,
# so that most kills land on a worker with work in hand.
MIN_AGE_SECONDS = 2.5


def workflow_with_email_webhook_and_wait(faults):
    specs, edges = chain(
        ("mail", "send_email", {"subject": "Hi {{ contact.first_name }}", "body_text": "Hello"}),
        (
            "hook",
            "webhook",
            {"url": faults.hooks.url + "/crm", "payload": {"contact": "{{ contact.email }}"}},
        ),
        ("pause", "wait_time", {"wait_duration_seconds": 1}),
        ("done", "add_tag", {"tag": "done"}),
    )
    return active_workflow(faults.firm, faults.user, specs, edges)


def completed() -> int:
    db.session.rollback()
    stmt = select(func.count()).where(WorkflowExecution.status == "completed")
    return db.session.execute(stmt.execution_options(all_firms=True)).scalar()


def leases_held_by(pid: int) -> int:
    stmt = select(func.count()).where(WorkflowExecution.lease_owner.like(f"%:{pid}:%"))
    db.session.rollback()
    return db.session.execute(stmt.execution_options(all_firms=True)).scalar()


def record(figures: dict) -> None:
    print(json.dumps(figures))
    ARTIFACTS.mkdir(exist_ok=True)
    with open(ARTIFACTS / "faults-figures.jsonl", "a") as out:
        out.write(json.dumps(figures) + "\n")


def test_workers_killed_at_random_points_finish_everything_and_repeat_only_the_message_in_flight(
    faults,
):
    seed = int(os.environ.get("FAULT_SEED") or time.time())
    rng = random.Random(seed)
    workflow = workflow_with_email_webhook_and_wait(faults)
    workers = faults.workers
    workers.spawn(2)
    began = time.monotonic()
    kills = kills_holding_leases = runs = 0

    while kills < KILLS:
        start(workflow, *make_contacts(faults.firm, CONTACTS))
        runs += 1
        while completed() < runs * CONTACTS and kills < KILLS:
            time.sleep(rng.uniform(0.2, 1.5))
            candidates = [p for p in workers.alive() if workers.age(p) >= MIN_AGE_SECONDS]
            if not candidates:
                continue
            victim = rng.choice(candidates)
            held = leases_held_by(victim.pid)
            workers.kill(victim)
            workers.spawn(1)
            kills += 1
            kills_holding_leases += held > 0
        assert time.monotonic() - began < 400, f"too slow: {runs} runs, {kills} kills"

    total = runs * CONTACTS
    done = settle(lambda: statuses() == {"completed": total}, timeout=120)
    assert done, (statuses(), outbox_statuses(), workers.log_tail())

    # Each step recorded once, each message written once and sent.
    assert flow_state_counts() == (total * STEPS, total * STEPS)
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
            "seconds": round(time.monotonic() - began, 1),
            "load": os.getloadavg()[0],
        }
    )
