"""Server-side template injection in e-mail subjects/bodies and webhook
payloads: refused at save naming the field, or -- through the send path,
with a real SMTP server and HTTP receiver -- refused or rendered harmlessly
within the time and size caps. Nothing of Python's internals (classes,
globals, config, memory addresses) ever reaches a message or an error."""

from __future__ import annotations

import json
import time

import pytest
from sqlalchemy import select

from app.automation.delivery.dispatcher import deliver_due
from app.automation.delivery.outbox import build_outbox_row
from app.automation.engine.jobs import drain
from app.automation.templating.render import TemplateError
from app.extensions import db
from app.models import OutboxMessage, WorkflowExecution, WorkflowNode
from app.tenancy import firm_context
from tests.api.conftest import ApiClient
from tests.delivery.conftest import (
    Receiver,
    SmtpInbox,
    _Controller,
    configured,
    make_execution,
)
from tests.engine.helpers import active_workflow, start
from tests.factories import make_contact, make_workflow
from tests.security.payloads import (
    INTERNALS,
    LEAKS,
    SSTI_AT_RUNTIME,
    SSTI_REFUSED_AT_SAVE,
    SSTI_SLOW,
)
from tests.web.conftest import HX

NODES = "/api/v1/automation/nodes/"


@pytest.fixture
def api(client, token_for, alice) -> ApiClient:
    return ApiClient(client, token_for(alice))


@pytest.fixture
def mail_and_hooks(app):
    """A real SMTP server and a real HTTP receiver, both on 127.0.0.1."""
    inbox = SmtpInbox()
    controller = _Controller(inbox, hostname="127.0.0.1", port=0)
    controller.start()
    receiver = Receiver()
    settings = {
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": controller.port,
        "SMTP_STARTTLS": False,
        "WEBHOOK_ALLOW_PRIVATE": True,
    }
    try:
        with configured(app, **settings):
            yield inbox, receiver
    finally:
        receiver.close()
        controller.stop()


# (node type, configuration holding the template, the field the API names)
def _email(field: str):
    def make(template: str) -> dict:
        config = {"subject": "Hello", "body_text": "Hello"}
        config[field] = template
        return config

    return "send_email", make, f"configuration.{field}"


def _webhook(template: str) -> dict:
    return {"url": "http://127.0.0.1:9/", "payload": {"data": {"x": template}}}


PLACES = [
    _email("subject"),
    _email("body_html"),
    _email("body_text"),
    ("webhook", _webhook, "configuration.payload.data.x"),
]
# Also refused at save by the API (rendered by their executors at run time).
SAVE_ONLY_PLACES = [
    (
        "webhook",
        lambda t: {"url": "http://127.0.0.1:9/", "headers": {"X-Name": t}},
        "configuration.headers.X-Name",
    ),
    ("create_task", lambda t: {"title": "Call", "description": t}, "configuration.description"),
    ("create_deal", lambda t: {"title": t}, "configuration.title"),
    ("add_tag", lambda t: {"tag": t}, "configuration.tag"),
    ("internal_notification", lambda t: {"message": t}, "configuration.message"),
    ("send_sms", lambda t: {"body": t}, "configuration.body"),
]


def test_every_sandbox_escape_is_refused_at_save_naming_the_field(api, acme, app):
    workflow = make_workflow(acme)
    refused = 0
    with configured(app, WEBHOOK_ALLOW_PRIVATE=True):
        for node_type, make, field in PLACES + SAVE_ONLY_PLACES:
            for i, template in enumerate(SSTI_REFUSED_AT_SAVE):
                response = api.post(
                    NODES,
                    json={
                        "workflow": workflow.id,
                        "node_id": f"n{i}",
                        "node_type": node_type,
                        "configuration": make(template),
                    },
                )
                assert response.status_code == 422, (template, field, response.get_json())
                assert field in response.get_json()["error"]["fields"], (template, field)
                refused += 1
    with firm_context(acme.id):
        assert db.session.scalars(select(WorkflowNode)).all() == []
    print(f"\nssti save: {refused} injections refused with the field named")


def test_the_builder_inspector_refuses_them_too(client, auth, alice, acme):
    workflow = make_workflow(
        acme,
        nodes=[
            {
                "node_id": "mail",
                "node_type": "send_email",
                "configuration": {"subject": "Hi", "body_text": "Hello"},
            }
        ],
    )
    auth.login(alice)
    token = auth.csrf_token("/automation")
    for template in SSTI_REFUSED_AT_SAVE:
        response = client.post(
            f"/automation/builder/{workflow.id}/nodes/mail",
            data={"csrf_token": token, "label": "Mail", "subject": template, "body_text": "x"},
            headers=HX,
        )
        assert response.status_code == 422, template
    with firm_context(acme.id):
        db.session.expire_all()
        assert db.session.scalars(select(WorkflowNode.configuration)).one()["subject"] == "Hi"


