"""Writes made from the pages and through the API go through one domain
operation each (docs/ARCHITECTURE.md "Layers"): the same input gives the
same refusal, the same audit entry and the same undo entry on both."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import AuditLog, WorkflowEdit, WorkflowNode, WorkflowTrigger
from app.tenancy import firm_context
from tests.api.world import make_execution
from tests.factories import make_contact, make_user, make_workflow

HX = {"HX-Request": "true"}


@pytest.fixture
def page(client, auth, alice):
    """POST JSON to a builder page as alice, with her CSRF token."""
    assert auth.login(alice).status_code == 302
    token = auth.csrf_token("/automation")

    def post(path: str, body: dict | None = None):
        return client.post(path, json=body or {}, headers={**HX, "X-CSRFToken": token})

    return post


@pytest.fixture
def chain(acme):
    return make_workflow(
        acme,
        nodes=[
            {"node_id": key, "node_type": "add_tag", "configuration": {"tag": key}}
            for key in ("a", "b")
        ],
        edges=[("a", "b")],
    )


def _csrf(client) -> str:
    """The CSRF token of the signed-in session, from a page's meta tag."""
    page = client.get("/automation").get_data(as_text=True)
    match = re.search(r'name="csrf-token" content="([^"]+)"', page)
    assert match, "no csrf meta tag"
    return match.group(1)


def _pk(workflow, key: str) -> int:
    with firm_context(workflow.firm_id):
        stmt = select(WorkflowNode.id).filter_by(workflow_id=workflow.id, node_id=key)
        return db.session.scalars(stmt).one()


def _actions(firm_id: int, *prefixes: str) -> list[str]:
    with firm_context(firm_id):
        actions = db.session.scalars(select(AuditLog.action).order_by(AuditLog.id))
        return [action for action in actions if action.startswith(prefixes)]


def _labels(workflow) -> list[str]:
    with firm_context(workflow.firm_id):
        stmt = select(WorkflowEdit.label).filter_by(workflow_id=workflow.id)
        return list(db.session.scalars(stmt.order_by(WorkflowEdit.id)))


def test_a_step_contacts_wait_at_in_a_live_workflow_is_kept_by_both(api, page, acme, chain):
    """The builder used to delete it (the API refused): contacts were left
    waiting at a step that no longer existed."""
    with firm_context(acme.id):
        chain.status = "active"
        db.session.commit()
    make_execution(chain, make_contact(acme), node="b")
    by_api = api.delete(f"/api/v1/automation/nodes/{_pk(chain, 'b')}/")
    by_page = page(f"/automation/builder/{chain.id}/nodes/b/delete")
    assert by_api.status_code == by_page.status_code == 409
    assert by_api.json["error"]["message"] == by_page.json["error"]["message"]
    assert "1 contact(s) are at 'b'" in by_page.json["error"]["message"]
    batch = page(f"/automation/builder/{chain.id}/nodes/delete", {"nodes": ["a", "b"]})
    assert batch.status_code == 409
    with firm_context(acme.id):
        assert db.session.query(WorkflowNode).filter_by(workflow_id=chain.id).count() == 2


def test_adding_connecting_and_deleting_write_one_audit_name_and_one_label(api, page, acme, chain):
    added = page(f"/automation/builder/{chain.id}/nodes", {"node_type": "goal", "x": 1, "y": 1})
    assert added.status_code == 201
    connected = page(
        f"/automation/builder/{chain.id}/edges", {"source": "b", "target": added.json["node_id"]}
    )
    assert connected.status_code == 201
    edge_id = connected.json["edge_id"]
    assert page(f"/automation/builder/{chain.id}/edges/{edge_id}/delete").status_code == 200
    assert page(f"/automation/builder/{chain.id}/nodes/goal/delete").status_code == 200
    web = _actions(acme.id, "node.", "edge.", "workflow.")

    node = api.post(
        "/api/v1/automation/nodes/",
        json={"workflow": chain.id, "node_id": "goal", "node_type": "goal", "label": "Goal"},
    )
    assert node.status_code == 201
    edge = api.post(
        "/api/v1/automation/edges/",
        json={"source_node": _pk(chain, "b"), "target_node": node.json["id"]},
    )
    assert edge.status_code == 201
    assert api.delete(f"/api/v1/automation/edges/{edge.json['id']}/").status_code == 204
    assert api.delete(f"/api/v1/automation/nodes/{node.json['id']}/").status_code == 204
    both = _actions(acme.id, "node.", "edge.", "workflow.")

    expected = ["node.created", "edge.created", "edge.deleted", "node.deleted"]
    assert web == expected
    assert both[len(web) :] == expected
    assert _labels(chain) == [
        "Add Goal",
        "Connect b to Goal",
        "Disconnect b from Goal",
        "Delete Goal",
        "API: add Goal",
        "API: connect b to Goal",
        "API: disconnect b from Goal",
        "API: delete Goal",
    ]


