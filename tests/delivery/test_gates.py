"""The send gates: a suppressed address gets nothing, from any workflow, and
the step says why; bounces at hand-over fill the list; a defer holds a step
and sends it once, later."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import time_machine
from sqlalchemy import event, select

from app.automation.delivery import gates
from app.automation.delivery.dispatcher import deliver_due
from app.automation.delivery.gates.chain import CHAIN
from app.automation.engine.jobs import drain
from app.clock import now
from app.extensions import db
from app.models import OutboxMessage, Suppression
from app.tenancy import firm_context
from tests.delivery.conftest import queue_message, reload
from tests.engine.helpers import active_workflow, chain, run, start, states_by_node
from tests.factories import make_contact

EMAIL = {"subject": "Hello", "body_text": "Hi {{ contact.first_name }}", "max_attempts": 1}


def _suppress(firm, address, reason="hard_bounce", **fields):
    with firm_context(firm.id):
        entry = Suppression(address=address, reason=reason, **fields)
        db.session.add(entry)
        db.session.commit()
        return entry


def _welcome(firm, user, **config):
    specs, edges = chain(
        ("mail", "send_email", {**EMAIL, **config}), ("tag", "add_tag", {"tag": "after"})
    )
    return active_workflow(firm, user, specs, edges)


def test_a_suppressed_address_gets_nothing_and_the_step_says_why(acme, alice, smtp_server):
    contact = make_contact(acme, email="Gone@Example.test")
    _suppress(
        acme,
        "gone@example.test",
        created_at=datetime(2026, 12, 1, 8, tzinfo=UTC),
        detail={"code": 550, "status": "5.1.1", "text": "User unknown"},
    )
    execution = run(_welcome(acme, alice), contact)
    assert execution.status == "completed"  # a skip ends the step, not the execution
    step = states_by_node(acme.id, execution.id)["mail"]
    assert step.action_status == "skipped"
    assert step.action_result["reason"] == "suppressed: hard bounce on 1 Dec 2026, 550 User unknown"
    assert step.action_result["gate"] == "suppression"
    assert smtp_server.messages == []


def test_another_firms_suppression_does_not_apply(acme, globex, alice, smtp_server):
    contact = make_contact(acme, email="shared@example.test")
    _suppress(globex, "shared@example.test")
    execution = run(_welcome(acme, alice), contact)
    assert states_by_node(acme.id, execution.id)["mail"].action_status == "success"
    assert len(smtp_server.messages) == 1


def test_the_gates_read_the_list_once_per_batch(acme, alice, smtp_server):
    contacts = [make_contact(acme) for _ in range(20)]
    _suppress(acme, contacts[3].email)
    workflow = _welcome(acme, alice)
    start(workflow, *contacts)
    reads = []

    def count(conn, cursor, statement, *args):
        if "FROM suppressions" in statement:
            reads.append(statement)

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        drain()
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
    assert len(smtp_server.messages) == 19
    # One read when the engine's batch sends, one when the dispatcher's does.
    assert len(reads) == 2, reads


def test_an_address_suppressed_while_its_message_waits_is_skipped_at_hand_over(acme, smtp_server):
    message = queue_message(acme, "send_email", EMAIL)
    assert message.status == "pending"
    _suppress(acme, message.to_address, reason="complaint")
    deliver_due()
    assert reload(message).status == "skipped"
    assert reload(message).response["reason"].startswith("suppressed: spam complaint on ")
    assert smtp_server.messages == []


def test_a_550_fails_the_step_with_the_answer_never_retries_and_suppresses(
    acme, alice, smtp_server
):
    contact = make_contact(acme, email="nobody@example.test")
    answer = "550 5.1.1 The email account that you tried to reach does not exist."
    smtp_server.refuse["nobody@example.test"] = answer
    first = run(_welcome(acme, alice, max_attempts=3), contact)
    step = states_by_node(acme.id, first.id)["mail"]
    assert step.action_status == "failed"
    assert "550 5.1.1 The email account" in step.action_result["error"]
    with firm_context(acme.id):
        row = db.session.scalars(select(OutboxMessage)).one()
        assert row.attempts == 1 and row.status == "failed"  # permanent: not retried
        entry = db.session.scalars(select(Suppression)).one()
    assert (entry.address, entry.reason, entry.outbox_id) == (
        "nobody@example.test",
        "hard_bounce",
        row.id,
    )
    assert entry.detail["status"] == "5.1.1"

    # Any other workflow now skips the address, saying why.
    again = run(_welcome(acme, alice), contact)
    reason = states_by_node(acme.id, again.id)["mail"].action_result["reason"]
    assert (
        reason.startswith("suppressed: hard bounce on ") and "550 5.1.1 The email account" in reason
    )


def test_451_is_retried_and_soft_bounces_in_a_row_suppress(app, acme, smtp_server):
    smtp_server.refuse["full@example.test"] = "451 4.2.2 Mailbox full, try later"
    contact = make_contact(acme, email="full@example.test")
    retried = queue_message(acme, "send_email", {**EMAIL, "max_attempts": 2}, contact=contact)
    deliver_due()
    assert reload(retried).status == "pending" and reload(retried).attempts == 1
    with time_machine.travel(now() + timedelta(seconds=31), tick=False):
        deliver_due()
    assert reload(retried).status == "failed"
    for _ in range(2):
        with firm_context(acme.id):
            assert db.session.scalars(select(Suppression)).all() == []
        queue_message(acme, "send_email", EMAIL, contact=contact)
        deliver_due()
    with firm_context(acme.id):
        entry = db.session.scalars(select(Suppression)).one()
    assert entry.reason == "soft_bounce" and entry.note == "3 soft bounces in a row"
    assert smtp_server.messages == []


class _HoldOnce(gates.Gate):
    """A throwaway gate: holds every e-mail until a moment, then lets it go."""

    name = "test_hold"
    until = None

    def check(self, candidate, state):
        if candidate.moment < self.until:
            return gates.defer(self.until, "outside send window", self.name)
        return gates.SEND


def test_a_deferred_step_is_held_then_sent_once(acme, alice, smtp_server):
    _HoldOnce.until = now() + timedelta(hours=2)
    gates.register(_HoldOnce)
    try:
        contact = make_contact(acme)
        execution = run(_welcome(acme, alice), contact)
        assert execution.status == "waiting" and execution.wait_reason == "held"
        step = states_by_node(acme.id, execution.id)["mail"]
        assert step.action_status == "deferred"
        assert step.action_result["reason"] == "outside send window"
        assert step.action_result["held_until"] == _HoldOnce.until.isoformat()
        drain()
        assert smtp_server.messages == []
        with time_machine.travel(_HoldOnce.until + timedelta(seconds=1), tick=False):
            drain()
            drain()
    finally:
        CHAIN.remove(next(g for g in CHAIN if g.name == "test_hold"))
    assert len(smtp_server.messages) == 1
    states = states_by_node(acme.id, execution.id)
    assert states["mail"].action_status == "success" and states["tag"].action_status == "success"


def test_the_contact_page_says_why_the_email_was_not_sent(client, acme, alice, auth):
    contact = make_contact(acme, email="gone@example.test")
    _suppress(acme, "gone@example.test", detail={"code": 550, "text": "5.1.1 User unknown"})
    run(_welcome(acme, alice), contact)
    auth.login(alice)
    page = client.get(f"/contacts/{contact.id}").get_data(as_text=True)
    assert "Not sent:</strong> suppressed: hard bounce on " in page
    assert "550 5.1.1 User unknown" in page


def test_a_suppressed_phone_number_gets_no_sms(acme, alice, smtp_server):
    """The list is one place for every channel: a number suppressed for SMS
    (however it is written) skips send_sms; its e-mail still goes."""
    contact = make_contact(acme, email="ann@example.test", phone="+1 (555) 010-2000")
    _suppress(acme, "+15550102000", channel="sms", reason="manual", note="asked by text")
    specs, edges = chain(
        ("text", "send_sms", {"body": "Hi {{ contact.first_name }}"}), ("mail", "send_email", EMAIL)
    )
    execution = run(active_workflow(acme, alice, specs, edges), contact)
    steps = states_by_node(acme.id, execution.id)
    assert steps["text"].action_status == "skipped"
    assert steps["text"].action_result["reason"].startswith("suppressed: added by hand on ")
    assert "asked by text" in steps["text"].action_result["reason"]
    assert steps["mail"].action_status == "success" and len(smtp_server.messages) == 1
