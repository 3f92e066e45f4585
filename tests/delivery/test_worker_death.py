"""A dispatcher killed (SIGKILL) between hand-over and record repeats that
one message -- with the same Message-ID -- and nothing else."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import time_machine

from app.automation.delivery.dispatcher import CLAIM_LEASE_SECONDS, deliver_due
from app.clock import now
from tests.delivery.conftest import _Controller, configured, queue_message

ROOT = Path(__file__).resolve().parents[2]
STALL_ON = 3  # the third message's "250" never comes


class StallingInbox:
    """Takes every message; holds the reply to one of them forever."""

    def __init__(self):
        self.ids: list[str] = []
        self.stalled = threading.Event()

    async def handle_DATA(self, server, session, envelope):
        import email

        message = email.message_from_bytes(envelope.content)
        self.ids.append(message["Message-ID"])
        if len(self.ids) == STALL_ON and not self.stalled.is_set():
            self.stalled.set()
            await asyncio.sleep(3600)
        return "250 OK"


def _child(database_url: str, port: int) -> subprocess.Popen:
    code = textwrap.dedent(
        f"""
        from app import create_app
        app = create_app({{
            "SQLALCHEMY_DATABASE_URI": {database_url!r}, "REDIS_URL": None,
            "SECRET_KEY": "test-secret", "BASE_URL": "http://localhost", "TESTING": True,
            "SMTP_HOST": "127.0.0.1", "SMTP_PORT": {port}, "INLINE_SCHEDULER": False,
        }})
        with app.app_context():
            from app.automation.delivery.dispatcher import deliver_due
            deliver_due()
        """
    )
    return subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env={**os.environ})


def test_a_killed_dispatcher_repeats_only_the_message_in_flight(app, acme):
    inbox = StallingInbox()
    controller = _Controller(inbox, hostname="127.0.0.1", port=0)
    controller.start()
    try:
        messages = [
            queue_message(acme, "send_email", {"subject": f"n{i}", "body_text": "Hi"})
            for i in range(5)
        ]
        assert all(m.status == "recorded" for m in messages)  # no SMTP_HOST here
        from app.extensions import db
        from app.models import OutboxMessage

        db.session.query(OutboxMessage).execution_options(all_firms=True).update(
            {"status": "pending", "next_attempt_at": now()}
        )
        db.session.commit()

        child = _child(app.config["SQLALCHEMY_DATABASE_URI"], controller.port)
        assert inbox.stalled.wait(60), "the dispatcher never reached the third message"
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)

        # A new dispatcher (after the SQLite claim lease; at once on PostgreSQL,
        # where the dead connection's row lock is gone).
        with (
            configured(app, SMTP_HOST="127.0.0.1", SMTP_PORT=controller.port),
            time_machine.travel(now() + timedelta(seconds=CLAIM_LEASE_SECONDS + 1), tick=False),
        ):
            deadline = time.monotonic() + 30
            while deliver_due() == 0 and time.monotonic() < deadline:
                time.sleep(0.2)
    finally:
        controller.stop()

    counts = Counter(inbox.ids)
    assert len(counts) == 5  # every message arrived
    repeated = [message_id for message_id, n in counts.items() if n > 1]
    assert len(repeated) == 1 and counts[repeated[0]] == 2  # one repeat, same Message-ID
    assert inbox.ids[STALL_ON - 1] == repeated[0]  # the one in flight
    db.session.expire_all()
    statuses = {
        row.status for row in db.session.query(OutboxMessage).execution_options(all_firms=True)
    }
    assert statuses == {"sent"}
