"""The engine's jobs: advance ready executions in batches.

Executions advance in batches (docs/ARCHITECTURE.md rule 4): a job claims ready rows
(:mod:`app.automation.engine.claim`), walks each in memory until a wait,
the end or a failure (:mod:`~app.automation.engine.walk`), and writes
everything back in one transaction (:mod:`~app.automation.engine.write`).
:func:`drain` runs engine, delivery and wakes synchronously (tests, CLI).
"""

from __future__ import annotations

import time

from app.automation.delivery import dispatcher
from app.automation.engine.batch import quiet_gc, run_batch
from app.automation.engine.claim import claim_ready, new_owner
from app.automation.engine.sweeper import wake_finished_deliveries
from app.queue import clear_kick, hold_kick, kick_engine

# A kick job keeps claiming batches for at most this long, then hands over
# to a fresh job so other queues and workers get their turn.
JOB_BUDGET_SECONDS = 20.0


def advance_ready_batch(limit: int | None = None, owner: str | None = None) -> dict:
    """Claim up to ``limit`` ready executions, advance them, write back.

    Returns ``{"executions": n, "steps": n}``; ``executions`` is how many
    were claimed (``limit`` claimed means there may be more)."""
    from flask import current_app

    limit = limit or int(current_app.config.get("ENGINE_BATCH_SIZE") or 500)
    owner = owner or new_owner()
    with quiet_gc():
        rows = claim_ready(limit, owner)
        if not rows:
            return {"executions": 0, "steps": 0}
        return run_batch(rows, owner)


def run_engine_job() -> dict:
    """The ``engine`` queue's job: advance batches while there are any.

    When a batch comes back full it kicks another job first, so an idle
    worker joins in (2 workers, 2 jobs, no coordination needed).

    When a batch comes back small but not empty (a trickle: one trigger
    call, one execution), the job lingers ``ENGINE_LINGER_MS`` holding the
    kick marker, so the kicks of the calls arriving meanwhile enqueue no
    job of their own, and claims once more: their executions share one
    batch, one claim and one commit instead of a job and a batch each.
    It stops at the first claim that finds nothing, so an idle engine
    lingers once and a first step waits at most the linger."""
    from flask import current_app

    clear_kick("engine")
    limit = int(current_app.config.get("ENGINE_BATCH_SIZE") or 500)
    largest = max(limit, int(current_app.config.get("ENGINE_MAX_BATCH_SIZE") or 2000))
    linger = float(current_app.config.get("ENGINE_LINGER_MS") or 0) / 1000
    totals = {"executions": 0, "steps": 0}
    started = time.monotonic()
    handed_over = False
    while True:
        result = advance_ready_batch(limit)
        totals["executions"] += result["executions"]
        totals["steps"] += result["steps"]
        if result["executions"] < limit:
            if not result["executions"] or not linger:
                break
            if time.monotonic() - started > JOB_BUDGET_SECONDS:
                break
            # The marker set by someone else means a kick came since this
            # job started and its job is queued: that one goes on.
            if not hold_kick("engine"):
                break
            time.sleep(linger)
            clear_kick("engine")
            continue
        # A full batch means a long queue: larger batches spread each
        # batch's fixed cost (claim, loads, one commit) over more executions,
        # while a short queue keeps small batches and low latency.
        limit = min(limit * 2, largest)
        if not handed_over:
            kick_engine()
            handed_over = True
        if time.monotonic() - started > JOB_BUDGET_SECONDS:
            kick_engine()
            break
    return totals


def drain(max_rounds: int = 200) -> dict:
    """Synchronously run engine batches (due waits included), due
    deliveries and delivery wakes until nothing is ready (tests and the CLI
    use this instead of workers)."""
    totals = {"rounds": 0, "executions": 0, "steps": 0, "delivered": 0, "woken": 0}
    for _ in range(max_rounds):
        totals["rounds"] += 1
        batch = advance_ready_batch()
        delivered = dispatcher.deliver_due() or 0
        woken = wake_finished_deliveries(kick=False)
        totals["executions"] += batch["executions"]
        totals["steps"] += batch["steps"]
        totals["delivered"] += delivered
        totals["woken"] += woken
        if not batch["executions"] and not delivered and not woken:
            break
    return totals
