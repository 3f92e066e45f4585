"""Workflow endpoints beyond CRUD: activate, pause, duplicate, analytics,
executions and the flow visualization."""

from __future__ import annotations

from app.extensions import db
from app.models import Workflow
from app.tenancy import firm_context
from tests.api.world import make_execution
from tests.factories import WELCOME_EDGES, WELCOME_NODES, make_contact, make_workflow

WF = "/api/v1/automation/workflows/"


def welcome(acme, **fields):
    return make_workflow(
        acme,
        nodes=WELCOME_NODES,
        edges=WELCOME_EDGES,
        triggers=[{"trigger_type": "manual"}],
        **fields,
    )


def test_it_lists_workflows_filtered_by_status(api, acme):
    draft = welcome(acme, name="Draft")
    active = welcome(acme, name="Live", status="active")
    everything = api.get(WF).json["results"]
    assert [w["id"] for w in everything] == [active.id, draft.id]
    only_active = api.get(f"{WF}?status=active").json["results"]
    assert [w["name"] for w in only_active] == ["Live"]
    assert api.get(f"{WF}?status=sleeping").status_code == 400


def test_the_detail_includes_triggers_nodes_and_edges(api, acme):
    workflow = welcome(acme)
    detail = api.get(f"{WF}{workflow.id}/").json
    assert [t["trigger_type"] for t in detail["triggers"]] == ["manual"]
    assert [n["node_id"] for n in detail["nodes"]] == ["send_welcome_email", "wait_2_days", "goal"]
    nodes = {n["id"]: n["node_id"] for n in detail["nodes"]}
    assert [(nodes[e["source_node"]], nodes[e["target_node"]]) for e in detail["edges"]] == [
        ("send_welcome_email", "wait_2_days"),
        ("wait_2_days", "goal"),
    ]


def test_it_updates_settings(api, acme):
    workflow = welcome(acme)
    response = api.patch(f"{WF}{workflow.id}/", json={"name": "Renamed", "allow_reentry": True})
    assert response.status_code == 200
    assert response.json["name"] == "Renamed"
    assert response.json["allow_reentry"] is True
    assert api.patch(f"{WF}{workflow.id}/", json={"name": ""}).status_code == 400
    assert api.patch(f"{WF}{workflow.id}/", json={"status": "active"}).status_code == 400


def test_an_active_workflow_is_not_archived_or_deleted(api, acme):
    workflow = welcome(acme, status="active")
    assert api.patch(f"{WF}{workflow.id}/", json={"status": "archived"}).status_code == 409
    assert api.delete(f"{WF}{workflow.id}/").status_code == 409
    assert api.post(f"{WF}{workflow.id}/pause/").status_code == 200
    assert api.delete(f"{WF}{workflow.id}/").status_code == 204
    with firm_context(acme.id):
        assert db.session.get(Workflow, workflow.id) is None


def test_it_activates_a_valid_workflow_as_version_one(api, acme):
    workflow = welcome(acme)
    response = api.post(f"{WF}{workflow.id}/activate/")
    assert response.status_code == 200, response.json
    assert response.json["status"] == "active"
    assert response.json["version"] == 1
    assert response.json["activated_at"]


def test_an_invalid_workflow_is_refused_with_its_problems(api, acme):
    workflow = make_workflow(
        acme,
        nodes=[
            {"node_id": "a", "node_type": "add_tag", "configuration": {"tag": "x"}},
            {"node_id": "b", "node_type": "add_tag", "configuration": {"tag": "y"}},
        ],
    )
    response = api.post(f"{WF}{workflow.id}/activate/")
    assert response.status_code == 422
    error = response.json["error"]
    assert error["code"] == "invalid_workflow"
    nodes = {problem["node"] for problem in error["problems"]}
    assert {"a", "b"} <= nodes
    assert any("trigger" in problem["message"] for problem in error["problems"])
    with firm_context(acme.id):
        assert db.session.get(Workflow, workflow.id).status == "draft"


