"""Executions (filters, detail, cancel, retry, flow) and goals."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from app.extensions import db
from app.models import ContactFlowState, WorkflowExecution, WorkflowGoal
from app.tenancy import firm_context
from tests.api.world import make_execution
from tests.factories import WELCOME_EDGES, WELCOME_NODES, make_contact, make_workflow

EX = "/api/v1/automation/executions/"
GOALS = "/api/v1/automation/goals/"


@pytest.fixture
def workflow(acme):
    return make_workflow(acme, nodes=WELCOME_NODES, edges=WELCOME_EDGES, status="active")


def test_it_filters_executions(api, acme, workflow):
    ann, bob = make_contact(acme), make_contact(acme)
    waiting = make_execution(workflow, ann)
    failed = make_execution(workflow, bob, status="failed")
    old = make_execution(
        workflow, bob, status="completed", node=None, started_at=datetime(2025, 1, 5, tzinfo=UTC)
    )
    other = make_workflow(acme, name="Other", nodes=WELCOME_NODES)
    elsewhere = make_execution(other, ann)

    def ids(query: str) -> list[int]:
        response = api.get(f"{EX}?{query}")
        assert response.status_code == 200, response.json
        return [row["id"] for row in response.json["results"]]

    assert ids("") == [elsewhere.id, old.id, failed.id, waiting.id]
    assert ids(f"workflow={workflow.id}") == [old.id, failed.id, waiting.id]
    assert ids("status=failed") == [failed.id]
    assert ids(f"contact={ann.id}") == [elsewhere.id, waiting.id]
    assert ids("start=2025-01-01&end=2025-01-31") == [old.id]
    assert ids("end=2025-01-04") == []
    assert api.get(f"{EX}?status=lost").status_code == 400


def test_the_detail_has_the_path_and_flow_states(api, acme, workflow):
    execution = make_execution(workflow, make_contact(acme))
    with firm_context(acme.id):
        db.session.add(
            ContactFlowState(
                execution_id=execution.id,
                workflow_id=workflow.id,
                node_id="send_welcome_email",
                node_type="send_email",
                action_status="success",
                action_result={"message_id": "m1"},
                exited_at=datetime(2026, 1, 1, tzinfo=UTC),
            )
        )
        db.session.commit()
    detail = api.get(f"{EX}{execution.id}/").json
    assert detail["workflow"] == workflow.id
    assert detail["version"] == 1
    assert detail["execution_path"] == ["send_welcome_email", "wait_2_days"]
    state = detail["flow_states"][0]
    assert state["node_id"] == "send_welcome_email"
    assert state["action_status"] == "success"
    assert state["action_result"] == {"message_id": "m1"}
    assert {"entered_at", "exited_at", "variant"} <= set(state)


def test_it_cancels_a_waiting_execution_once(api, acme, workflow):
    execution = make_execution(workflow, make_contact(acme))
    response = api.post(f"{EX}{execution.id}/cancel/")
    assert response.status_code == 200, response.json
    assert response.json["status"] == "canceled"
    again = api.post(f"{EX}{execution.id}/cancel/")
    assert again.status_code == 409


def test_it_retries_a_failed_execution_in_place(api, acme, workflow):
    execution = make_execution(workflow, make_contact(acme), status="failed", last_error="boom")
    response = api.post(f"{EX}{execution.id}/retry/")
    assert response.status_code == 200, response.json
    assert response.json["id"] == execution.id
    assert response.json["status"] in ("running", "waiting")
    assert response.json["last_error"] is None
    with firm_context(acme.id):
        assert db.session.query(WorkflowExecution).count() == 1


def test_only_a_failed_execution_is_retried(api, acme, workflow):
    execution = make_execution(workflow, make_contact(acme))
    assert api.post(f"{EX}{execution.id}/retry/").status_code == 409


def test_a_failed_execution_whose_contact_is_inside_again_is_not_retried(api, acme, workflow):
    contact = make_contact(acme)
    failed = make_execution(workflow, contact, status="failed", last_error="boom")
    again = make_execution(workflow, contact)  # re-entered after the failure
    response = api.post(f"{EX}{failed.id}/retry/")
    assert response.status_code == 409
    assert f"in this workflow again (execution {again.id})" in response.json["error"]["message"]
    with firm_context(acme.id):
        db.session.expire_all()
        assert db.session.get(WorkflowExecution, failed.id).status == "failed"
        assert db.session.get(WorkflowExecution, again.id).status == "waiting"


def test_an_executions_flow_visualization(api, acme, workflow):
    execution = make_execution(workflow, make_contact(acme))
    with firm_context(acme.id):
        for key in ("send_welcome_email", "wait_2_days"):
            db.session.add(
                ContactFlowState(execution_id=execution.id, workflow_id=workflow.id, node_id=key)
            )
        db.session.commit()
    flow = api.get(f"{EX}{execution.id}/flow_visualization/").json
    visits = {node["id"]: node["visits"] for node in flow["nodes"]}
    assert visits["send_welcome_email"] == 1
    assert visits["wait_2_days"] == 1


def goal_node(workflow) -> int:
    with firm_context(workflow.firm_id):
        return next(node.id for node in workflow.nodes if node.node_id == "goal")


def test_goals_crud_and_analytics(api, acme, workflow):
    created = api.post(
        GOALS,
        json={
            "workflow": workflow.id,
            "name": "Converted",
            "goal_node": goal_node(workflow),
            "goal_value": "25.50",
        },
    )
    assert created.status_code == 201, created.json
    goal_id = created.json["id"]
    assert created.json["goal_value"] == 25.5
    converted = make_execution(
        workflow, make_contact(acme), status="goal_reached", node="goal", goal_reached=True
    )
    with firm_context(acme.id):
        db.session.add(
            ContactFlowState(execution_id=converted.id, workflow_id=workflow.id, node_id="goal")
        )
        db.session.commit()
    make_execution(workflow, make_contact(acme))
    updated = api.post(f"{GOALS}{goal_id}/update_analytics/")
    assert updated.status_code == 200, updated.json
    assert updated.json["total_conversions"] == 1
    assert updated.json["conversion_rate"] == 50.0
    assert updated.json["total_value"] == 25.5
    renamed = api.patch(f"{GOALS}{goal_id}/", json={"name": "Bought", "goal_value": 10})
    assert renamed.json["name"] == "Bought"
    listed = api.get(f"{GOALS}?workflow={workflow.id}").json["results"]
    assert [goal["id"] for goal in listed] == [goal_id]
    assert api.get(f"{GOALS}{goal_id}/").json["goal_value"] == 10
    assert api.delete(f"{GOALS}{goal_id}/").status_code == 204
    with firm_context(acme.id):
        assert db.session.query(WorkflowGoal).count() == 0


def test_a_goal_node_must_be_in_the_goals_workflow(api, acme, workflow):
    other = make_workflow(acme, name="Other", nodes=WELCOME_NODES)
    response = api.post(
        GOALS, json={"workflow": workflow.id, "name": "G", "goal_node": goal_node(other)}
    )
    assert response.status_code == 422
    assert response.json["error"]["fields"] == {"goal_node": ["is a node of another workflow"]}


def test_a_negative_goal_value_is_refused(api, acme, workflow):
    response = api.post(GOALS, json={"workflow": workflow.id, "name": "G", "goal_value": -1})
    assert response.status_code == 400
    assert "goal_value" in response.json["error"]["fields"]
