"""A workflow's messages, from the engine's step to the receivers and back:
the step writes the outbox row, the dispatcher sends it and wakes the
execution, the engine finishes the step; a click starts a second workflow."""

from __future__ import annotations

import json
import re

from app.automation.delivery.signing import verify
from app.automation.engine.jobs import drain
from app.automation.lifecycle.publishing import activate_workflow
from app.extensions import db
from app.models import OutboxMessage
from app.tenancy import firm_context
from tests.engine.helpers import active_workflow, chain, run, states_by_node
from tests.factories import make_contact, make_workflow


def test_an_email_then_a_webhook_are_sent_once_and_the_execution_completes(
    acme, alice, smtp_server, receiver
):
    nodes, edges = chain(
        (
            "welcome",
            "send_email",
            {"subject": "Welcome {{ contact.first_name }}", "body_html": "<p>Hi</p>"},
        ),
        (
            "notify",
            "webhook",
            {"url": receiver.url + "/crm", "payload": {"who": "{{ contact.email }}"}},
        ),
    )
    workflow = active_workflow(acme, alice, nodes, edges)
    contact = make_contact(acme, first_name="Ann")
    execution = run(workflow, contact)

    assert execution.status == "completed", execution.last_error
    [email] = smtp_server.messages
    assert email["Subject"] == "Welcome Ann"
    [hook] = receiver.requests
    assert json.loads(hook["body"]) == {"who": contact.email}
    assert verify(acme.webhook_secret, hook["headers"], hook["body"])
    states = states_by_node(acme.id, execution.id)
    assert states["welcome"].action_status == "success"
    assert states["welcome"].action_result["message_id"] == email["Message-ID"]
    # Draining again sends nothing more.
    drain()
    assert len(smtp_server.messages) == 1 and len(receiver.requests) == 1
    with firm_context(acme.id):
        statuses = {m.node_id: m.status for m in db.session.query(OutboxMessage)}
    assert statuses == {"welcome": "sent", "notify": "sent"}


def test_a_webhook_that_keeps_failing_fails_the_execution(acme, alice, receiver):
    receiver.statuses = [500]
    nodes, edges = chain(
        ("notify", "webhook", {"url": receiver.url + "/crm", "max_attempts": 1}),
    )
    workflow = active_workflow(acme, alice, nodes, edges)
    execution = run(workflow, make_contact(acme))
    assert execution.status == "failed"
    assert "HTTP 500" in (execution.last_error or "")


def test_a_click_in_a_workflow_email_starts_a_click_triggered_workflow(
    client, acme, alice, smtp_server
):
    nodes, edges = chain(
        (
            "offer",
            "send_email",
            {"subject": "Offer", "body_html": '<a href="https://example.com/offer">offer</a>'},
        ),
    )
    workflow = active_workflow(acme, alice, nodes, edges)
    follow_up = make_workflow(
        acme,
        name="Clicked",
        nodes=[{"node_id": "tag", "node_type": "add_tag", "configuration": {"tag": "clicked"}}],
        triggers=[{"trigger_type": "email_clicked", "configuration": {}}],
    )
    with firm_context(acme.id):
        activate_workflow(follow_up, alice)
        db.session.commit()
    contact = make_contact(acme)
    run(workflow, contact)
    body = smtp_server.messages[0].get_body(preferencelist=("html",)).get_content()
    link = re.search(r'href="http://localhost(/t/c/[^"]+)"', body).group(1)

    assert client.get(link).status_code == 302
    drain()
    with firm_context(acme.id):
        db.session.expire_all()
        contact = db.session.get(type(contact), contact.id)
        assert "clicked" in contact.tag_names


def test_a_batch_resuming_sent_messages_reads_their_outbox_rows_in_one_query(
    acme, alice, smtp_server
):
    from sqlalchemy import event

    from tests.engine.helpers import execution, start

    nodes, edges = chain(
        ("welcome", "send_email", {"subject": "Hi", "body_text": "Hello"}),
        ("tag", "add_tag", {"tag": "welcomed"}),
    )
    workflow = active_workflow(acme, alice, nodes, edges)
    ids = start(workflow, *(make_contact(acme) for _ in range(4)))
    reads = []

    def count(conn, cursor, statement, *args):
        # The engine's lookup of a visit's row (the dispatcher reads others).
        if statement.lstrip().startswith("SELECT") and (
            "outbox_messages.response" in statement
            and "WHERE outbox_messages.execution_id" in statement
        ):
            reads.append(statement)

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        drain()
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
    assert len(smtp_server.messages) == 4
    assert [execution(acme.id, i).status for i in ids] == ["completed"] * 4
    assert len(reads) == 1  # the resumed batch's lookup, not one per message
