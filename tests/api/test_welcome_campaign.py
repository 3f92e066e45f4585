"""The seed's "Usage Examples", done over the API: build the Welcome
Campaign, activate it, and watch a contact enter it."""

from __future__ import annotations

WF = "/api/v1/automation/workflows/"


def build_welcome_campaign(api, trigger_type: str = "contact_created") -> dict:
    workflow = api.post(
        WF,
        json={"name": "Welcome Campaign", "description": "Welcome new contacts", "status": "draft"},
    )
    assert workflow.status_code == 201, workflow.json
    wf_id = workflow.json["id"]
    trigger = api.post(
        "/api/v1/automation/triggers/",
        json={
            "workflow": wf_id,
            "trigger_type": trigger_type,
            "configuration": {},
            "is_active": True,
        },
    )
    assert trigger.status_code == 201, trigger.json
    email_node = api.post(
        "/api/v1/automation/nodes/",
        json={
            "workflow": wf_id,
            "node_id": "send_welcome_email",
            "node_type": "send_email",
            "label": "Send Welcome Email",
            "position_x": 100,
            "position_y": 100,
            "configuration": {
                "template_id": 123,
                "subject": "Welcome!",
                "body_text": "Hi {{ contact.first_name }}",
            },
        },
    )
    assert email_node.status_code == 201, email_node.json
    wait_node = api.post(
        "/api/v1/automation/nodes/",
        json={
            "workflow": wf_id,
            "node_id": "wait_2_days",
            "node_type": "wait_time",
            "label": "Wait 2 Days",
            "position_x": 100,
            "position_y": 200,
            "configuration": {"wait_type": "time", "wait_duration_hours": 48},
        },
    )
    assert wait_node.status_code == 201, wait_node.json
    edge = api.post(
        "/api/v1/automation/edges/",
        json={
            "workflow": wf_id,
            "source_node": email_node.json["id"],
            "target_node": wait_node.json["id"],
        },
    )
    assert edge.status_code == 201, edge.json
    assert edge.json["source_node"] == email_node.json["id"]
    return api.get(f"{WF}{wf_id}/").json


def test_the_welcome_campaign_is_built_and_runs(api, acme):
    from app.automation.engine.jobs import drain

    workflow = build_welcome_campaign(api)
    assert [n["node_id"] for n in workflow["nodes"]] == ["send_welcome_email", "wait_2_days"]
    assert workflow["triggers"][0]["trigger_type"] == "contact_created"
    assert len(workflow["edges"]) == 1

    activated = api.post(f"{WF}{workflow['id']}/activate/")
    assert activated.status_code == 200, activated.json
    assert activated.json["status"] == "active"
    assert activated.json["version"] == 1

    contact = api.post("/api/v1/contacts/", json={"email": "new@example.com", "first_name": "Ann"})
    assert contact.status_code == 201
    drain()

    executions = api.get(f"{WF}{workflow['id']}/executions/").json["results"]
    assert len(executions) == 1
    execution = executions[0]
    assert execution["contact"] == contact.json["id"]
    assert execution["workflow"] == workflow["id"]
    assert execution["version"] == 1
    assert execution["trigger_type"] == "contact_created"

    detail = api.get(f"/api/v1/automation/executions/{execution['id']}/").json
    assert detail["execution_path"][:1] == ["send_welcome_email"]
    assert detail["flow_states"][0]["node_id"] == "send_welcome_email"
    assert detail["status"] == "waiting"
    assert detail["current_node"] == "wait_2_days"

    flow = api.get(f"{WF}{workflow['id']}/flow_visualization/").json
    visits = {node["id"]: node["visits"] for node in flow["nodes"]}
    assert visits["send_welcome_email"] == 1

    analytics = api.get(f"{WF}{workflow['id']}/analytics/").json
    assert analytics["total_executions"] == 1


def test_the_welcome_campaign_is_triggered_manually_once_per_key(api, acme):
    workflow = build_welcome_campaign(api, trigger_type="manual")
    assert api.post(f"{WF}{workflow['id']}/activate/").status_code == 200
    contact = api.post("/api/v1/contacts/", json={"email": "manual@example.com"}).json
    call = {"contact_id": contact["id"], "context": {"source": "manual"}}
    first = api.post(f"{WF}{workflow['id']}/trigger/", json=call, headers={"Idempotency-Key": "k1"})
    assert first.status_code == 201, first.json
    assert first.json["context_data"]["source"] == "manual"
    again = api.post(f"{WF}{workflow['id']}/trigger/", json=call, headers={"Idempotency-Key": "k1"})
    assert again.status_code == 201
    assert again.json["id"] == first.json["id"]
