"""Automatic pause: a real SMTP server answers 550 to enough of the firm's
last e-mails; sending pauses, due messages are held (at their step and in
the outbox), admins are told and every page says so; resume sends what was
held, each once."""

from __future__ import annotations

from sqlalchemy import select

from app.automation.delivery.dispatcher import deliver_due
from app.automation.engine.jobs import drain
from app.extensions import db
from app.models import Notification, OutboxMessage
from app.tenancy import firm_context
from tests.delivery.conftest import queue_message, reload
from tests.engine.helpers import active_workflow, chain, start, states_by_node
from tests.factories import make_contact

EMAIL = {"subject": "News", "body_text": "Hi", "max_attempts": 1}
SETTINGS = "/api/v1/settings/sending/"


def _rule(firm, **sending):
    with firm_context(firm.id):
        firm.settings = {**(firm.settings or {}), "sending": sending}
        db.session.commit()


def _workflow(firm, user, name):
    specs, edges = chain(("mail", "send_email", EMAIL), ("tag", "add_tag", {"tag": "after"}))
    return active_workflow(firm, user, specs, edges, name=name)


def test_550s_pause_sending_and_resume_sends_what_was_held_once(
    api, client, auth, acme, alice, smtp_server
):
    _rule(acme, pause_on_bounce_rate={"percent": 20, "window": 10})
    good = [make_contact(acme, email=f"ok{i}@example.test") for i in range(7)]
    bad = [make_contact(acme, email=f"gone{i}@example.test") for i in range(3)]
    for contact in bad:
        smtp_server.refuse[contact.email] = "550 5.1.1 No such user here"
    workflow = _workflow(acme, alice, "News")
    for contact in good + bad:  # one at a time: the bounces come last
        start(workflow, contact)
        drain()
    assert len(smtp_server.messages) == 7
    settings = api.get(SETTINGS).json
    assert settings["paused"] is True
    assert settings["paused_reason"].startswith("3 of the last 10 e-mails bounced hard")

    # Admins are told; every page says so.
    with firm_context(acme.id):
        notes = db.session.scalars(select(Notification)).all()
    assert [n.user_id for n in notes] == [alice.id]
    assert "Sending is paused" in notes[0].message
    auth.login(alice)
    page = client.get("/contacts/").get_data(as_text=True)
    assert "data-sending-paused" in page and "Review and resume" in page

    # While paused: new messages wait at their step, nothing goes out.
    later = [make_contact(acme, email=f"later{i}@example.test") for i in range(5)]
    ids = start(_workflow(acme, alice, "Later"), *later)
    drain()
    drain()
    assert len(smtp_server.messages) == 7
    for execution_id in ids:
        step = states_by_node(acme.id, execution_id)["mail"]
        assert step.action_status == "deferred" and step.action_result["gate"] == "pause"
        assert step.action_result["reason"].startswith("sending paused: 3 of the last 10")

    resumed = api.post(SETTINGS + "resume/")
    assert resumed.status_code == 200 and resumed.json["paused"] is False
    drain()
    drain()
    drain()
    received = sorted(to for _, tos in smtp_server.envelopes for to in tos)
    assert received == sorted(c.email for c in good + later)  # each once, none lost
    for execution_id in ids:
        states = states_by_node(acme.id, execution_id)
        assert states["mail"].action_status == "success"
        assert states["tag"].action_status == "success"


def test_a_message_already_written_waits_in_the_outbox_while_paused(api, acme, smtp_server):
    message = queue_message(acme, "send_email", EMAIL)
    assert api.patch(SETTINGS, json={"paused": True}).json["paused"] is True
    deliver_due()
    held = reload(message)
    assert held.status == "pending" and held.response["held"]["gate"] == "pause"
    assert smtp_server.messages == []
    assert api.post(SETTINGS + "resume/").status_code == 200
    deliver_due()
    deliver_due()
    assert reload(message).status == "sent"
    assert len(smtp_server.messages) == 1
    with firm_context(acme.id):
        assert db.session.scalars(select(OutboxMessage)).one().attempts == 1


def test_marketers_cannot_resume(api_as, bob, acme):
    assert api_as(bob).post(SETTINGS + "resume/").status_code == 403
