"""Triggers fired from the browser UI: a tag added on the contact page,
and the manual start button."""

from __future__ import annotations

from tests.factories import make_contact
from tests.triggers.conftest import executions_of


def test_a_tag_added_on_the_contact_page_fires_with_source_ui(
    client, auth, acme, bob, live_workflow
):
    workflow = live_workflow(acme, "contact_tag_added", {"tag": "vip"})
    contact = make_contact(acme)
    auth.login(bob)
    token = auth.csrf_token(f"/contacts/{contact.id}")
    response = client.post(f"/contacts/{contact.id}/tags", data={"tag": "vip", "csrf_token": token})
    assert response.status_code in (200, 302, 303)
    (execution,) = executions_of(acme, workflow)
    assert execution.contact_id == contact.id
    assert execution.context_data["source"] == "ui"


def test_the_start_button_runs_the_manual_trigger(client, auth, acme, bob, live_workflow):
    workflow = live_workflow(acme, "manual")
    contact = make_contact(acme)
    auth.login(bob)
    token = auth.csrf_token(f"/contacts/{contact.id}")
    client.post(
        f"/contacts/{contact.id}/start", data={"workflow_id": workflow.id, "csrf_token": token}
    )
    (execution,) = executions_of(acme, workflow)
    assert (execution.contact_id, execution.trigger_type) == (contact.id, "manual")
    assert execution.context_data["started_by"] == bob.email
