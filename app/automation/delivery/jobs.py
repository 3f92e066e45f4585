"""The ``delivery`` queue's job (the sending itself is :mod:`.dispatcher`)."""

from __future__ import annotations

import time

from app.automation.delivery import dispatcher
from app.automation.engine.jobs import JOB_BUDGET_SECONDS
from app.queue import clear_kick


def run_delivery_job() -> int:
    """The ``delivery`` queue's job: send due outbox rows."""
    clear_kick("delivery")
    sent = 0
    started = time.monotonic()
    while time.monotonic() - started < JOB_BUDGET_SECONDS:
        count = dispatcher.deliver_due()
        sent += count or 0
        if not count:
            break
    return sent
