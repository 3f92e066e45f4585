"""Frequency caps across workflows: a contact's marketing e-mails from every
workflow count together; one more waits for the cap (or is skipped), and
when held messages compete for a freed slot the workflow's priority decides,
then the oldest hold. The clock moves across days (time-machine)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from sqlalchemy import event

from app.automation.engine.jobs import drain
from app.extensions import db
from app.models import Topic
from app.tenancy import firm_context
from tests.engine.helpers import active_workflow, chain, start, states_by_node
from tests.factories import make_contact

T0 = datetime(2026, 12, 2, 9, tzinfo=UTC)
EMAIL = {"subject": "News", "body_text": "Hi", "max_attempts": 1}
SETTINGS = "/api/v1/settings/sending/"


def _caps(firm, caps, action="defer"):
    with firm_context(firm.id):
        sending = {"frequency_caps": caps, "cap_action": action}
        firm.settings = {**(firm.settings or {}), "sending": sending}
        db.session.commit()


def _workflow(firm, user, name, priority=5, **config):
    specs, edges = chain(("mail", "send_email", {**EMAIL, **config}))
    return active_workflow(firm, user, specs, edges, name=name, priority=priority)


def _send(workflow, contact, moment):
    with time_machine.travel(moment, tick=False):
        [execution_id] = start(workflow, contact)
        drain()
        drain()
    return execution_id


def _drain_at(moment):
    with time_machine.travel(moment, tick=False):
        drain()
        drain()


def _mail(firm, execution_id):
    return states_by_node(firm.id, execution_id)["mail"]


def test_the_cap_counts_every_workflow_and_holds_the_next_until_it_frees(acme, alice, smtp_server):
    _caps(acme, [{"max": 3, "per_days": 7}, {"max": 1, "per_days": 1}])
    contact = make_contact(acme)
    first = _send(_workflow(acme, alice, "Welcome"), contact, T0)
    second = _send(_workflow(acme, alice, "Offers"), contact, T0 + timedelta(hours=2))
    assert _mail(acme, first).action_status == "success"
    held = _mail(acme, second)
    assert held.action_status == "deferred"
    assert held.action_result["reason"] == "frequency cap 1 per day"
    assert held.action_result["gate"] == "frequency_cap"
    assert held.action_result["held_until"] == (T0 + timedelta(days=1)).isoformat()
    assert len(smtp_server.messages) == 1
    _drain_at(T0 + timedelta(hours=23))
    assert len(smtp_server.messages) == 1
    _drain_at(T0 + timedelta(days=1, seconds=1))
    assert _mail(acme, second).action_status == "success"
    assert len(smtp_server.messages) == 2
    # Day 2 sends a third; the fourth in the week waits for the 7-day cap.
    third = _send(_workflow(acme, alice, "Third"), contact, T0 + timedelta(days=2))
    fourth = _send(_workflow(acme, alice, "Fourth"), contact, T0 + timedelta(days=3))
    assert _mail(acme, third).action_status == "success"
    week = _mail(acme, fourth)
    assert week.action_result["reason"] == "frequency cap 3 per 7 days"
    assert week.action_result["held_until"] == (T0 + timedelta(days=7)).isoformat()
    _drain_at(T0 + timedelta(days=7, seconds=1))
    assert _mail(acme, fourth).action_status == "success"
    assert len(smtp_server.messages) == 4


def test_skip_drops_the_message_with_the_reason(acme, alice, smtp_server):
    _caps(acme, [{"max": 1, "per_days": 1}], action="skip")
    contact = make_contact(acme)
    _send(_workflow(acme, alice, "A"), contact, T0)
    dropped = _send(_workflow(acme, alice, "B"), contact, T0 + timedelta(minutes=5))
    step = _mail(acme, dropped)
    assert step.action_status == "skipped"
    assert step.action_result["reason"] == "frequency cap 1 per day"
    assert len(smtp_server.messages) == 1


def test_transactional_email_is_not_capped_and_does_not_count(acme, alice, smtp_server):
    with firm_context(acme.id):
        marketing = Topic(name="News", kind="marketing", is_default=True)
        receipts = Topic(name="Receipts", kind="transactional")
        db.session.add_all([marketing, receipts])
        db.session.commit()
        receipts_id = receipts.id
    _caps(acme, [{"max": 1, "per_days": 1}])
    contact = make_contact(acme)
    _send(_workflow(acme, alice, "News"), contact, T0)
    receipt = _send(_workflow(acme, alice, "Receipt", topic=receipts_id), contact, T0)
    assert _mail(acme, receipt).action_status == "success"
    assert len(smtp_server.messages) == 2


@pytest.mark.parametrize("tie", [False, True])
def test_a_freed_slot_goes_to_the_highest_priority_then_the_oldest_hold(
    acme, alice, smtp_server, tie
):
    _caps(acme, [{"max": 1, "per_days": 1}])
    contact = make_contact(acme)
    _send(_workflow(acme, alice, "First"), contact, T0)
    early = _send(_workflow(acme, alice, "Early", priority=5), contact, T0 + timedelta(hours=1))
    late = _send(
        _workflow(acme, alice, "Late", priority=5 if tie else 1), contact, T0 + timedelta(hours=2)
    )
    assert _mail(acme, early).action_status == "deferred"
    assert _mail(acme, late).action_status == "deferred"
    _drain_at(T0 + timedelta(days=1, seconds=1))
    _drain_at(T0 + timedelta(days=1, minutes=2))
    winner, loser = (early, late) if tie else (late, early)
    assert _mail(acme, winner).action_status == "success"
    waiting = _mail(acme, loser)
    assert waiting.action_status == "deferred"
    assert waiting.action_result["held_until"] == (T0 + timedelta(days=2, seconds=1)).isoformat()
    assert len(smtp_server.messages) == 2
    _drain_at(T0 + timedelta(days=2, seconds=2))
    assert _mail(acme, loser).action_status == "success"
    assert len(smtp_server.messages) == 3


def test_a_lowered_cap_holds_until_enough_e_mails_left_its_period(acme, alice, smtp_server):
    _caps(acme, [{"max": 3, "per_days": 7}])
    contact = make_contact(acme)
    for day in range(3):
        _send(_workflow(acme, alice, f"Day {day}"), contact, T0 + timedelta(days=day))
    assert len(smtp_server.messages) == 3
    # Now one a week: with three inside it, the slot frees when the newest
    # of them (day 2) leaves the week, not the oldest.
    _caps(acme, [{"max": 1, "per_days": 7}])
    held = _send(_workflow(acme, alice, "Later"), contact, T0 + timedelta(days=3))
    step = _mail(acme, held)
    assert step.action_status == "deferred"
    assert step.action_result["held_until"] == (T0 + timedelta(days=9)).isoformat()
    _drain_at(T0 + timedelta(days=9, seconds=1))
    assert _mail(acme, held).action_status == "success"
    assert len(smtp_server.messages) == 4


def test_an_e_mail_stamped_after_the_batch_clock_still_counts(acme, alice, smtp_server):
    # A worker whose batch clock reads later may commit first: its e-mail
    # fills the cap for a batch whose clock reads earlier (the count has no
    # upper time bound; docs/SENDING.md "Frequency caps").
    _caps(acme, [{"max": 1, "per_days": 1}])
    contact = make_contact(acme)
    _send(_workflow(acme, alice, "Ahead"), contact, T0 + timedelta(minutes=1))
    behind = _send(_workflow(acme, alice, "Behind"), contact, T0)
    step = _mail(acme, behind)
    assert step.action_status == "deferred"
    assert step.action_result["held_until"] == (T0 + timedelta(days=1, minutes=1)).isoformat()
    assert len(smtp_server.messages) == 1


def test_the_cap_counts_a_batch_in_one_query(acme, alice, smtp_server):
    _caps(acme, [{"max": 2, "per_days": 7}, {"max": 1, "per_days": 1}])
    contacts = [make_contact(acme) for _ in range(12)]
    for contact in contacts[:6]:
        _send(_workflow(acme, alice, f"Before {contact.id}"), contact, T0)
    workflow = _workflow(acme, alice, "Batch")
    reads = []

    def count(conn, cursor, statement, *args):
        if "FROM outbox_messages" in statement and "GROUP BY" in statement:
            reads.append(statement)

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        with time_machine.travel(T0 + timedelta(hours=1), tick=False):
            ids = start(workflow, *contacts)
            drain()
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
    assert len(reads) == 1
    statuses = [_mail(acme, execution_id).action_status for execution_id in ids]
    assert statuses == ["deferred"] * 6 + ["success"] * 6


# -- the settings API ---------------------------------------------------------------


def test_settings_are_read_changed_and_previewed(api, acme):
    assert api.get(SETTINGS).json["frequency_caps"] == []
    changed = api.patch(
        SETTINGS,
        json={
            "frequency_caps": [{"max": 3, "per_days": 7}, {"max": 1, "per_days": 1}],
            "max_per_second": 50,
            "domain_limits": {"Gmail.com": 20},
            "pause_on_bounce_rate": {"percent": 5, "window": 200},
        },
    )
    assert changed.status_code == 200, changed.json
    body = changed.json
    assert body["domain_limits"] == {"gmail.com": 20} and body["cap_action"] == "defer"
    assert body["preview"][0].startswith(
        "A contact gets at most 3 marketing e-mails per 7 days and at most 1 marketing e-mail per day"
    )
    assert "At most 50 messages a second leave" in " ".join(body["preview"])
    assert api.get(SETTINGS).json["max_per_second"] == 50


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"frequency_caps": [{"max": -1, "per_days": 7}]}, "frequency_caps[0].max"),
        ({"frequency_caps": [{"max": 3, "per_days": 0}]}, "frequency_caps[0].per_days"),
        ({"frequency_caps": [{"max": 3}]}, "frequency_caps[0]"),
        ({"cap_action": "drop"}, "cap_action"),
        ({"max_per_second": 0}, "max_per_second"),
        ({"domain_limits": {"gmail.com": -5}}, "domain_limits.gmail.com"),
        ({"domain_limits": {"not a domain": 5}}, "domain_limits.not a domain"),
        ({"pause_on_bounce_rate": {"percent": 500}}, "pause_on_bounce_rate.percent"),
        ({"paused": "yes"}, "paused"),
    ],
)
def test_bad_settings_are_refused_naming_the_field(api, acme, change, field):
    answer = api.patch(SETTINGS, json=change)
    assert answer.status_code == 422, answer.json
    assert field in answer.json["error"]["fields"], answer.json
    assert api.get(SETTINGS).json["frequency_caps"] == []


def test_unknown_fields_and_marketers_are_refused(api, api_as, bob, acme):
    assert api.patch(SETTINGS, json={"colour": "red"}).status_code in (400, 422)
    assert api_as(bob).patch(SETTINGS, json={"max_per_second": 5}).status_code == 403
    assert api_as(bob).get(SETTINGS).status_code == 200