def test_it_pauses_only_an_active_workflow(api, acme):
    workflow = welcome(acme)
    refused = api.post(f"{WF}{workflow.id}/pause/")
    assert refused.status_code == 409
    api.post(f"{WF}{workflow.id}/activate/")
    paused = api.post(f"{WF}{workflow.id}/pause/")
    assert paused.status_code == 200
    assert paused.json["status"] == "paused"


def test_it_duplicates_a_workflow_as_a_draft(api, acme):
    workflow = welcome(acme, status="active")
    response = api.post(f"{WF}{workflow.id}/duplicate/")
    assert response.status_code == 201
    copy = response.json
    assert copy["id"] != workflow.id
    assert copy["status"] == "draft"
    assert [n["node_id"] for n in copy["nodes"]] == ["send_welcome_email", "wait_2_days", "goal"]
    assert len(copy["edges"]) == 2
    assert {n["workflow"] for n in copy["nodes"]} == {copy["id"]}


def test_it_computes_analytics_for_a_period(api, acme):
    workflow = welcome(acme, status="active")
    make_execution(workflow, make_contact(acme), status="completed", node=None)
    make_execution(workflow, make_contact(acme), status="failed", node="wait_2_days")
    response = api.get(f"{WF}{workflow.id}/analytics/?start=2020-01-01&end=2100-01-01")
    assert response.status_code == 200, response.json
    analytics = response.json
    assert analytics["workflow"] == workflow.id
    assert analytics["period_start"] == "2020-01-01"
    assert analytics["total_executions"] == 2
    assert analytics["completed_executions"] == 1
    assert analytics["failed_executions"] == 1
    stored = api.get(f"/api/v1/automation/analytics/?workflow={workflow.id}").json["results"]
    assert [row["id"] for row in stored] == [analytics["id"]]
    assert api.get(f"/api/v1/automation/analytics/{analytics['id']}/").status_code == 200


def test_analytics_dates_are_validated(api, acme):
    workflow = welcome(acme)
    bad = api.get(f"{WF}{workflow.id}/analytics/?start=yesterday")
    assert bad.status_code == 400
    assert "start" in bad.json["error"]["fields"]
    backwards = api.get(f"{WF}{workflow.id}/analytics/?start=2026-02-01&end=2026-01-01")
    assert backwards.status_code == 400
    assert "end" in backwards.json["error"]["fields"]


def test_it_lists_a_workflows_executions(api, acme):
    workflow = welcome(acme, status="active")
    other = welcome(acme, name="Other", status="active")
    mine = make_execution(workflow, make_contact(acme))
    make_execution(other, make_contact(acme))
    results = api.get(f"{WF}{workflow.id}/executions/").json["results"]
    assert [e["id"] for e in results] == [mine.id]


def test_the_flow_visualization_has_the_contract_shape(api, acme):
    workflow = welcome(acme, status="active")
    response = api.get(f"{WF}{workflow.id}/flow_visualization/")
    assert response.status_code == 200
    assert {n["id"] for n in response.json["nodes"]} == {
        "send_welcome_email",
        "wait_2_days",
        "goal",
    }
    assert {(e["source"], e["target"]) for e in response.json["edges"]} == {
        ("send_welcome_email", "wait_2_days"),
        ("wait_2_days", "goal"),
    }


def test_a_trigger_call_needs_an_active_workflow(api, acme):
    workflow = welcome(acme)
    contact = make_contact(acme)
    response = api.post(f"{WF}{workflow.id}/trigger/", json={"contact_id": contact.id})
    assert response.status_code == 409


def test_a_trigger_call_for_another_firms_contact_is_refused(api, acme, globex):
    workflow = welcome(acme, status="active")
    theirs = make_contact(globex)
    response = api.post(f"{WF}{workflow.id}/trigger/", json={"contact_id": theirs.id})
    assert response.status_code == 422
    assert "contact_id" in response.json["error"]["fields"]


def test_activating_enrolls_existing_contacts_when_asked(api, acme):
    from app.models import WorkflowExecution

    workflow = welcome(acme, enroll_existing=True)
    contacts = {make_contact(acme).id for _ in range(3)}
    assert api.post(f"{WF}{workflow.id}/activate/").status_code == 200
    with firm_context(acme.id):
        enrolled = {e.contact_id for e in db.session.query(WorkflowExecution).all()}
    assert enrolled == contacts


