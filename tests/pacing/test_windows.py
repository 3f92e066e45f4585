"""Send windows: a message due outside its window waits at its step until
the window opens in the contact's zone (DST-correct), and is sent then, once.
The clock is moved with time-machine; both backends (docs/SENDING.md)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine

from app.automation.delivery.windows import (
    WindowError,
    describe,
    next_opening,
    parse_window,
)
from app.automation.engine.jobs import drain
from app.extensions import db
from app.tenancy import firm_context
from tests.engine.helpers import active_workflow, chain, execution, start, states_by_node
from tests.factories import make_contact

EMAIL = {"subject": "Hello", "body_text": "Hi", "max_attempts": 1}
WEEKDAYS = {"days": ["mon", "tue", "wed", "thu", "fri"], "start": "09:00", "end": "17:00"}
NEW_YORK = ZoneInfo("America/New_York")


def _workflow(firm, user, window=WEEKDAYS, step=None):
    config = dict(EMAIL)
    if step is not None:
        config["send_window"] = step["window"]
    specs, edges = chain(("mail", "send_email", config), ("tag", "add_tag", {"tag": "after"}))
    return active_workflow(firm, user, specs, edges, send_window=window)


def _at(moment):
    return time_machine.travel(moment, tick=False)


# -- the arithmetic -----------------------------------------------------------


def test_the_window_opens_at_nine_local_on_the_monday_after_spring_forward():
    window = parse_window(WEEKDAYS | {"timezone": "contact"})
    # Saturday 7 March 2026, 03:00 in New York (EST, -5). Clocks go forward
    # on Sunday 8 March: Monday 09:00 is EDT (-4), 13:00 UTC, not 14:00.
    assert next_opening(window, datetime(2026, 3, 7, 8, tzinfo=UTC), NEW_YORK) == datetime(
        2026, 3, 9, 13, tzinfo=UTC
    )
    # And back on 1 November: Monday 2 November 09:00 EST is 14:00 UTC.
    assert next_opening(window, datetime(2026, 10, 31, 12, tzinfo=UTC), NEW_YORK) == datetime(
        2026, 11, 2, 14, tzinfo=UTC
    )


def test_inside_the_window_nothing_waits_and_half_hour_zones_count():
    window = parse_window(WEEKDAYS | {"timezone": "Asia/Kolkata"})
    kolkata = ZoneInfo("Asia/Kolkata")
    # Wednesday 2 Dec 2026 01:00 UTC is 06:30 in Kolkata: opens 09:00 IST = 03:30 UTC.
    assert next_opening(window, datetime(2026, 12, 2, 1, tzinfo=UTC), kolkata) == datetime(
        2026, 12, 2, 3, 30, tzinfo=UTC
    )
    assert next_opening(window, datetime(2026, 12, 2, 4, tzinfo=UTC), kolkata) is None
    # Friday 17:00 IST closes: the next opening is Monday.
    assert next_opening(window, datetime(2026, 12, 4, 11, 30, tzinfo=UTC), kolkata) == datetime(
        2026, 12, 7, 3, 30, tzinfo=UTC
    )


def test_an_opening_in_the_spring_forward_gap_opens_when_the_gap_ends():
    window = parse_window({"days": ["sun"], "start": "02:30", "end": "04:00"})
    # 02:30 does not exist on 8 March 2026 in New York; 03:00 EDT (07:00 UTC) is next.
    assert next_opening(window, datetime(2026, 3, 8, 5, tzinfo=UTC), NEW_YORK) == datetime(
        2026, 3, 8, 7, tzinfo=UTC
    )


@pytest.mark.parametrize(
    ("value", "field"),
    [
        ({"start": "17:00", "end": "09:00"}, "end"),
        ({"start": "09:00", "end": "09:00"}, "end"),
        ({"timezone": "Mars/Olympus_Mons"}, "timezone"),
        ({"days": ["mon", "funday"]}, "days"),
        ({"days": []}, "days"),
        ({"start": "25:00"}, "start"),
        ({"start": 9}, "start"),
        ({"hours": 3}, "hours"),
    ],
)
def test_bad_windows_name_the_field(value, field):
    with pytest.raises(WindowError) as raised:
        parse_window(value)
    assert raised.value.field == field


def test_the_preview_says_it_in_words():
    text = describe(parse_window(WEEKDAYS | {"timezone": "contact"}), "Asia/Tokyo")
    assert text.startswith(
        "A contact in Tokyo gets this between 09:00 and 17:00 Tokyo time, Mon-Fri"
    )
    fixed = parse_window(
        {"days": ["sat", "sun"], "start": "10:00", "end": "12:30", "timezone": "Europe/Paris"}
    )
    assert (
        describe(fixed) == "Every contact gets this between 10:00 and 12:30 Paris time, Sat, Sun."
    )


# -- in the engine --------------------------------------------------------------


def test_a_message_due_at_night_waits_for_the_contacts_morning_and_is_sent_once(
    acme, alice, smtp_server
):
    # Saturday 7 March 2026, 22:00 in New York; DST starts overnight Sunday.
    saturday_night = datetime(2026, 3, 8, 3, tzinfo=UTC)
    monday_nine = datetime(2026, 3, 9, 13, tzinfo=UTC)  # 09:00 EDT
    with _at(saturday_night):
        contact = make_contact(acme, timezone="America/New_York")
        workflow = _workflow(acme, alice, WEEKDAYS | {"timezone": "contact"})
        [execution_id] = start(workflow, contact)
        drain()
        held = execution(acme.id, execution_id)
        assert held.status == "waiting" and held.wait_reason == "held"
        step = states_by_node(acme.id, execution_id)["mail"]
        assert step.action_status == "deferred"
        assert step.action_result["reason"] == "outside send window"
        assert step.action_result["gate"] == "send_window"
        assert step.action_result["held_until"] == monday_nine.isoformat()
    with _at(monday_nine - timedelta(minutes=1)):
        drain()
    assert smtp_server.messages == []
    with _at(monday_nine + timedelta(seconds=1)):
        drain()
        drain()
    assert len(smtp_server.messages) == 1
    with _at(monday_nine + timedelta(hours=1)):
        drain()
    assert len(smtp_server.messages) == 1
    states = states_by_node(acme.id, execution_id)
    assert states["mail"].action_status == "success" and states["tag"].action_status == "success"


def test_a_contact_without_a_zone_gets_the_firms(acme, alice, smtp_server):
    with firm_context(acme.id):
        acme.settings = {**(acme.settings or {}), "timezone": "Asia/Tokyo"}
        db.session.commit()
    # Wednesday 2 Dec 2026 01:00 UTC is 10:00 in Tokyo, 01:00 in UTC.
    with _at(datetime(2026, 12, 2, 1, tzinfo=UTC)):
        tokyo = make_contact(acme, timezone="")
        utc = make_contact(acme, timezone="UTC")
        workflow = _workflow(acme, alice, WEEKDAYS | {"timezone": "contact"})
        first, second = start(workflow, tokyo, utc)
        drain()
        drain()
    assert states_by_node(acme.id, first)["mail"].action_status == "success"
    held = states_by_node(acme.id, second)["mail"]
    assert held.action_status == "deferred"
    assert held.action_result["held_until"] == "2026-12-02T09:00:00+00:00"
    assert len(smtp_server.messages) == 1


def test_a_step_overrides_or_ignores_the_workflows_window(acme, alice, smtp_server):
    sunday = datetime(2026, 12, 6, 12, tzinfo=UTC)
    with _at(sunday):
        contact = make_contact(acme, timezone="UTC")
        ignores = _workflow(acme, alice, step={"window": None})
        weekend = _workflow(
            acme, alice, step={"window": {"days": ["sat", "sun"], "start": "13:00", "end": "14:00"}}
        )
        [a] = start(ignores, contact)
        [b] = start(weekend, contact)
        drain()
        drain()
    assert states_by_node(acme.id, a)["mail"].action_status == "success"
    step = states_by_node(acme.id, b)["mail"]
    assert step.action_status == "deferred"
    assert step.action_result["held_until"] == "2026-12-06T13:00:00+00:00"


# -- settings and counts ------------------------------------------------------------

WF = "/api/v1/automation/workflows/"


def test_the_api_keeps_a_window_and_refuses_a_bad_one_naming_the_field(api, acme):
    created = api.post(WF, json={"name": "Paced", "send_window": WEEKDAYS, "priority": 2})
    assert created.status_code == 201, created.json
    assert created.json["send_window"] == WEEKDAYS | {"timezone": "contact"}
    assert created.json["priority"] == 2
    url = f"{WF}{created.json['id']}/"
    bad = api.patch(url, json={"send_window": {"start": "17:00", "end": "09:00"}})
    assert bad.status_code in (400, 422)
    assert "send_window" in str(bad.json) and "ends (09:00) before it starts" in str(bad.json)
    zone = api.patch(url, json={"send_window": {"timezone": "Nowhere/Atlantis"}})
    assert zone.status_code in (400, 422) and "timezone" in str(zone.json)
    assert api.patch(url, json={"priority": 0}).status_code in (400, 422)
    assert api.get(url).json["send_window"] == WEEKDAYS | {"timezone": "contact"}
    cleared = api.patch(url, json={"send_window": None})
    assert cleared.status_code == 200 and cleared.json["send_window"] is None


def test_a_step_with_a_bad_window_is_refused_naming_the_field(api, acme):
    workflow = api.post(WF, json={"name": "Steps"}).json
    answer = api.post(
        "/api/v1/automation/nodes/",
        json={
            "workflow": workflow["id"],
            "node_id": "mail",
            "node_type": "send_email",
            "configuration": EMAIL | {"send_window": {"days": ["someday"]}},
        },
    )
    assert answer.status_code in (400, 422), answer.json
    assert "send_window" in str(answer.json) and "someday" in str(answer.json)


def test_the_step_count_says_how_many_are_held_for_the_window(acme, alice, smtp_server):
    from app.automation.analytics import node_live_counts

    with _at(datetime(2026, 12, 5, 12, tzinfo=UTC)):  # a Saturday
        contacts = [make_contact(acme, timezone="UTC") for _ in range(12)]
        workflow = _workflow(acme, alice, WEEKDAYS | {"timezone": "contact"})
        start(workflow, *contacts)
        drain()
        with firm_context(acme.id):
            counts = node_live_counts(workflow)["mail"]
    assert counts["held"] == 12 and counts["held_text"] == "12 held for the send window"
