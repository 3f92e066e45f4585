"""PostgreSQL batch claims: a claimed row is left alone by every other
dispatcher until it is recorded, and is due again the moment its claimer's
connection dies (no lease to wait out)."""

from __future__ import annotations

import time

import pytest

from app.automation.delivery.dispatcher import _PostgresClaims
from app.extensions import db
from app.models import OutboxMessage
from app.tenancy import firm_context
from tests.delivery.conftest import configured, queue_message

pytestmark = pytest.mark.postgres


def _pending(app, acme, count: int) -> list[int]:
    with configured(app, SMTP_HOST="127.0.0.1"):
        messages = [
            queue_message(acme, "send_email", {"subject": f"n{i}", "body_text": "Hi"})
            for i in range(count)
        ]
    with firm_context(acme.id):
        assert {m.status for m in messages} == {"pending"}
    return sorted(m.id for m in messages)


def _claimer():
    """A dispatcher's own connection, as ``deliver_due`` opens it."""
    return db.engine.connect().execution_options(isolation_level="AUTOCOMMIT")


def test_a_claimed_batch_is_skipped_by_others_until_its_claimer_dies(app, acme):
    ids = _pending(app, acme, 4)
    first, second = _claimer(), _claimer()
    try:
        held = _PostgresClaims(first, limit=3)
        assert held.ids == ids[:3]
        # Another dispatcher only gets what the first did not take.
        assert _PostgresClaims(second, limit=10).ids == ids[3:]
        first.invalidate()  # the first dispatcher's process dies
        # The server ends the dead session (and its locks) a moment later.
        deadline = time.monotonic() + 10
        while (claimed := _PostgresClaims(second, limit=10).ids) != ids:
            assert time.monotonic() < deadline, claimed
            time.sleep(0.05)
    finally:
        first.close()
        second.close()


def test_released_claims_are_due_again_and_recorded_rows_are_not(app, acme):
    ids = _pending(app, acme, 2)
    first, second = _claimer(), _claimer()
    try:
        claims = _PostgresClaims(first, limit=10)
        row = claims.next()
        first.execute(
            OutboxMessage.__table__.update()
            .where(OutboxMessage.__table__.c.id == row.id)
            .values(status="sent")
        )
        claims.release()
        assert _PostgresClaims(second, limit=10).ids == [i for i in ids if i != row.id]
    finally:
        first.close()
        second.close()