def test_the_same_bad_connection_is_refused_alike(api, page, chain):
    by_page = page(
        f"/automation/builder/{chain.id}/edges", {"source": "a", "port": "yes", "target": "b"}
    )
    by_api = api.post(
        "/api/v1/automation/edges/",
        json={
            "source_node": _pk(chain, "a"),
            "target_node": _pk(chain, "b"),
            "condition_type": "yes",
        },
    )
    assert by_page.status_code == by_api.status_code == 422
    assert by_api.json["error"]["fields"] == {"condition_type": [by_page.json["error"]["message"]]}


# --- workflow settings and goals ---------------------------------------------


def test_settings_saved_on_the_page_and_through_the_api_are_one_edit(
    api, page, client, acme, chain
):
    """The page recorded ``workflow.settings_changed``, the API
    ``workflow.updated``: now both the latter, with one undo wording."""
    saved = client.post(
        f"/automation/builder/{chain.id}/settings",
        data={"name": "On the page", "priority": "3", "csrf_token": _csrf(client)},
        headers=HX,
    )
    assert saved.status_code == 200
    patched = api.patch(f"/api/v1/automation/workflows/{chain.id}/", json={"name": "By API"})
    assert patched.status_code == 200
    assert _actions(acme.id, "workflow.") == ["workflow.updated", "workflow.updated"]
    assert _labels(chain) == ["Change workflow settings", "API: change workflow settings"]


def test_a_goal_at_another_workflows_step_is_refused_by_the_goal_operation(api, acme, chain):
    from app.automation.lifecycle import goals
    from app.automation.lifecycle.workflow_ops import WorkflowOpError

    other = make_workflow(acme, nodes=[{"node_id": "x", "node_type": "goal"}])
    answer = api.post(
        "/api/v1/automation/goals/",
        json={"workflow": chain.id, "name": "Bought", "goal_node": _pk(other, "x")},
    )
    assert answer.status_code == 422
    with firm_context(acme.id):
        node = db.session.get(WorkflowNode, _pk(other, "x"))
        with pytest.raises(WorkflowOpError) as refused:
            goals.create_goal(chain, "Bought", node)
    assert answer.json["error"]["fields"] == {refused.value.field: [refused.value.message]}


# --- users and tokens --------------------------------------------------------


def test_the_admin_page_and_the_cli_refuse_a_short_password_alike(
    client, auth, runner, alice, acme
):
    """The CLI used to accept any password and write no audit entry."""
    assert auth.login(alice).status_code == 302
    form = {"email": "dana@example.com", "name": "Dana", "role": "marketer", "password": "pw"}
    by_page = client.post("/admin/users", data={**form, "csrf_token": _csrf(client)})
    assert by_page.status_code == 400
    assert "Use at least 12 characters." in by_page.get_data(as_text=True)
    by_cli = runner.invoke(
        args=["create-user", "dana@example.com", "--firm", "Acme", "--password", "pw"]
    )
    assert by_cli.exit_code != 0 and "Use at least 12 characters." in by_cli.output
    long = "a-long-password"
    by_cli = runner.invoke(
        args=["create-user", "dana@example.com", "--firm", "Acme", "--password", long]
    )
    assert by_cli.exit_code == 0, by_cli.output
    form = {**form, "email": "erin@example.com", "password": long}
    assert (
        client.post("/admin/users", data={**form, "csrf_token": _csrf(client)}).status_code == 302
    )
    assert _actions(acme.id, "user.") == ["user.created", "user.created"]