def _leaks(text: str, words=INTERNALS) -> list[str]:
    return [word for word in words if word in text]


def _render_everywhere(firm, contact, execution, receiver) -> tuple[list, list]:
    """Each template in each place through the outbox renderer (what the
    engine calls for a message step); returns (rows, refusal messages)."""
    rows, refusals = [], []
    n = 0
    for node_type, make, field in PLACES:
        for template in SSTI_REFUSED_AT_SAVE + SSTI_AT_RUNTIME:
            config = make(template)
            if node_type == "webhook":
                config["url"] = receiver.url + "/in"
                config["headers"] = {"X-Injected": template}
            n += 1
            node = {"node_id": f"n{n}", "node_type": node_type, "configuration": config}
            try:
                row = build_outbox_row(
                    firm_id=firm.id,
                    execution=execution,
                    node=node,
                    visit=1,
                    context=None,
                    contact=contact,
                )
            except TemplateError as exc:
                refusals.append((field, template, str(exc)))
                continue
            rows.append(OutboxMessage(**row))
    return rows, refusals


def test_injections_on_the_send_path_are_refused_or_harmless(acme, mail_and_hooks):
    # Rows written straight to the database skip the save checks: the
    # sandbox alone must hold, in every place, and what it lets through is
    # really sent (real SMTP server, real HTTP receiver) and checked.
    inbox, receiver = mail_and_hooks
    contact = make_contact(acme, first_name="Ann", email="ann@example.com")
    workflow = make_workflow(acme, name="Injections")
    execution = make_execution(acme, workflow, contact)
    began = time.monotonic()
    with firm_context(acme.id):
        rows, refusals = _render_everywhere(acme, contact, execution, receiver)
        db.session.add_all(rows)
        db.session.commit()
    rendered = time.monotonic() - began
    while deliver_due():
        pass
    for _, template, message in refusals:
        assert not _leaks(message, LEAKS), (template, message)
    with firm_context(acme.id):
        db.session.expire_all()
        stored = db.session.scalars(select(OutboxMessage)).all()
    assert len(stored) == len(rows)
    for row in stored:
        assert row.status == "sent", (row.node_id, row.status, row.last_error)
        text = json.dumps([row.subject, row.body_html, row.body_text, row.payload])
        assert not _leaks(text), (row.node_id, text[:300])
    for message in inbox.messages:
        assert not _leaks(message.as_string()), message["Subject"]
    for request in receiver.requests:
        assert not _leaks(request["body"].decode() + json.dumps(request["headers"]))
    assert len(inbox.messages) + len(receiver.requests) == len(rows)
    print(
        f"\nssti send: {len(rows) + len(refusals)} injections ({len(refusals)} refused, "
        f"{len(rows)} rendered harmlessly and sent: {len(inbox.messages)} e-mails, "
        f"{len(receiver.requests)} webhooks), leaks 0, rendering {rendered:.1f}s"
    )


def test_an_injected_step_fails_its_execution_cleanly_within_the_time_cap(
    acme, alice, mail_and_hooks
):
    inbox, _ = mail_and_hooks
    contact = make_contact(acme)
    templates = [SSTI_REFUSED_AT_SAVE[0], SSTI_AT_RUNTIME[0], *SSTI_SLOW]
    runs = []
    for template in templates:
        config = {"subject": "Hi", "body_html": template}
        workflow = active_workflow(
            acme,
            alice,
            [{"node_id": "mail", "node_type": "send_email", "configuration": config}],
            [],
        )
        runs.append(start(workflow, contact)[0])
    began = time.monotonic()
    drain()
    elapsed = time.monotonic() - began
    with firm_context(acme.id):
        db.session.expire_all()
        executions = [db.session.get(WorkflowExecution, i) for i in runs]
    assert [e.status for e in executions] == ["failed", "failed", "failed"], [
        e.last_error for e in executions
    ]
    assert "not allowed" in executions[0].last_error
    assert "took too long" in executions[2].last_error
    assert not any(_leaks(e.last_error, LEAKS) for e in executions)
    assert inbox.messages == []
    assert elapsed < 10, elapsed
