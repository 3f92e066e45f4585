"""The lifecycle pages: versions + diff, publish dialog, rollback, templates,
export/import, comments and the approval queue."""

from __future__ import annotations

import io
import json

import pytest
from sqlalchemy import select

from app.automation.lifecycle.approvals import request_publication, set_requires_approval
from app.automation.lifecycle.publishing import publish
from app.extensions import db
from app.models import ApprovalRequest, Workflow, WorkflowComment, WorkflowExecution
from app.tenancy import firm_context
from tests.lifecycle.helpers import nurture_workflow, park


@pytest.fixture
def live(acme, alice):
    workflow = nurture_workflow(acme)
    with firm_context(acme.id):
        publish(workflow, alice)
    return workflow


def _change_tips(acme, workflow, subject="New tips <b>now</b>"):
    with firm_context(acme.id):
        wf = db.session.get(Workflow, workflow.id)
        wf.node_by_key("send_tips").configuration = {"subject": subject, "body_text": "x"}
        db.session.commit()


def test_the_versions_page_lists_versions_and_shows_a_diff(client, auth, acme, alice, live):
    _change_tips(acme, live)
    with firm_context(acme.id):
        publish(db.session.get(Workflow, live.id), alice)
    auth.login(alice)
    page = client.get(f"/automation/{live.id}/versions?base=1&to=2")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'id="version-1"' in html and 'id="version-2"' in html
    assert "alice@acme.test" in html
    assert 'class="diff-node diff-changed" data-node="send_tips"' in html
    # Configuration values are escaped, never markup.
    assert "&lt;b&gt;" in html or "\\u003cb\\u003e" in html
    assert "<b>now</b>" not in html


def test_the_versions_page_flags_unpublished_changes(client, auth, acme, alice, live):
    _change_tips(acme, live)
    auth.login(alice)
    html = client.get(f"/automation/{live.id}/versions").get_data(as_text=True)
    assert "not published yet" in html


def test_the_publish_dialog_shows_waiting_contacts_and_a_select_per_node(
    client, auth, acme, bob, live
):
    park(acme, live, "send_tips", 3)
    auth.login(bob)
    html = client.get(f"/automation/{live.id}/publish").get_data(as_text=True)
    assert 'name="map-send_tips"' in html
    assert "keep_on_old_version" in html
    assert ">3<" in html


def test_publishing_from_the_dialog_moves_contacts(client, auth, acme, bob, live):
    ids = park(acme, live, "send_tips", 2)
    _change_tips(acme, live, "Changed")
    auth.login(bob)
    token = auth.csrf_token(f"/automation/{live.id}/publish")
    response = client.post(
        f"/automation/{live.id}/publish",
        data={"csrf_token": token, "map-send_tips": "wait_1_day"},
    )
    assert response.status_code == 302
    with firm_context(acme.id):
        rows = db.session.scalars(
            select(WorkflowExecution).where(WorkflowExecution.id.in_(ids))
        ).all()
        assert {(r.version, r.current_node) for r in rows} == {(2, "wait_1_day")}
    assert "2 contacts moved" in client.get(response.location).get_data(as_text=True)


def test_an_unmapped_node_is_shown_again_in_the_dialog(client, auth, acme, alice, live):
    park(acme, live, "send_tips", 1)
    _change_tips(acme, live, "Changed")
    auth.login(alice)
    token = auth.csrf_token(f"/automation/{live.id}/publish")
    response = client.post(
        f"/automation/{live.id}/publish", data={"csrf_token": token, "map-send_tips": ""}
    )
    # "" means the default (same step), which exists: published.
    assert response.status_code == 302
    with firm_context(acme.id):
        wf = db.session.get(Workflow, live.id)
        wf.node_by_key("wait_1_day").node_id = "pause_1_day"
        db.session.commit()
    park(acme, live, "wait_1_day", 2, version=2)
    response = client.post(f"/automation/{live.id}/publish", data={"csrf_token": token})
    assert response.status_code == 409
    html = response.get_data(as_text=True)
    assert 'id="unmapped"' in html and "<code>wait_1_day</code>: 2 contacts" in html


def test_a_form_without_csrf_is_refused(client, auth, alice, live):
    auth.login(alice)
    assert client.post(f"/automation/{live.id}/publish", data={}).status_code == 400


