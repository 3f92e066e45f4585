"""Date triggers, run by the scheduler with a moved clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from app.automation.lifecycle.publishing import pause_workflow
from app.automation.triggers.scheduler import run_due_date_triggers
from app.extensions import db
from app.models import PublishedTrigger, WorkflowExecution
from app.tenancy import firm_context
from tests.factories import make_contact
from tests.triggers.conftest import executions_of, trigger_id


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.fixture
def clock(time_machine):
    def move(text: str):
        time_machine.move_to(at(text), tick=False)

    return move


def _started(firm, workflow=None) -> list[tuple[int, str]]:
    return [(e.contact_id, e.event_id) for e in executions_of(firm, workflow)]


def _finish_all(firm):
    with firm_context(firm.id):
        for execution in db.session.query(WorkflowExecution):
            execution.status = "completed"
        db.session.commit()


def test_date_reached_enrolls_the_contacts_the_rules_select_once_the_moment_passes(
    acme, live_workflow, clock
):
    clock("2026-12-01 08:00")
    hot = make_contact(acme, score=90)
    make_contact(acme, score=10)
    workflow = live_workflow(
        acme,
        "date_reached",
        {
            "at": "2026-12-24T09:00:00Z",
            "rules": [{"field": "contact.score", "op": "gte", "value": 50}],
        },
    )
    clock("2026-12-24 08:59")
    assert run_due_date_triggers() == 0
    clock("2026-12-24 09:00")
    assert run_due_date_triggers() == 1
    assert _started(acme, workflow) == [(hot.id, f"date:{trigger_id(acme, workflow)}:2026-12-24")]
    clock("2026-12-24 10:00")
    assert run_due_date_triggers() == 0


def test_a_moment_before_activation_is_not_replayed(acme, live_workflow, clock):
    clock("2026-12-25 08:00")
    make_contact(acme)
    live_workflow(acme, "date_reached", {"at": "2026-12-24T09:00:00Z"})
    assert run_due_date_triggers() == 0


def test_date_field_reached_catches_up_after_downtime_and_never_fires_twice(
    acme, live_workflow, clock
):
    clock("2026-03-01 00:00")
    early = make_contact(acme, custom_fields={"renewal_date": "2026-03-10"})
    later = make_contact(acme, custom_fields={"renewal_date": "2026-03-12"})
    make_contact(acme, custom_fields={"renewal_date": "2026-05-01"})
    make_contact(acme, custom_fields={"renewal_date": "not a date"})
    workflow = live_workflow(
        acme,
        "date_field_reached",
        {"field": "custom.renewal_date", "offset_days": -7, "at": "09:00"},
        allow_reentry=True,
    )
    assert run_due_date_triggers() == 0
    # Down from Mar 1 to Mar 6 noon: the Mar 3 and Mar 5 moments were missed.
    clock("2026-03-06 12:00")
    assert run_due_date_triggers() == 2
    tid = trigger_id(acme, workflow)
    assert sorted(_started(acme)) == [
        (early.id, f"date:{tid}:2026-03-03"),
        (later.id, f"date:{tid}:2026-03-05"),
    ]
    _finish_all(acme)
    clock("2026-03-07 12:00")
    assert run_due_date_triggers() == 0


def test_a_repeated_window_starts_nothing_new(acme, live_workflow, clock):
    from app.automation.triggers.scheduler import run_trigger

    clock("2026-03-01 00:00")
    make_contact(acme, custom_fields={"renewal_date": "2026-03-02"})
    workflow = live_workflow(
        acme, "date_field_reached", {"field": "custom.renewal_date"}, allow_reentry=True
    )
    clock("2026-03-02 10:00")
    assert run_due_date_triggers() == 1
    _finish_all(acme)
    # A second worker that read the old cursor processes the same window.
    tid = trigger_id(acme, workflow)
    with firm_context(acme.id):
        db.session.execute(
            update(PublishedTrigger)
            .where(PublishedTrigger.id == tid)
            .values(scheduled_through=at("2026-03-01 00:00"))
        )
        db.session.commit()
        assert run_trigger(tid) == 0


def test_the_time_of_day_follows_the_contacts_zone_across_a_dst_change(acme, live_workflow, clock):
    clock("2026-03-01 00:00")
    # New York moves to daylight time at 02:00 on 2026-03-08.
    before = make_contact(acme, timezone="America/New_York", custom_fields={"day": "2026-03-07"})
    after = make_contact(acme, timezone="America/New_York", custom_fields={"day": "2026-03-08"})
    live_workflow(acme, "date_field_reached", {"field": "custom.day", "at": "09:00"})
    run_due_date_triggers()
    clock("2026-03-07 13:59")  # 08:59 EST
    assert run_due_date_triggers() == 0
    clock("2026-03-07 14:00")  # 09:00 EST = UTC-5
    assert run_due_date_triggers() == 1
    clock("2026-03-08 12:59")  # 08:59 EDT
    assert run_due_date_triggers() == 0
    clock("2026-03-08 13:00")  # 09:00 EDT = UTC-4
    assert run_due_date_triggers() == 1
    assert [c for c, _ in _started(acme)] == [before.id, after.id]


def test_contacts_in_utc_plus_13_and_utc_minus_10_get_their_own_morning(acme, live_workflow, clock):
    clock("2026-06-10 00:00")
    tonga = make_contact(acme, timezone="Pacific/Tongatapu", custom_fields={"d": "2026-06-15"})
    hawaii = make_contact(acme, timezone="Pacific/Honolulu", custom_fields={"d": "2026-06-15"})
    workflow = live_workflow(acme, "date_field_reached", {"field": "custom.d", "at": "09:00"})
    tid = trigger_id(acme, workflow)
    run_due_date_triggers()
    clock("2026-06-14 19:59")  # 08:59 on the 15th in Tonga (UTC+13)
    assert run_due_date_triggers() == 0
    clock("2026-06-14 20:00")
    assert run_due_date_triggers() == 1
    assert _started(acme) == [(tonga.id, f"date:{tid}:2026-06-15")]
    clock("2026-06-15 18:59")  # 08:59 in Honolulu (UTC-10)
    assert run_due_date_triggers() == 0
    clock("2026-06-15 19:00")
    assert run_due_date_triggers() == 1
    assert _started(acme)[1] == (hawaii.id, f"date:{tid}:2026-06-15")


def test_anniversary_is_yearly_and_feb_29_falls_on_feb_28_in_common_years(
    acme, live_workflow, clock
):
    clock("2027-02-20 00:00")
    leapling = make_contact(acme, custom_fields={"birthday": "2000-02-29"})
    regular = make_contact(acme, custom_fields={"birthday": "1990-03-01"})
    workflow = live_workflow(
        acme, "anniversary", {"field": "custom.birthday", "at": "08:00"}, allow_reentry=True
    )
    tid = trigger_id(acme, workflow)
    run_due_date_triggers()
    clock("2027-02-28 08:00")
    assert run_due_date_triggers() == 1
    clock("2027-03-01 08:00")
    assert run_due_date_triggers() == 1
    assert _started(acme) == [
        (leapling.id, f"date:{tid}:2027-02-28"),
        (regular.id, f"date:{tid}:2027-03-01"),
    ]
    _finish_all(acme)
    # A year on (the scheduler kept running), in a leap year: Feb 29 itself.
    for day in range(1, 366 + 1, 5):
        clock((at("2027-03-01 08:00") + timedelta(days=day)).strftime("%Y-%m-%d %H:%M"))
        run_due_date_triggers()
        if day == 361:
            break
    clock("2028-02-28 08:00")
    run_due_date_triggers()
    assert (leapling.id, f"date:{tid}:2028-02-28") not in _started(acme)
    clock("2028-02-29 08:00")
    assert run_due_date_triggers() == 1
    assert _started(acme)[-1] == (leapling.id, f"date:{tid}:2028-02-29")


def test_time_delay_fires_the_given_hours_after_creation(acme, live_workflow, clock):
    clock("2026-05-01 10:00")
    workflow = live_workflow(acme, "time_delay", {"delay_hours": 24})
    clock("2026-05-01 11:00")
    newcomer = make_contact(acme)
    clock("2026-05-02 10:59")
    assert run_due_date_triggers() == 0
    clock("2026-05-02 11:00")
    assert run_due_date_triggers() == 1
    assert _started(acme, workflow) == [(newcomer.id, f"date:{trigger_id(acme, workflow)}:delay")]
    clock("2026-05-03 11:00")
    assert run_due_date_triggers() == 0


def test_paused_workflows_are_left_alone(acme, live_workflow, clock, alice):
    clock("2026-12-01 08:00")
    make_contact(acme)
    workflow = live_workflow(acme, "date_reached", {"at": "2026-12-02T09:00:00Z"})
    with firm_context(acme.id):
        pause_workflow(workflow, alice)
        db.session.commit()
    clock("2026-12-03 08:00")
    assert run_due_date_triggers() == 0


def test_date_field_reached_works_on_the_creation_date(acme, live_workflow, clock):
    clock("2026-04-01 07:00")
    workflow = live_workflow(acme, "date_field_reached", {"field": "created_at", "offset_days": 30})
    clock("2026-04-01 08:00")
    member = make_contact(acme, timezone="Europe/Berlin")
    clock("2026-05-01 06:59")  # 08:59 in Berlin (UTC+2)
    assert run_due_date_triggers() == 0
    clock("2026-05-01 07:00")
    assert run_due_date_triggers() == 1
    assert _started(acme, workflow) == [
        (member.id, f"date:{trigger_id(acme, workflow)}:2026-05-01")
    ]


def test_the_process_waiting_command_runs_the_date_triggers(acme, live_workflow, clock, runner):
    clock("2026-12-01 08:00")
    contact = make_contact(acme)
    live_workflow(acme, "date_reached", {"at": "2026-12-02T09:00:00Z"})
    clock("2026-12-02 09:30")
    result = runner.invoke(args=["process-waiting"])
    assert result.exit_code == 0, result.output
    assert [c for c, _ in _started(acme)] == [contact.id]


def test_frequent_runs_leave_a_finished_date_trigger_alone(acme, live_workflow, clock):
    clock("2026-12-01 08:00")
    make_contact(acme)
    workflow = live_workflow(acme, "date_reached", {"at": "2026-12-01T09:00:00Z"})
    tid = trigger_id(acme, workflow)

    def cursor():
        with firm_context(acme.id):
            db.session.expire_all()
            return db.session.get(PublishedTrigger, tid).scheduled_through

    clock("2026-12-01 09:00:10")
    assert run_due_date_triggers() == 1
    assert cursor() == at("2026-12-01 09:00:10")
    clock("2026-12-01 09:00:20")  # moments later: nothing to do
    assert run_due_date_triggers() == 0
    clock("2026-12-01 10:00")  # the moment is behind the cursor for good
    assert run_due_date_triggers() == 0
    assert cursor() == at("2026-12-01 09:00:10")


def test_the_time_of_day_holds_when_the_clocks_go_back(acme, live_workflow, clock):
    clock("2026-10-20 00:00")
    # Berlin leaves summer time at 03:00 on 2026-10-25 (UTC+2 -> UTC+1).
    summer = make_contact(acme, timezone="Europe/Berlin", custom_fields={"d": "2026-10-24"})
    winter = make_contact(acme, timezone="Europe/Berlin", custom_fields={"d": "2026-10-25"})
    live_workflow(acme, "date_field_reached", {"field": "custom.d", "at": "09:00"})
    run_due_date_triggers()
    clock("2026-10-24 07:00")  # 09:00 CEST
    assert run_due_date_triggers() == 1
    clock("2026-10-25 07:59")  # 08:59 CET
    assert run_due_date_triggers() == 0
    clock("2026-10-25 08:00")  # 09:00 CET
    assert run_due_date_triggers() == 1
    assert [c for c, _ in _started(acme)] == [summer.id, winter.id]
