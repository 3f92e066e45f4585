"""API edits of a workflow go in the builder's undo history: a step, a
connection, a trigger or the settings changed through the API is undone
(and redone) like a canvas edit, labelled as made through the API."""

from __future__ import annotations

from sqlalchemy import select

from app.automation.graph import edit_history
from app.extensions import db
from app.models import Workflow, WorkflowEdit
from app.tenancy import firm_context
from tests.factories import make_workflow


def _chain(acme):
    return make_workflow(
        acme,
        name="Chain",
        nodes=[
            {"node_id": key, "node_type": "add_tag", "configuration": {"tag": key}}
            for key in ("a", "b", "c")
        ],
        edges=[("a", "b"), ("b", "c")],
        triggers=[{"trigger_type": "contact_created"}],
    )


def _state(firm_id, workflow_id):
    with firm_context(firm_id):
        db.session.expire_all()
        workflow = db.session.get(Workflow, workflow_id)
        return edit_history.snapshot(workflow)


def _step(firm_id, workflow_id, which):
    with firm_context(firm_id):
        db.session.expire_all()
        workflow = db.session.get(Workflow, workflow_id)
        edit = (edit_history.undo if which == "undo" else edit_history.redo)(workflow)
        db.session.commit()
        return edit.label


def test_api_edits_are_undone_in_turn(api, acme):
    workflow = _chain(acme)
    start = _state(acme.id, workflow.id)
    nodes = {
        n["node_id"]: n["id"]
        for n in api.get("/api/v1/automation/nodes/", query_string={"workflow": workflow.id}).json[
            "results"
        ]
    }
    (trigger,) = api.get(
        "/api/v1/automation/triggers/", query_string={"workflow": workflow.id}
    ).json["results"]

    assert api.delete(f"/api/v1/automation/nodes/{nodes['b']}/").status_code == 204
    added = api.post(
        "/api/v1/automation/nodes/",
        json={
            "workflow": workflow.id,
            "node_id": "d",
            "node_type": "add_tag",
            "configuration": {"tag": "d"},
        },
    )
    assert added.status_code == 201
    edge = api.post(
        "/api/v1/automation/edges/",
        json={"source_node": nodes["a"], "target_node": added.json["id"]},
    )
    assert edge.status_code == 201, edge.json
    assert (
        api.patch(
            f"/api/v1/automation/nodes/{nodes['c']}/", json={"configuration": {"tag": "cc"}}
        ).status_code
        == 200
    )
    assert (
        api.patch(f"/api/v1/automation/nodes/{nodes['c']}/", json={"node_id": "c2"}).status_code
        == 200
    )
    assert (
        api.patch(
            f"/api/v1/automation/triggers/{trigger['id']}/", json={"is_active": False}
        ).status_code
        == 200
    )
    assert api.delete(f"/api/v1/automation/triggers/{trigger['id']}/").status_code == 204
    assert (
        api.patch(
            f"/api/v1/automation/workflows/{workflow.id}/", json={"name": "Renamed"}
        ).status_code
        == 200
    )
    assert api.delete(f"/api/v1/automation/edges/{edge.json['id']}/").status_code == 204

    with firm_context(acme.id):
        labels = db.session.scalars(
            select(WorkflowEdit.label)
            .where(WorkflowEdit.workflow_id == workflow.id)
            .order_by(WorkflowEdit.id)
        ).all()
    assert labels == [
        "API: delete b",
        "API: add d",
        "API: connect a to d",
        "API: change c",
        "API: change c",
        "API: disable trigger Contact created",
        "API: remove trigger Contact created",
        "API: change workflow settings",
        "API: disconnect a from d",
    ]
    undone = [_step(acme.id, workflow.id, "undo") for _ in labels]
    assert undone == labels[::-1]
    # Everything back as it was: b with its connections, c's key and tag,
    # the trigger under its own id, enabled, and the workflow's name.
    assert _state(acme.id, workflow.id) == start
    assert _step(acme.id, workflow.id, "redo") == "API: delete b"
    assert "b" not in _state(acme.id, workflow.id)["nodes"]


def test_a_settings_patch_that_changes_nothing_is_not_kept(api, acme):
    workflow = _chain(acme)
    api.patch(f"/api/v1/automation/workflows/{workflow.id}/", json={"canvas_data": {"zoom": 2}})
    with firm_context(acme.id):
        assert db.session.scalars(select(WorkflowEdit)).all() == []