def test_rollback_from_the_page(client, auth, acme, alice, live):
    _change_tips(acme, live, "v2")
    with firm_context(acme.id):
        publish(db.session.get(Workflow, live.id), alice)
    auth.login(alice)
    assert client.get(f"/automation/{live.id}/rollback/1").status_code == 200
    token = auth.csrf_token(f"/automation/{live.id}/rollback/1")
    response = client.post(f"/automation/{live.id}/rollback/1", data={"csrf_token": token})
    assert response.status_code == 302
    with firm_context(acme.id):
        wf = db.session.get(Workflow, live.id)
        assert wf.version == 3
        assert wf.node_by_key("send_tips").configuration["subject"] == "Tips"
    assert client.get(f"/automation/{live.id}/rollback/9").status_code == 404


def test_the_gallery_creates_a_draft_from_a_template(client, auth, acme, bob):
    auth.login(bob)
    html = client.get("/automation/templates").get_data(as_text=True)
    assert html.count('class="card template-card"') >= 8
    token = auth.csrf_token("/automation/templates")
    response = client.post(
        "/automation/templates/webinar_reminder", data={"csrf_token": token, "name": "Q3 webinar"}
    )
    assert response.status_code == 302 and "/automation/builder/" in response.location
    with firm_context(acme.id):
        workflow = db.session.scalars(select(Workflow)).one()
        assert (workflow.name, workflow.status, workflow.created_by_id) == (
            "Q3 webinar",
            "draft",
            bob.id,
        )
    assert client.post("/automation/templates/nope", data={"csrf_token": token}).status_code == 404


def test_export_download_and_import_upload(client, auth, acme, alice, live):
    auth.login(alice)
    download = client.get(f"/automation/{live.id}/export.json")
    assert download.status_code == 200
    assert "attachment" in download.headers["Content-Disposition"]
    document = json.loads(download.data)
    token = auth.csrf_token("/automation/import")
    response = client.post(
        "/automation/import",
        data={
            "csrf_token": token,
            "name": "Copy",
            "document": (io.BytesIO(download.data), "nurture.json"),
        },
        content_type="multipart/form-data",
    )
    assert response.status_code == 302
    with firm_context(acme.id):
        copy = db.session.scalars(select(Workflow).where(Workflow.name == "Copy")).one()
        assert copy.status == "draft"
    document["workflow"]["nodes"][0]["node_type"] = "teleport"
    bad = client.post(
        "/automation/import", data={"csrf_token": token, "text": json.dumps(document)}
    )
    assert bad.status_code == 422
    html = bad.get_data(as_text=True)
    assert "workflow.nodes.0.node_type" in html and "teleport" in html
    junk = client.post("/automation/import", data={"csrf_token": token, "text": "{nope"})
    assert junk.status_code == 422 and "not JSON" in junk.get_data(as_text=True)


def test_comments_panel_and_fragment(client, auth, acme, bob, live):
    auth.login(bob)
    token = auth.csrf_token(f"/automation/{live.id}/comments")
    response = client.post(
        f"/automation/{live.id}/comments",
        data={"csrf_token": token, "body": "<script>x</script> too long?", "node_id": "send_tips"},
    )
    assert response.status_code == 302
    fragment = client.get(
        f"/automation/{live.id}/comments?node=send_tips", headers={"HX-Request": "true"}
    )
    html = fragment.get_data(as_text=True)
    assert html.lstrip().startswith("<section") and "<html" not in html
    assert "&lt;script&gt;x&lt;/script&gt; too long?" in html
    empty = client.post(
        f"/automation/{live.id}/comments",
        data={"csrf_token": token, "body": " "},
        headers={"HX-Request": "true"},
    )
    assert empty.status_code == 400 and "write something" in empty.get_data(as_text=True)
    with firm_context(acme.id):
        comment = db.session.scalars(select(WorkflowComment)).one()
    deleted = client.post(
        f"/automation/{live.id}/comments/{comment.id}/delete", data={"csrf_token": token}
    )
    assert deleted.status_code == 302


