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

from app.automation.engine import drain
from app.extensions import db
from app.models import OutboxMessage, WorkflowExecution, WorkflowNode
from app.tenancy import firm_context
from tests.api.conftest import ApiClient
from tests.delivery.conftest import Receiver, SmtpInbox, _Controller, configured
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


def test_every_sandbox_escape_is_refused_at_save_naming_the_field(api, acme, app):
    workflow = make_workflow(acme)
    refused = 0
    with configured(app, WEBHOOK_ALLOW_PRIVATE=True):
        for node_type, make, field in PLACES:
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


def test_injections_that_reach_the_send_path_are_refused_or_harmless(acme, alice, mail_and_hooks):
    # Workflows written straight to the database skip the save checks: the
    # sandbox alone must hold. Every template in every place, one contact.
    inbox, receiver = mail_and_hooks
    contact = make_contact(acme, first_name="Ann", email="ann@example.com")
    runs = []
    setup = time.monotonic()
    # What passes the save checks goes everywhere; the save-refused escapes
    # once (subject, text sandbox) and the time bomb once (HTML sandbox).
    extra = {
        "configuration.subject": SSTI_REFUSED_AT_SAVE,
        "configuration.body_html": SSTI_SLOW,
    }
    for node_type, make, field in PLACES:
        if field == "configuration.body_text":
            continue  # the same sandbox as the subject
        templates = SSTI_AT_RUNTIME + extra.get(field, [])
        for template in templates:
            config = make(template)
            if node_type == "webhook":
                config["url"] = receiver.url + "/in"
            workflow = active_workflow(
                acme,
                alice,
                [{"node_id": "step", "node_type": node_type, "configuration": config}],
                [],
            )
            runs.append((start(workflow, contact)[0], field, template))
    began = time.monotonic()
    setup = began - setup
    drain()
    elapsed = time.monotonic() - began

    failed = completed = 0
    with firm_context(acme.id):
        db.session.expire_all()
        for execution_id, _field, template in runs:
            execution = db.session.get(WorkflowExecution, execution_id)
            row = db.session.scalars(
                select(OutboxMessage).where(OutboxMessage.execution_id == execution_id)
            ).first()
            assert execution.status in ("completed", "failed"), (
                template,
                execution.status,
                row and (row.status, row.last_error, row.attempts, row.next_attempt_at),
            )
            if execution.status == "failed":
                failed += 1
                assert not _leaks(execution.last_error or "", LEAKS), (
                    template,
                    execution.last_error,
                )
            else:
                completed += 1
        rows = db.session.scalars(select(OutboxMessage)).all()
    for row in rows:
        stored = json.dumps(
            [row.subject, row.body_html, row.body_text, row.payload, row.last_error]
        )
        assert not _leaks(stored), (row.node_id, stored[:300])
    for message in inbox.messages:
        assert not _leaks(message.as_string()), message["Subject"]
    for request in receiver.requests:
        assert not _leaks(request["body"].decode()), request["body"][:300]
    # Every bomb stopped at its cap: the time bombs within ~1 s each.
    assert elapsed < 30, elapsed
    print(
        f"\nssti send: {len(runs)} injections ({failed} refused, {completed} harmless), "
        f"{len(inbox.messages)} e-mails and {len(receiver.requests)} webhooks checked, "
        f"leaks 0, setup {setup:.1f}s, send {elapsed:.1f}s"
    )
