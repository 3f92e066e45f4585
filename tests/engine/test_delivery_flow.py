"""Message steps through the outbox and the dispatcher, with a real SMTP
server and a real HTTP receiver: an execution waits for its delivery, is
woken when the message is sent, and a step's message goes out once."""

from __future__ import annotations

import threading

from sqlalchemy import select

from app.automation.engine.jobs import drain
from app.automation.engine.operator import retry_execution
from app.extensions import db
from app.models import DeadLetter, OutboxMessage
from app.tenancy import firm_context
from tests.engine.helpers import active_workflow, chain, execution, run, start, states_by_node
from tests.factories import make_contact

MAIL = ("mail", "send_email", {"subject": "Hi {{ contact.first_name }}", "body_text": "Hello"})
AFTER = ("after", "add_tag", {"tag": "mailed"})


def test_an_email_step_waits_for_its_delivery_then_continues(acme, alice, smtp_server):
    specs, edges = chain(MAIL, AFTER)
    workflow = active_workflow(acme, alice, specs, edges)
    contact = make_contact(acme, first_name="Uma", email="uma@example.com")
    done = run(workflow, contact)  # drain() also delivers and wakes
    assert done.status == "completed", done.last_error
    assert done.execution_path == ["mail", "after"]
    assert len(smtp_server.messages) == 1
    assert smtp_server.messages[0]["Subject"] == "Hi Uma"
    state = states_by_node(acme.id, done.id)["mail"]
    assert (state.action_status, state.action_result["status"]) == ("success", "sent")


def test_a_webhook_step_is_sent_once_with_an_idempotency_key(acme, alice, receiver):
    specs, edges = chain(("hook", "webhook", {"url": receiver.url + "/in"}), AFTER)
    workflow = active_workflow(acme, alice, specs, edges)
    done = run(workflow, make_contact(acme))
    assert done.status == "completed", done.last_error
    assert len(receiver.requests) == 1
    assert receiver.requests[0]["headers"]["idempotency-key"]


def test_a_failed_delivery_fails_the_execution_and_retry_sends_it_again(acme, alice, receiver, app):
    hook = ("hook", "webhook", {"url": receiver.url + "/in", "max_attempts": 1})
    specs, edges = chain(hook, AFTER)
    workflow = active_workflow(acme, alice, specs, edges)
    receiver.statuses = [500]
    failed = run(workflow, make_contact(acme))
    assert failed.status == "failed"
    assert failed.current_node == "hook"
    with firm_context(acme.id):
        assert db.session.scalars(select(DeadLetter.node_id)).all() == ["hook"]
        assert retry_execution(failed) is True
    drain()
    done = execution(acme.id, failed.id)
    assert done.status == "completed", done.last_error
    keys = {request["headers"]["idempotency-key"] for request in receiver.requests}
    assert len(receiver.requests) == 2 and len(keys) == 1
    with firm_context(acme.id):
        assert db.session.scalars(select(OutboxMessage.status)).all() == ["sent"]


def test_two_drains_at_once_send_each_step_once(app, acme, alice, smtp_server):
    specs, edges = chain(MAIL, AFTER)
    workflow = active_workflow(acme, alice, specs, edges)
    start(workflow, *[make_contact(acme) for _ in range(30)])
    errors = []

    def body():
        with app.app_context():
            try:
                drain()
            except Exception as exc:
                errors.append(exc)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=body) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    drain()
    assert not errors
    ids = [message["Message-ID"] for message in smtp_server.messages]
    assert len(ids) == 30 and len(set(ids)) == 30