def test_neither_gives_a_portal_user_an_api_token(client, auth, runner, alice, acme):
    """The CLI used to issue one (and write no audit entry)."""
    portal = make_user(acme, "pat@acme.test", role="portal")
    assert auth.login(alice).status_code == 302
    by_page = client.post(
        "/admin/tokens", data={"name": "x", "user_id": portal.id, "csrf_token": _csrf(client)}
    )
    assert "Portal users cannot use the API." in by_page.get_data(as_text=True)
    by_cli = runner.invoke(args=["create-token", portal.email])
    assert by_cli.exit_code != 0 and "Portal users cannot use the API." in by_cli.output
    assert runner.invoke(args=["create-token", alice.email]).exit_code == 0
    assert _actions(acme.id, "token.") == ["token.issued"]


# --- webhook secret and sending settings -------------------------------------


def test_rotation_and_sending_changes_are_one_operation_each(api, client, auth, alice, acme):
    assert auth.login(alice).status_code == 302
    assert (
        client.post("/admin/webhooks/rotate", data={"csrf_token": _csrf(client)}).status_code == 303
    )
    assert api.post("/api/v1/settings/webhooks/rotate/").status_code == 200
    caps = {"cap_max_0": "3", "cap_days_0": "7", "cap_action": "defer"}
    assert (
        client.post("/sending/pacing", data={**caps, "csrf_token": _csrf(client)}).status_code
        == 302
    )
    body = {"frequency_caps": [{"max": 3, "per_days": 7}], "cap_action": "defer"}
    assert api.patch("/api/v1/settings/sending/", json=body).status_code == 200
    assert client.post("/sending/resume", data={"csrf_token": _csrf(client)}).status_code == 302
    assert api.post("/api/v1/settings/sending/resume/").status_code == 200
    assert _actions(acme.id, "webhook_secret.", "sending") == [
        "webhook_secret.rotated",
        "webhook_secret.rotated",
        "sending_settings.changed",
        "sending_settings.changed",
        "sending.resumed",
        "sending.resumed",
    ]


# --- triggers ------------------------------------------------------------------


def test_trigger_edits_write_one_audit_name_and_one_label(api, page, client, acme, chain):
    """The builder wrote workflow.trigger_added/_disabled/_removed, the API
    trigger.*; the API's undo labels named the type by its key."""
    base = f"/automation/builder/{chain.id}/triggers"
    form = {"trigger_type": "contact_created", "_action": "save", "csrf_token": _csrf(client)}
    assert client.post(base, data=form, headers=HX).status_code == 200
    with firm_context(acme.id):
        (trigger_id,) = db.session.scalars(
            select(WorkflowTrigger.id).filter_by(workflow_id=chain.id)
        ).all()
    for action in ("toggle", "delete"):
        answer = client.post(
            f"{base}/{trigger_id}/{action}", data={"csrf_token": _csrf(client)}, headers=HX
        )
        assert answer.status_code == 200
    web = _actions(acme.id, "trigger.", "workflow.trigger")

    made = api.post(
        "/api/v1/automation/triggers/",
        json={"workflow": chain.id, "trigger_type": "contact_created"},
    )
    assert made.status_code == 201
    one = f"/api/v1/automation/triggers/{made.json['id']}/"
    assert api.patch(one, json={"is_active": False}).status_code == 200
    assert api.delete(one).status_code == 204
    both = _actions(acme.id, "trigger.", "workflow.trigger")

    expected = ["trigger.created", "trigger.updated", "trigger.deleted"]
    assert web == expected and both[len(web) :] == expected
    assert _labels(chain) == [
        "Add trigger Contact created",
        "Disable trigger Contact created",
        "Remove trigger Contact created",
        "API: add trigger Contact created",
        "API: disable trigger Contact created",
        "API: remove trigger Contact created",
    ]
