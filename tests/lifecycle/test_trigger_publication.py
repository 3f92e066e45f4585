"""Triggers belong to the published version, like nodes and edges.

An edit of an active workflow's trigger (API or builder) edits the draft;
events, dates and API starts keep using the published trigger until the
draft is published. Without require_approval that is the marketer's own
publish (as for a node edit, nothing goes live by itself).
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.automation.lifecycle.publishing import (
    activate_workflow,
    publish,
    published_triggers,
    rollback,
)
from app.automation.triggers.bus import emit
from app.extensions import db
from app.models import PublishedTrigger, WorkflowExecution, WorkflowTrigger
from app.tenancy import firm_context
from tests.factories import WELCOME_EDGES, WELCOME_NODES, make_contact, make_workflow

API = "/api/v1/automation"
HX = {"HX-Request": "true"}


@pytest.fixture
def live(acme, alice):
    workflow = make_workflow(
        acme,
        nodes=WELCOME_NODES,
        edges=WELCOME_EDGES,
        triggers=[
            {"trigger_type": "contact_tag_added", "configuration": {"tag": "old"}},
            {"trigger_type": "manual"},
        ],
    )
    with firm_context(acme.id):
        activate_workflow(workflow, alice)
        db.session.commit()
    return workflow


def _starts(acme, tag: str) -> bool:
    contact = make_contact(acme)
    return bool(emit(acme.id, "contact_tag_added", contact.id, {"tag": tag}, source="test"))


def _first_trigger(workflow) -> int:
    with firm_context(workflow.firm_id):
        db.session.expire_all()
        return workflow.triggers[0].id


def _live(workflow) -> list[tuple]:
    with firm_context(workflow.firm_id):
        db.session.expire_all()
        return [
            (t.id, t.draft_id, t.trigger_type, t.configuration)
            for t in published_triggers(workflow)
        ]


def test_a_patch_without_approval_waits_for_the_publish_and_then_applies(
    client, token_for, acme, bob, live
):
    """Bob is a marketer of a firm without require_approval: his publish
    is direct, but his edit alone changes nothing live."""
    headers = token_for(bob)
    trigger = _first_trigger(live)
    patched = client.patch(
        f"{API}/triggers/{trigger}/", json={"configuration": {"tag": "new"}}, headers=headers
    )
    assert patched.status_code == 200
    assert patched.json["configuration"] == {"tag": "new"}  # the API shows the draft
    assert _starts(acme, "old") and not _starts(acme, "new")

    published = client.post(f"{API}/workflows/{live.id}/publish/", json={}, headers=headers)
    assert published.status_code == 200, published.json
    assert _starts(acme, "new") and not _starts(acme, "old")


def test_a_node_edit_on_an_active_workflow_also_waits_for_the_publish(
    client, token_for, acme, bob, live
):
    """The rule triggers now follow: the engine runs the published version."""
    headers = token_for(bob)
    with firm_context(acme.id):
        node = live.node_by_key("send_welcome_email").id
    client.patch(
        f"{API}/nodes/{node}/",
        json={"configuration": {"subject": "Changed", "body_text": "x"}},
        headers=headers,
    )
    versions = client.get(f"{API}/workflows/{live.id}/versions/", headers=headers).json
    assert [v["number"] for v in versions["results"]] == [1]


def test_publishing_keeps_a_triggers_live_id_and_date_cursor(acme, alice, live):
    before = _live(live)
    (tag_live, tag_draft, _, _), _manual = before
    assert tag_draft == _first_trigger(live)
    with firm_context(acme.id):
        row = db.session.get(PublishedTrigger, tag_live)
        from app.clock import now

        moment = now()
        row.scheduled_through = moment
        trigger = db.session.get(WorkflowTrigger, tag_draft)
        trigger.configuration = {"tag": "new"}
        db.session.commit()
        publish(live, alice)
    after = _live(live)
    assert after[0] == (tag_live, tag_draft, "contact_tag_added", {"tag": "new"})
    with firm_context(acme.id):
        assert db.session.get(PublishedTrigger, tag_live).scheduled_through == moment


def test_a_removed_trigger_stops_at_the_publish_and_its_executions_stay(acme, alice, live):
    assert _starts(acme, "old")
    (tag_live, tag_draft, _, _), manual = _live(live)
    with firm_context(acme.id):
        db.session.delete(db.session.get(WorkflowTrigger, tag_draft))
        db.session.commit()
    assert _starts(acme, "old")  # still live
    with firm_context(acme.id):
        publish(live, alice)
    assert not _starts(acme, "old")
    assert _live(live) == [manual]
    with firm_context(acme.id):
        rows = db.session.scalars(select(WorkflowExecution.trigger_id)).all()
        assert rows == [None, None]  # started by a trigger that is gone


def test_a_rollback_publishes_the_old_versions_triggers(acme, alice, live):
    trigger_id = _first_trigger(live)
    with firm_context(acme.id):
        trigger = db.session.get(WorkflowTrigger, trigger_id)
        trigger.configuration = {"tag": "new"}
        db.session.commit()
        publish(live, alice)
    assert _starts(acme, "new") and not _starts(acme, "old")
    with firm_context(acme.id):
        rollback(live, 1, alice)
    assert _starts(acme, "old") and not _starts(acme, "new")


def test_pausing_and_resuming_publishes_the_draft_triggers(acme, alice, live):
    """Resuming a paused workflow is an activation: what goes live is the
    version it takes, triggers included."""
    from app.automation.lifecycle.publishing import pause_workflow

    trigger_id = _first_trigger(live)
    with firm_context(acme.id):
        pause_workflow(live, alice)
        trigger = db.session.get(WorkflowTrigger, trigger_id)
        trigger.configuration = {"tag": "new"}
        db.session.commit()
    assert not _starts(acme, "old") and not _starts(acme, "new")
    with firm_context(acme.id):
        activate_workflow(live, alice)
        db.session.commit()
    assert _starts(acme, "new") and not _starts(acme, "old")


def test_the_triggers_panel_marks_what_is_not_published(client, auth, acme, alice, live):
    trigger = _first_trigger(live)
    assert auth.login(alice).status_code == 302
    token = auth.csrf_token("/automation")
    panel = client.get(f"/automation/builder/{live.id}/triggers", headers=HX).get_data(as_text=True)
    assert "unpublished" not in panel
    saved = client.post(
        f"/automation/builder/{live.id}/triggers/{trigger}",
        data={"csrf_token": token, "tag": "new"},
        headers=HX,
    ).get_data(as_text=True)
    card = saved.split(f'id="trigger-{trigger}"', 1)[1].split("</article>", 1)[0]
    assert "unpublished changes" in card and 'value="new"' in card  # the draft, marked
    added = client.post(
        f"/automation/builder/{live.id}/triggers",
        data={"csrf_token": token, "trigger_type": "api"},
        headers=HX,
    ).get_data(as_text=True)
    with firm_context(acme.id):
        db.session.expire_all()
        api_id = live.triggers[-1].id
    new_card = added.split(f'id="trigger-{api_id}"', 1)[1].split("</article>", 1)[0]
    assert ">unpublished<" in new_card
    removed = client.post(
        f"/automation/builder/{live.id}/triggers/{trigger}/delete",
        data={"csrf_token": token},
        headers=HX,
    ).get_data(as_text=True)
    assert "still starting this workflow until you publish: Tag added" in removed
    assert 'class="badge badge-pending"' in client.get(
        f"/automation/builder/{live.id}/unpublished", headers=HX
    ).get_data(as_text=True)
    with firm_context(acme.id):
        publish(live, alice)
    panel = client.get(f"/automation/builder/{live.id}/triggers", headers=HX).get_data(as_text=True)
    assert "unpublished" not in panel


def test_a_draft_never_published_has_no_live_triggers_and_no_marks(client, auth, acme, alice):
    workflow = make_workflow(acme, triggers=[{"trigger_type": "contact_tag_added"}])
    assert _live(workflow) == []
    auth.login(alice)
    panel = client.get(f"/automation/builder/{workflow.id}/triggers", headers=HX)
    assert "unpublished" not in panel.get_data(as_text=True)
