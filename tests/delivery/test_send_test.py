""" "Send a test to me": the rendered step goes to the user through SMTP,
marked as a test, never counted, never tracked as the contact."""

from __future__ import annotations

from sqlalchemy import select

from app.automation.analytics import flow_queries as fq
from app.automation.analytics.queries import Period
from app.automation.delivery.test_send import send_test_email
from app.extensions import db
from app.models import OutboxMessage
from app.tenancy import firm_context
from tests.delivery.conftest import configured
from tests.factories import make_contact, make_workflow

VALUES = {
    "subject": "Welcome, {{ contact.first_name }}",
    "body_html": '<p>Hi {{ contact.first_name }}, <a href="https://example.com/start">start</a></p>',
    "body_text": "",
    "from_email": "",
}


def email_workflow(firm):
    return make_workflow(
        firm,
        nodes=[
            {
                "node_id": "welcome",
                "node_type": "send_email",
                "configuration": {"subject": "x", "body_text": "x"},
            }
        ],
    )


def test_it_sends_the_rendered_step_to_the_user(app, acme, alice, smtp_server):
    workflow = email_workflow(acme)
    contact = make_contact(acme, email="hana@example.com", first_name="Hana")
    with firm_context(acme.id):
        result = send_test_email(workflow, "welcome", VALUES, contact, alice)
    assert result.sent and "alice@acme.test" in result.message
    (message,) = smtp_server.messages
    assert smtp_server.envelopes[0][1] == ["alice@acme.test"]
    assert message["Subject"] == "[Test] Welcome, Hana"
    assert message["X-Automation-Test"] == "yes"
    html = message.get_body(("html",)).get_content()
    assert "Hi Hana" in html
    # Not tracked as the contact: the link is the original, no pixel.
    assert 'href="https://example.com/start"' in html
    assert "/t/o/" not in html and "/t/c/" not in html and "/t/u/" not in html
    with firm_context(acme.id):
        row = db.session.scalars(select(OutboxMessage)).one()
        assert (row.status, row.contact_id, row.execution_id) == ("test", None, None)
        assert row.to_address == "alice@acme.test" and row.sent_at is not None
        # Never counted: the e-mail node has no sent message.
        assert fq.email_counts(Period(workflow.id)).get("welcome", {}).get("sent", 0) == 0


def test_the_sample_contact_is_used_when_none_is_chosen(app, acme, alice, smtp_server):
    workflow = email_workflow(acme)
    from app.web.builder_inspector import SAMPLE_CONTACT

    with firm_context(acme.id):
        send_test_email(workflow, "welcome", VALUES, SAMPLE_CONTACT, alice)
    assert smtp_server.messages[0]["Subject"] == "[Test] Welcome, Ada"


def test_without_smtp_it_is_kept_in_the_outbox_and_says_so(app, acme, alice):
    workflow = email_workflow(acme)
    with configured(app, SMTP_HOST=None), firm_context(acme.id):
        result = send_test_email(workflow, "welcome", VALUES, make_contact(acme), alice)
        assert not result.sent and "No SMTP server" in result.message
        assert db.session.scalars(select(OutboxMessage.status)).all() == ["test"]


def test_the_inspector_button_sends_and_a_broken_template_is_refused(
    client, auth, acme, alice, smtp_server
):
    workflow = email_workflow(acme)
    auth.login(alice)
    token = auth.csrf_token("/automation")
    url = f"/automation/builder/{workflow.id}/nodes/welcome/send-test"
    response = client.post(
        url, data={**VALUES, "csrf_token": token}, headers={"HX-Request": "true"}
    )
    assert response.status_code == 200
    assert "Test sent to alice@acme.test" in response.get_data(as_text=True)
    broken = {**VALUES, "subject": "{{ contact.first_name ", "csrf_token": token}
    response = client.post(url, data=broken, headers={"HX-Request": "true"})
    assert response.status_code == 422
    assert "does not render" in response.get_data(as_text=True)
    assert len(smtp_server.messages) == 1
    with firm_context(acme.id):
        assert db.session.scalars(select(OutboxMessage)).all().__len__() == 1
