"""One rule for a contact's date field as a moment, shared by the date
triggers and the wait_until step; the default time of day is 09:00."""

from __future__ import annotations

from datetime import UTC, date, datetime

import time_machine

from app.automation.crm.dates import DEFAULT_AT, field_moment, field_value, time_of_day, zone_of
from app.automation.engine.jobs import drain
from app.automation.triggers.scheduler import run_due_date_triggers
from tests.engine.helpers import active_workflow, chain, execution, run
from tests.factories import make_contact
from tests.triggers.conftest import executions_of, live_workflow  # noqa: F401, F811 (a fixture)

NEW_YORK = zone_of("America/New_York")


def test_the_default_time_of_day_is_nine_in_the_morning():
    assert DEFAULT_AT == "09:00"
    assert time_of_day(None).isoformat() == "09:00:00"
    assert time_of_day("25:99x").isoformat() == "09:00:00"
    assert time_of_day("18:30").isoformat() == "18:30:00"


def test_a_date_a_date_time_and_nonsense():
    # 2026-03-20 09:00 EDT is 13:00 UTC.
    assert field_moment("2026-03-20", NEW_YORK) == (
        date(2026, 3, 20),
        datetime(2026, 3, 20, 13, 0, tzinfo=UTC),
    )
    # A date-time counts on the date it is in the contact's zone:
    # 02:00 UTC on the 21st is still the 20th in New York.
    assert field_moment("2026-03-21T02:00:00Z", NEW_YORK, -7, "08:00") == (
        date(2026, 3, 13),
        datetime(2026, 3, 13, 12, 0, tzinfo=UTC),
    )
    assert field_moment(datetime(2026, 3, 21, 2, 0), zone_of(None))[0] == date(2026, 3, 21)
    for nonsense in (None, "", "soon", 42, "2026-13-40"):
        assert field_moment(nonsense, NEW_YORK) is None
    assert zone_of("Mars/Olympus") == zone_of("UTC")


def test_fields_are_read_as_columns_custom_fields_or_contact_dot_names():
    columns, custom = {"birthday": "1990-05-01"}, {"renewal": "2026-01-01"}
    assert field_value("birthday", columns, custom) == "1990-05-01"
    assert field_value("contact.birthday", columns, custom) == "1990-05-01"
    assert field_value("custom.renewal", columns, custom) == "2026-01-01"
    assert field_value("custom.missing", columns, None) is None


def test_a_trigger_and_a_wait_step_without_at_agree_on_the_moment(acme, alice, live_workflow):  # noqa: F811
    """Both read custom.renewal - 7 days with no time of day given: 09:00 in
    the contact's zone (the wait step used to say 00:00)."""
    config = {"field": "custom.renewal", "offset_days": -7}
    expected = datetime(2026, 3, 13, 13, 0, tzinfo=UTC)  # 09:00 EDT
    with time_machine.travel(datetime(2026, 3, 1, tzinfo=UTC), tick=False) as clock:
        contact = make_contact(
            acme, timezone="America/New_York", custom_fields={"renewal": "2026-03-20"}
        )
        waits = active_workflow(
            acme, alice, *chain(("until", "wait_until", config), ("t", "add_tag", {"tag": "x"}))
        )
        waiting = run(waits, contact)
        assert waiting.wake_at.replace(tzinfo=UTC) == expected
        triggered = live_workflow(acme, "date_field_reached", config)
        clock.move_to(datetime(2026, 3, 13, 12, 59, tzinfo=UTC))
        run_due_date_triggers()
        assert executions_of(acme, triggered) == []
        clock.move_to(expected)
        assert run_due_date_triggers() == 1
        drain()
    assert [e.contact_id for e in executions_of(acme, triggered)] == [contact.id]
    assert execution(acme.id, waiting.id).status == "completed"
