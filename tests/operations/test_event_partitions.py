"""Events that grow for years: on PostgreSQL ``event_log`` and
``tracking_events`` are partitioned by month and a replayed event id is
still a no-op across months (``event_keys``); retention drops whole old
months and keeps recent ones (docs/OPERATIONS.md "Data that grows")."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
import time_machine
from sqlalchemy import func, select, text

from app.automation.delivery.tracking_events import handle_provider_event
from app.automation.operations.retention import run_retention
from app.automation.triggers.bus import emit
from app.config import ConfigurationError, from_environment
from app.extensions import db
from app.models import EventKey, EventLog, OutboxMessage, TrackingEvent, partitioning
from app.tenancy import firm_context
from tests.conftest import USING_POSTGRES
from tests.delivery.conftest import configured, queue_message
from tests.factories import make_contact

JANUARY = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
MARCH = datetime(2026, 3, 20, 12, 0, tzinfo=UTC)
NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
LATER = datetime(2027, 3, 10, 12, 0, tzinfo=UTC)  # 400 days back: 2026-02-03
NAMES = ("old", "january", "march", "now")


def _count(model, firm) -> int:
    with firm_context(firm.id):
        return db.session.scalar(select(func.count()).select_from(model))


def _ours(column, firm) -> set[str]:
    """The event ids this module's events use (contacts made emit their own)."""
    with firm_context(firm.id):
        found = set(db.session.scalars(select(column).where(column.in_(NAMES))))
    # No read transaction left holding the table (retention's partition
    # changes wait for its lock).
    db.session.commit()
    return found


def _months(table: str) -> list[date]:
    with db.engine.connect() as conn:
        return partitioning.existing_months(conn, table)


@pytest.mark.skipif(not USING_POSTGRES, reason="SQLite keeps plain tables")
def test_the_event_tables_are_partitioned_on_postgresql():
    with db.engine.connect() as conn:
        partitioned = set(
            conn.execute(
                text(
                    "SELECT c.relname FROM pg_partitioned_table p "
                    "JOIN pg_class c ON c.oid = p.partrelid"
                )
            ).scalars()
        )
        keys = conn.execute(
            text("SELECT relkind FROM pg_class WHERE relname = 'event_keys'")
        ).scalar()
    assert {"event_log", "tracking_events", "contact_flow_states"} <= partitioned
    assert keys == "r"  # the replay keys: one plain table for every month


def test_a_repeated_event_id_is_a_no_op_across_months(acme):
    contact = make_contact(acme)
    with time_machine.travel(JANUARY, tick=False):
        emit(acme.id, "webhook_received", contact.id, data={"n": 1}, event_id="evt-1")
    with time_machine.travel(MARCH, tick=False):
        emit(acme.id, "webhook_received", contact.id, data={"n": 2}, event_id="evt-1")
        emit(acme.id, "webhook_received", contact.id, data={"n": 3}, event_id="evt-2")
    with firm_context(acme.id):
        rows = db.session.execute(
            select(EventLog.event_id, EventLog.created_at)
            .where(EventLog.event_type == "webhook_received")
            .order_by(EventLog.id)
        )
        assert [(key, at.month) for key, at in rows] == [("evt-1", 1), ("evt-2", 3)]
        keys = db.session.scalars(select(EventKey.event_id).where(EventKey.event_id.like("evt-%")))
        assert sorted(keys) == ["evt-1", "evt-2"]


def test_a_replayed_provider_callback_is_a_no_op_across_months(acme, app):
    with configured(app, SMTP_HOST="127.0.0.1"):
        message = queue_message(acme, "send_email", {"subject": "Hi", "body_text": "Hi"})
    with firm_context(acme.id):
        row = db.session.get(OutboxMessage, message.id)
        row.status = "sent"
        db.session.commit()
    payload = {"type": "email_opened", "message_id": message.message_id}
    with time_machine.travel(JANUARY, tick=False):
        assert handle_provider_event(payload, "p-1")["status"] == "recorded"
    with time_machine.travel(MARCH, tick=False):
        assert handle_provider_event(payload, "p-1")["status"] == "duplicate"
    assert _count(TrackingEvent, acme) == 1


def test_retention_drops_old_event_months_and_keeps_recent_ones(acme):
    contact = make_contact(acme)
    if USING_POSTGRES:
        # The months as a retention job running monthly since then made them.
        with db.engine.begin() as conn:
            for table in ("event_log", "tracking_events"):
                partitioning.create_partitions(conn, table, date(2025, 6, 1), date(2026, 12, 1))
    for moment, key in (
        (datetime(2025, 6, 1, tzinfo=UTC), "old"),
        (JANUARY, "january"),
        (MARCH, "march"),
        (NOW, "now"),
    ):
        with time_machine.travel(moment, tick=False):
            emit(acme.id, "webhook_received", contact.id, event_id=key)
    with time_machine.travel(NOW, tick=False):
        run_retention()  # 400 days back: 2025-10-28, only the oldest goes
    assert _ours(EventLog.event_id, acme) == {"january", "march", "now"}

    with time_machine.travel(LATER, tick=False):
        result = run_retention()
    assert _ours(EventLog.event_id, acme) == {"march", "now"}
    # A key goes with the events it guards (on PostgreSQL: with its month).
    assert _ours(EventKey.event_id, acme) == {"march", "now"}
    if USING_POSTGRES:
        assert date(2026, 1, 1) in result.events["event_log"].dropped
        assert date(2026, 1, 1) in result.events["tracking_events"].dropped
        months = _months("event_log")
        assert date(2026, 1, 1) not in months
        assert {date(2026, 3, 1), date(2027, 3, 1), date(2027, 6, 1)} <= set(months)
        assert date(2027, 6, 1) in _months("tracking_events")
    else:
        assert result.events["event_log"].deleted == 1
    # A replay of a kept event is still a no-op.
    with time_machine.travel(LATER, tick=False):
        emit(acme.id, "webhook_received", contact.id, event_id="march")
    with firm_context(acme.id):
        assert (
            db.session.scalar(
                select(func.count()).select_from(EventLog).where(EventLog.event_id == "march")
            )
            == 1
        )


def test_an_event_retention_shorter_than_the_longest_dashboard_period_is_refused(monkeypatch):
    monkeypatch.setenv("EVENT_RETENTION_DAYS", "30")
    with pytest.raises(ConfigurationError, match="EVENT_RETENTION_DAYS"):
        from_environment({"SECRET_KEY": "x", "SQLALCHEMY_DATABASE_URI": "sqlite://"})
