"""A marketer cannot change what starts a live workflow without an admin.

With ``require_approval`` a marketer's publication is a request an admin
decides on. A trigger is part of what is published, like a node: changing
an active workflow's trigger (its filter, its type, switching it off,
removing it, adding one -- through the API or the builder's triggers
panel) must change nothing that starts the workflow until the admin
approves. Before, the bus read the edited rows directly, so a marketer
could point a live workflow at a whole new audience, or open it to API
starts, at once.
"""

from __future__ import annotations

import pytest

from app.automation.lifecycle.approvals import set_requires_approval
from app.automation.lifecycle.publishing import activate_workflow
from app.automation.triggers.scheduler import run_due_date_triggers
from app.extensions import db
from app.tenancy import firm_context
from tests.factories import WELCOME_EDGES, WELCOME_NODES, make_contact, make_workflow

API = "/api/v1"
HX = {"HX-Request": "true"}


@pytest.fixture
def live(acme, alice):
    """An active workflow of a firm that requires approval, started by the
    tag "old"; published by the admin (Alice). Bob is a marketer."""
    workflow = make_workflow(
        acme,
        nodes=WELCOME_NODES,
        edges=WELCOME_EDGES,
        triggers=[
            {"trigger_type": "contact_tag_added", "configuration": {"tag": "old"}},
            # A second way in (no event of it is sent here): the workflow
            # stays publishable when the first is switched off or removed.
            {"trigger_type": "page_visited", "configuration": {"url_contains": "/never"}},
        ],
    )
    with firm_context(acme.id):
        activate_workflow(workflow, alice)
        db.session.commit()
        set_requires_approval(acme, True)
    return workflow


@pytest.fixture
def headers(token_for, bob):
    """Bob, the marketer, through the API."""
    return token_for(bob)


@pytest.fixture
def approve(client, headers, token_for, alice):
    """Bob asks to publish the workflow as it is now; Alice approves."""
    admin = token_for(alice)

    def run(workflow) -> None:
        asked = client.post(
            f"{API}/automation/workflows/{workflow.id}/publish/", json={}, headers=headers
        )
        assert asked.status_code == 202, asked.json
        approval = asked.json["approval"]["id"]
        done = client.post(
            f"{API}/automation/approvals/{approval}/approve/", json={}, headers=admin
        )
        assert done.status_code == 200, done.json

    return run


def _trigger_id(workflow) -> int:
    with firm_context(workflow.firm_id):
        db.session.expire_all()
        return workflow.triggers[0].id


def starts(client, headers, acme, event_type: str, data: dict) -> bool:
    """Does this event, for a new contact, start a workflow?"""
    contact = make_contact(acme)
    body = {"type": event_type, "contact_id": contact.id, "data": data}
    response = client.post(f"{API}/events/", json=body, headers=headers)
    assert response.status_code == 202, response.json
    return bool(response.json["executions"])


@pytest.mark.parametrize(
    "edit",
    [
        {"configuration": {"tag": "new"}},
        {"trigger_type": "email_opened", "configuration": {}},
        {"is_active": False},
    ],
    ids=["filter", "type", "switched-off"],
)
def test_a_marketers_trigger_patch_waits_for_approval(client, headers, approve, acme, live, edit):
    trigger = _trigger_id(live)
    changed = client.patch(f"{API}/automation/triggers/{trigger}/", json=edit, headers=headers)
    assert changed.status_code == 200, changed.json
    # The draft says what the marketer wants ...
    assert client.get(f"{API}/automation/triggers/{trigger}/", headers=headers).json[
        "is_active"
    ] is edit.get("is_active", True)
    # ... but the live workflow still listens to what the admin published.
    assert starts(client, headers, acme, "contact_tag_added", {"tag": "old"})
    assert not starts(client, headers, acme, "contact_tag_added", {"tag": "new"})
    assert not starts(client, headers, acme, "email_opened", {})

    approve(live)
    old_still = starts(client, headers, acme, "contact_tag_added", {"tag": "old"})
    assert old_still is False
    assert starts(client, headers, acme, "contact_tag_added", {"tag": "new"}) is (
        edit.get("configuration") == {"tag": "new"}
    )
    assert starts(client, headers, acme, "email_opened", {}) is (
        edit.get("trigger_type") == "email_opened"
    )


def test_a_marketers_trigger_removal_waits_for_approval(client, headers, approve, acme, live):
    trigger = _trigger_id(live)
    assert (
        client.delete(f"{API}/automation/triggers/{trigger}/", headers=headers).status_code == 204
    )
    assert starts(client, headers, acme, "contact_tag_added", {"tag": "old"})
    approve(live)
    assert not starts(client, headers, acme, "contact_tag_added", {"tag": "old"})


def test_a_marketer_cannot_open_a_live_workflow_to_api_starts(client, headers, approve, acme, live):
    added = client.post(
        f"{API}/automation/triggers/",
        json={"workflow": live.id, "trigger_type": "api", "configuration": {}},
        headers=headers,
    )
    assert added.status_code == 201, added.json
    contact = make_contact(acme)
    call = f"{API}/automation/workflows/{live.id}/trigger/"
    refused = client.post(call, json={"contact_id": contact.id}, headers=headers)
    assert refused.status_code == 409, refused.json
    approve(live)
    assert client.post(call, json={"contact_id": contact.id}, headers=headers).status_code == 201


def test_a_marketers_new_date_trigger_does_not_run_before_approval(
    client, headers, approve, acme, live, time_machine
):
    from datetime import UTC, datetime

    def clock(hour: int, minute: int = 0):
        time_machine.move_to(datetime(2099, 12, 1, hour, minute, tzinfo=UTC), tick=False)

    clock(8)
    make_contact(acme)
    added = client.post(
        f"{API}/automation/triggers/",
        json={
            "workflow": live.id,
            "trigger_type": "date_reached",
            "configuration": {"at": "2099-12-01T09:00:00Z"},
        },
        headers=headers,
    )
    assert added.status_code == 201, added.json
    clock(9, 10)
    assert run_due_date_triggers() == 0
    moved = client.patch(
        f"{API}/automation/triggers/{added.json['id']}/",
        json={"configuration": {"at": "2099-12-01T10:00:00Z"}},
        headers=headers,
    )
    assert moved.status_code == 200, moved.json
    clock(9, 15)
    approve(live)
    clock(10, 5)
    assert run_due_date_triggers() == 1


def test_a_marketers_edit_in_the_builder_waits_for_approval(
    client, auth, headers, approve, acme, bob, live
):
    trigger = _trigger_id(live)
    assert auth.login(bob).status_code == 302
    token = auth.csrf_token("/automation")
    saved = client.post(
        f"/automation/builder/{live.id}/triggers/{trigger}",
        data={"csrf_token": token, "tag": "new"},
        headers=HX,
    )
    assert saved.status_code == 200
    assert starts(client, headers, acme, "contact_tag_added", {"tag": "old"})
    assert not starts(client, headers, acme, "contact_tag_added", {"tag": "new"})
    panel = saved.get_data(as_text=True)
    assert "unpublished changes" in panel  # the draft is shown, marked as not live
    approve(live)
    assert starts(client, headers, acme, "contact_tag_added", {"tag": "new"})
    assert not starts(client, headers, acme, "contact_tag_added", {"tag": "old"})