def test_marketer_asks_and_admin_approves_in_the_queue(client, auth, acme, alice, bob):
    workflow = nurture_workflow(acme)
    with firm_context(acme.id):
        set_requires_approval(db.session.get(type(acme), acme.id), True)
    auth.login(bob)
    token = auth.csrf_token(f"/automation/{workflow.id}/publish")
    asked = client.post(f"/automation/{workflow.id}/publish", data={"csrf_token": token})
    assert asked.status_code == 302
    assert "pending approval" in client.get(asked.location).get_data(as_text=True)
    assert client.get("/automation/approvals").status_code == 403
    with firm_context(acme.id):
        request_id = db.session.scalars(select(ApprovalRequest.id)).one()
    assert (
        client.post(
            f"/automation/approvals/{request_id}/approve", data={"csrf_token": token}
        ).status_code
        == 403
    )
    auth.logout()
    auth.login(alice)
    queue = client.get("/automation/approvals").get_data(as_text=True)
    assert f'id="approval-{request_id}"' in queue
    token = auth.csrf_token("/automation/approvals")
    done = client.post(f"/automation/approvals/{request_id}/approve", data={"csrf_token": token})
    assert done.status_code == 302
    with firm_context(acme.id):
        assert db.session.get(Workflow, workflow.id).status == "active"


def test_activating_from_the_workflow_list_asks_for_approval(client, auth, acme, bob):
    workflow = nurture_workflow(acme)
    with firm_context(acme.id):
        set_requires_approval(db.session.get(type(acme), acme.id), True)
    auth.login(bob)
    token = auth.csrf_token("/automation")
    response = client.post(
        f"/automation/{workflow.id}/activate", data={"csrf_token": token}, follow_redirects=True
    )
    assert response.status_code < 500
    assert "approval" in response.get_data(as_text=True)
    with firm_context(acme.id):
        assert db.session.scalars(select(ApprovalRequest.status)).all() == ["pending"]
        assert db.session.get(Workflow, workflow.id).status == "draft"


def test_an_admin_rejects_and_the_marketer_sees_the_note(client, auth, acme, alice, bob):
    workflow = nurture_workflow(acme)
    with firm_context(acme.id):
        set_requires_approval(db.session.get(type(acme), acme.id), True)
        item = request_publication(db.session.get(Workflow, workflow.id), bob)
    auth.login(alice)
    token = auth.csrf_token("/automation/approvals")
    client.post(
        f"/automation/approvals/{item.id}/reject", data={"csrf_token": token, "note": "Too pushy"}
    )
    auth.logout()
    auth.login(bob)
    html = client.get(f"/automation/{workflow.id}/versions").get_data(as_text=True)
    assert "rejected" in html and "Too pushy" in html


def test_the_approval_setting_is_admin_only(client, auth, acme, alice, bob):
    auth.login(alice)
    token = auth.csrf_token("/automation/approvals")
    client.post(
        "/automation/approvals/settings", data={"csrf_token": token, "require_approval": "on"}
    )
    db.session.expire_all()
    assert db.session.get(type(acme), acme.id).settings["require_approval"] is True
    auth.logout()
    auth.login(bob)
    assert (
        client.post("/automation/approvals/settings", data={"csrf_token": token}).status_code == 403
    )


@pytest.mark.parametrize(
    "path",
    [
        "/automation/{id}/versions",
        "/automation/{id}/publish",
        "/automation/{id}/rollback/1",
        "/automation/{id}/export.json",
        "/automation/{id}/comments",
    ],
)
def test_another_firms_workflow_is_404_and_portal_users_403(
    client, auth, live, charlie, paula, token_for, path
):
    auth.login(charlie)
    assert client.get(path.format(id=live.id)).status_code == 404
    auth.logout()
    # Portal users cannot sign in to pages; with a token they are refused.
    assert client.get(path.format(id=live.id), headers=token_for(paula)).status_code == 403


def test_anonymous_visitors_are_sent_to_login(client, live):
    response = client.get("/automation/templates")
    assert response.status_code == 302 and "/login" in response.location


def test_the_comment_badge_partial_links_to_the_step_panel(app, acme, bob, live):
    from flask import render_template

    from app.automation.lifecycle.comments import add_comment, comments_by_node

    with firm_context(acme.id):
        add_comment(live, bob, "hi", node_id="send_tips")
        with app.test_request_context():
            html = render_template(
                "lifecycle/_comment_badge.html",
                workflow=live,
                node_id="send_tips",
                comment_counts=comments_by_node(live),
            )
    assert (
        f"/automation/{live.id}/comments?node=send_tips" in html
        and "#message-square-text" in html
        and "</svg> 1</a>" in html
    )
