"""The API trigger's one-statement start (PostgreSQL) answers like the full
path: a repeated key, a key used for another contact, a paused workflow, a
new version. On SQLite every call takes the full path; both must agree."""

from __future__ import annotations

from app.extensions import db
from app.models import AuditLog, Workflow, WorkflowExecution
from app.tenancy import firm_context
from tests.api.test_query_counts import counting_statements
from tests.factories import WELCOME_EDGES, WELCOME_NODES, make_contact, make_workflow

WF = "/api/v1/automation/workflows/"


def _live(api, acme, **fields):
    """Activated as a user would (its first published version)."""
    workflow = make_workflow(
        acme, nodes=WELCOME_NODES, edges=WELCOME_EDGES, triggers=[{"trigger_type": "api"}], **fields
    )
    assert api.post(f"{WF}{workflow.id}/activate/").status_code == 200
    return workflow


def _call(api, workflow_id, contact_id, key=None):
    headers = {"Idempotency-Key": key} if key else {}
    return api.post(f"{WF}{workflow_id}/trigger/", json={"contact_id": contact_id}, headers=headers)


def test_a_start_answers_the_execution_and_audits_it(api, acme, database_url):
    workflow = _live(api, acme)
    contact = make_contact(acme)
    _call(api, workflow.id, make_contact(acme).id)  # the first call per process warms caches
    workflow_id, contact_id = workflow.id, contact.id
    with counting_statements() as statements:
        response = _call(api, workflow_id, contact_id, key="k1")
    assert response.status_code == 201, response.json
    body = response.json
    assert (body["workflow"], body["contact"], body["status"]) == (
        workflow.id,
        contact.id,
        "running",
    )
    assert body["current_node"] == "send_welcome_email" and body["execution_path"] == []
    assert body["context_data"]["event_id"] == "api:k1" and body["started_at"].endswith("Z")
    if database_url.startswith("postgresql"):
        assert len(statements) == 1, [s[:80] for s in statements]  # one round trip
    with firm_context(acme.id):
        [fired] = db.session.query(AuditLog).filter(
            AuditLog.action == "trigger.fired",
            AuditLog.data["contact_id"].as_integer() == contact.id,
        )
        assert fired.data["event_id"] == "api:k1" and fired.data["trigger_type"] == "api"


def test_a_repeated_key_returns_its_execution_and_another_contact_is_refused(api, acme):
    workflow = _live(api, acme, allow_reentry=True)
    ann, bob = make_contact(acme), make_contact(acme)
    first = _call(api, workflow.id, ann.id, key="order-1")
    again = _call(api, workflow.id, ann.id, key="order-1")
    other = _call(api, workflow.id, bob.id, key="order-1")
    assert first.status_code == again.status_code == 201
    assert again.json["id"] == first.json["id"]
    assert other.status_code == 409
    with firm_context(acme.id):
        assert db.session.query(WorkflowExecution).count() == 1


def test_a_paused_workflow_and_a_contact_inside_are_refused(api, acme):
    workflow = _live(api, acme)
    ann = make_contact(acme)
    assert _call(api, workflow.id, ann.id).status_code == 201
    assert _call(api, workflow.id, ann.id).status_code == 409  # inside, re-entry off
    with firm_context(acme.id):
        db.session.get(Workflow, workflow.id).status = "paused"
        db.session.commit()
    assert _call(api, workflow.id, make_contact(acme).id).status_code == 409


def test_a_start_after_a_new_version_runs_on_it(api, acme):
    workflow = _live(api, acme)
    assert _call(api, workflow.id, make_contact(acme).id).status_code == 201
    published = api.post(f"{WF}{workflow.id}/publish/", json={})
    assert published.status_code == 200, published.json
    second = _call(api, workflow.id, make_contact(acme).id)
    assert second.status_code == 201
    assert second.json["version"] == published.json["version"]["number"]


def test_a_manual_only_workflow_started_through_the_api_records_manual(api, acme):
    """The execution records the trigger that allowed the start (issue 22)."""
    workflow = make_workflow(
        acme, nodes=WELCOME_NODES, edges=WELCOME_EDGES, triggers=[{"trigger_type": "manual"}]
    )
    assert api.post(f"{WF}{workflow.id}/activate/").status_code == 200
    one = _call(api, workflow.id, make_contact(acme).id)
    assert one.status_code == 201, one.json
    assert one.json["trigger_type"] == "manual"
    assert one.json["context_data"]["trigger_type"] == "manual"
    assert one.json["context_data"]["source"] == "api"  # how it came in
    batch = api.post(f"{WF}{workflow.id}/trigger/", json=[{"contact_id": make_contact(acme).id}])
    assert batch.status_code == 200, batch.json
    with firm_context(acme.id):
        executions = db.session.query(WorkflowExecution).order_by(WorkflowExecution.id).all()
        assert [e.trigger_type for e in executions] == ["manual", "manual"]
        assert [e.context_data["trigger_type"] for e in executions] == ["manual", "manual"]
        fired = db.session.query(AuditLog).filter_by(action="trigger.fired").all()
        assert {f.data["trigger_type"] for f in fired} == {"manual"}


def test_an_api_trigger_beside_a_manual_one_is_the_one_recorded(api, acme):
    workflow = make_workflow(
        acme,
        nodes=WELCOME_NODES,
        edges=WELCOME_EDGES,
        triggers=[{"trigger_type": "manual"}, {"trigger_type": "api"}],
    )
    assert api.post(f"{WF}{workflow.id}/activate/").status_code == 200
    assert _call(api, workflow.id, make_contact(acme).id).json["trigger_type"] == "api"