def test_archiving_and_unarchiving(api, acme):
    workflow = welcome(acme, status="paused")
    assert api.patch(f"{WF}{workflow.id}/", json={"status": "draft"}).status_code == 409
    archived = api.patch(f"{WF}{workflow.id}/", json={"status": "archived"})
    assert archived.json["status"] == "archived"
    assert api.post(f"{WF}{workflow.id}/activate/").status_code == 409
    restored = api.patch(f"{WF}{workflow.id}/", json={"status": "draft"})
    assert restored.json["status"] == "draft"


def _branching(acme, node_type, configuration, edges=()):
    nodes = [
        {"node_id": "start", "node_type": "add_tag", "configuration": {"tag": "in"}},
        {"node_id": "branch", "node_type": node_type, "configuration": configuration},
        {"node_id": "after", "node_type": "add_tag", "configuration": {"tag": "out"}},
    ]
    return make_workflow(
        acme,
        nodes=nodes,
        edges=[("start", "branch"), *edges],
        triggers=[{"trigger_type": "manual"}],
    )


BRANCHING = [
    ("condition", {"rules": [{"tag": "vip", "op": "has"}]}, ["yes", "no"]),
    (
        "wait_condition",
        {"rules": [{"tag": "vip", "op": "has"}], "timeout_hours": 1},
        ["yes", "timeout"],
    ),
    (
        "split",
        {"variants": [{"name": "A", "weight": 50}, {"name": "B", "weight": 50}]},
        ["variant:A", "variant:B"],
    ),
]


def test_a_branching_step_with_no_way_out_is_refused_naming_its_outputs(api, acme):
    for node_type, configuration, ports in BRANCHING:
        workflow = _branching(acme, node_type, configuration)
        response = api.post(f"{WF}{workflow.id}/activate/")
        assert response.status_code == 422, node_type
        error = response.json["error"]
        assert error["code"] == "invalid_workflow"
        [problem] = [p for p in error["problems"] if p["node"] == "branch"]
        assert problem["ports"] == ports
        assert "no way out" in problem["message"]
        assert all(repr(port) in problem["message"] for port in ports)
        # Besides: "after" has no incoming edge, so it and "start" compete as
        # the first step.
        assert {p["node"] for p in error["problems"]} == {"branch", "after", "start"}


def test_a_branching_step_with_one_output_connected_activates(api, acme):
    """The unconnected output ends the execution there (documented on the
    activate route)."""
    edges = {
        "condition": ("branch", "after", "yes"),
        "wait_condition": ("branch", "after", "timeout"),
        "split": ("branch", "after", "variant", {"variant": "B"}),
    }
    for node_type, configuration, _ in BRANCHING:
        workflow = _branching(acme, node_type, configuration, edges=[edges[node_type]])
        response = api.post(f"{WF}{workflow.id}/activate/")
        assert response.status_code == 200, (node_type, response.json)


def test_create_and_rename_clean_the_name_as_the_page_does(api, acme):
    created = api.post(WF, json={"name": "  Spring   sale ", "allow_reentry": True})
    assert created.status_code == 201, created.json
    assert (created.json["name"], created.json["allow_reentry"]) == ("Spring sale", True)
    refused = api.post(WF, json={"name": "   "})
    assert refused.status_code == 400
    assert refused.json["error"]["fields"] == {"name": ["Give the workflow a name."]}
    workflow_id = created.json["id"]
    renamed = api.patch(f"{WF}{workflow_id}/", json={"name": " Summer\tsale"})
    assert renamed.json["name"] == "Summer sale"
    assert api.patch(f"{WF}{workflow_id}/", json={"name": "  "}).status_code == 400
    with firm_context(acme.id):
        assert db.session.get(Workflow, workflow_id).name == "Summer sale"


def test_delete_goes_through_the_domain_and_is_audited(api, acme):
    from app.models import AuditLog

    workflow = welcome(acme)
    assert api.delete(f"{WF}{workflow.id}/").status_code == 204
    with firm_context(acme.id):
        entry = db.session.query(AuditLog).filter_by(action="workflow.deleted").one()
        assert entry.data == {"name": workflow.name}
