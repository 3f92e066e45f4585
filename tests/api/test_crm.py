"""Contacts, tags, lists, forms, deals, tasks and inbound events."""

from __future__ import annotations

from app.extensions import db
from app.models import Contact, EventLog, WorkflowExecution
from app.tenancy import firm_context
from tests.factories import WELCOME_EDGES, WELCOME_NODES, make_contact, make_workflow

CONTACTS = "/api/v1/contacts/"


def test_it_creates_a_contact_with_tags_and_lists(api, acme):
    newsletter = api.post("/api/v1/lists/", json={"name": "Newsletter"}).json
    response = api.post(
        CONTACTS,
        json={
            "email": "Ann@Example.com",
            "first_name": "Ann",
            "score": 5,
            "timezone": "Europe/Berlin",
            "custom_fields": {"plan": "pro"},
            "tags": ["vip", "vip", "beta"],
            "lists": [newsletter["id"]],
        },
    )
    assert response.status_code == 201, response.json
    contact = response.json
    assert contact["email"] == "ann@example.com"
    assert sorted(contact["tags"]) == ["beta", "vip"]
    assert contact["lists"] == [newsletter["id"]]
    assert contact["custom_fields"] == {"plan": "pro"}
    assert api.get(f"{CONTACTS}{contact['id']}/").json == contact


def test_a_contact_email_is_unique_per_firm(api, acme, globex):
    make_contact(globex, email="ann@example.com")
    assert api.post(CONTACTS, json={"email": "ann@example.com"}).status_code == 201
    again = api.post(CONTACTS, json={"email": "ANN@example.com"})
    assert again.status_code == 409
    assert again.json["error"]["fields"] == {"email": ["already taken"]}


def test_contact_fields_are_validated(api, acme):
    response = api.post(
        CONTACTS, json={"email": "not-an-email", "timezone": "Mars/Olympus", "score": "high"}
    )
    assert response.status_code == 400
    assert {"email", "timezone", "score"} <= set(response.json["error"]["fields"])


def test_a_contact_in_another_firms_list_is_refused(api, acme, globex, token_for, charlie):
    from tests.api.conftest import ApiClient

    theirs = ApiClient(api.client, token_for(charlie)).post(
        "/api/v1/lists/", json={"name": "Secret"}
    )
    response = api.post(CONTACTS, json={"email": "a@b.co", "lists": [theirs.json["id"]]})
    assert response.status_code == 422


def test_it_updates_and_deletes_a_contact(api, acme):
    contact = make_contact(acme, email="ann@example.com")
    make_contact(acme, email="taken@example.com")
    updated = api.patch(f"{CONTACTS}{contact.id}/", json={"score": 42, "unsubscribed": True})
    assert updated.status_code == 200
    assert updated.json["score"] == 42
    assert updated.json["unsubscribed_at"] is not None
    assert (
        api.patch(f"{CONTACTS}{contact.id}/", json={"email": "taken@example.com"}).status_code
        == 409
    )
    assert api.delete(f"{CONTACTS}{contact.id}/").status_code == 204
    with firm_context(acme.id):
        assert db.session.get(Contact, contact.id) is None


def test_it_filters_contacts(api, acme):
    ann = api.post(CONTACTS, json={"email": "ann@example.com", "tags": ["vip"]}).json
    api.post(CONTACTS, json={"email": "bob@example.com"})
    assert [c["id"] for c in api.get(f"{CONTACTS}?tag=vip").json["results"]] == [ann["id"]]
    by_email = api.get(f"{CONTACTS}?email=ann@example.com").json["results"]
    assert [c["id"] for c in by_email] == [ann["id"]]


def test_it_tags_and_untags_a_contact(api, acme):
    contact = make_contact(acme)
    tagged = api.post(f"{CONTACTS}{contact.id}/tags/", json={"tag": "vip"})
    assert tagged.status_code == 201
    assert tagged.json["tags"] == ["vip"]
    assert api.post(f"{CONTACTS}{contact.id}/tags/", json={"tag": ""}).status_code == 400
    assert api.delete(f"{CONTACTS}{contact.id}/tags/vip/").status_code == 204
    assert api.get(f"{CONTACTS}{contact.id}/").json["tags"] == []
    assert api.delete(f"{CONTACTS}{contact.id}/tags/vip/").status_code == 404


def test_it_adds_and_removes_list_members(api, acme):
    contact = make_contact(acme)
    newsletter = api.post("/api/v1/lists/", json={"name": "Newsletter"}).json
    added = api.post(f"{CONTACTS}{contact.id}/lists/", json={"list": newsletter["id"]})
    assert added.status_code == 201
    assert added.json["lists"] == [newsletter["id"]]
    assert api.post(f"{CONTACTS}{contact.id}/lists/", json={"list": 999999}).status_code == 422
    assert api.delete(f"{CONTACTS}{contact.id}/lists/{newsletter['id']}/").status_code == 204
    assert api.get(f"{CONTACTS}{contact.id}/").json["lists"] == []


def test_lists_crud(api, acme):
    created = api.post("/api/v1/lists/", json={"name": "Leads", "description": "warm"})
    assert created.status_code == 201
    list_id = created.json["id"]
    assert api.post("/api/v1/lists/", json={"name": "Leads"}).status_code == 409
    assert api.patch(f"/api/v1/lists/{list_id}/", json={"name": "Hot"}).json["name"] == "Hot"
    assert [row["id"] for row in api.get("/api/v1/lists/").json["results"]] == [list_id]
    assert api.get(f"/api/v1/lists/{list_id}/").json["description"] == "warm"
    assert api.delete(f"/api/v1/lists/{list_id}/").status_code == 204


def test_forms_crud_with_a_read_only_key(api, acme):
    created = api.post(
        "/api/v1/forms/",
        json={
            "name": "Signup",
            "fields": [
                {"name": "email", "label": "Email", "type": "email", "required": True},
                {"name": "custom.company", "label": "Company"},
            ],
        },
    )
    assert created.status_code == 201, created.json
    form = created.json
    assert len(form["form_key"]) >= 12
    refused = api.patch(f"/api/v1/forms/{form['id']}/", json={"form_key": "mine"})
    assert refused.status_code == 400
    assert refused.json["error"]["fields"] == {"form_key": ["unknown field"]}
    renamed = api.patch(f"/api/v1/forms/{form['id']}/", json={"name": "Join"})
    assert renamed.json["form_key"] == form["form_key"]
    bad_field = api.post("/api/v1/forms/", json={"name": "Bad", "fields": [{"name": "password"}]})
    assert bad_field.status_code == 400
    assert "fields.0.name" in bad_field.json["error"]["fields"]
    assert len(api.get("/api/v1/forms/").json["results"]) == 1
    assert api.get(f"/api/v1/forms/{form['id']}/").json["name"] == "Join"
    assert api.delete(f"/api/v1/forms/{form['id']}/").status_code == 204


def test_deals_crud_and_closing(api, acme):
    contact = make_contact(acme)
    created = api.post(
        "/api/v1/deals/",
        json={"contact": contact.id, "title": "Pro plan", "value": 1200, "stage": "proposal"},
    )
    assert created.status_code == 201, created.json
    deal = created.json
    assert deal["status"] == "open"
    assert deal["value"] == 1200
    won = api.patch(f"/api/v1/deals/{deal['id']}/", json={"status": "won"})
    assert won.json["status"] == "won"
    assert won.json["closed_at"] is not None
    assert api.patch(f"/api/v1/deals/{deal['id']}/", json={"status": "maybe"}).status_code == 400
    listed = api.get(f"/api/v1/deals/?contact={contact.id}&status=won").json["results"]
    assert [d["id"] for d in listed] == [deal["id"]]
    assert api.get(f"/api/v1/deals/{deal['id']}/").json["title"] == "Pro plan"
    assert api.delete(f"/api/v1/deals/{deal['id']}/").status_code == 204


def test_tasks_crud(api, acme, alice, globex, charlie):
    contact = make_contact(acme)
    created = api.post(
        "/api/v1/tasks/",
        json={
            "title": "Call",
            "contact": contact.id,
            "assignee": alice.id,
            "due_at": "2026-12-01T09:00:00Z",
        },
    )
    assert created.status_code == 201, created.json
    task = created.json
    assert task["assignee"] == alice.id
    assert task["due_at"].startswith("2026-12-01T09:00:00")
    foreign = api.post("/api/v1/tasks/", json={"title": "x", "assignee": charlie.id})
    assert foreign.status_code == 422
    done = api.patch(f"/api/v1/tasks/{task['id']}/", json={"status": "done"})
    assert done.json["status"] == "done"
    assert [t["id"] for t in api.get("/api/v1/tasks/?status=done").json["results"]] == [task["id"]]
    assert api.get(f"/api/v1/tasks/{task['id']}/").json["title"] == "Call"
    assert api.delete(f"/api/v1/tasks/{task['id']}/").status_code == 204


def test_an_event_starts_the_workflows_it_triggers_once(api, acme):
    make_workflow(
        acme,
        nodes=WELCOME_NODES,
        edges=WELCOME_EDGES,
        triggers=[{"trigger_type": "email_opened"}],
        status="active",
    )
    contact = make_contact(acme)
    event = {"type": "email_opened", "contact_id": contact.id, "event_id": "evt-1", "data": {}}
    first = api.post("/api/v1/events/", json=event)
    assert first.status_code == 202, first.json
    assert first.json["duplicate"] is False
    assert len(first.json["executions"]) == 1
    again = api.post("/api/v1/events/", json=event)
    assert again.json == {"event_id": "evt-1", "duplicate": True, "executions": []}
    with firm_context(acme.id):
        assert db.session.query(WorkflowExecution).count() == 1
        assert db.session.query(EventLog).filter_by(event_id="evt-1").count() == 1


def test_an_event_id_is_a_repeat_only_within_its_firm(api, api_as, acme, globex, charlie):
    event = {"type": "email_opened", "contact_id": make_contact(acme).id, "event_id": "evt-9"}
    assert api.post("/api/v1/events/", json=event).json["duplicate"] is False
    theirs = {**event, "contact_id": make_contact(globex).id}
    assert api_as(charlie).post("/api/v1/events/", json=theirs).json["duplicate"] is False


def test_an_unknown_event_type_is_a_422(api, acme):
    contact = make_contact(acme)
    response = api.post("/api/v1/events/", json={"type": "moon", "contact_id": contact.id})
    assert response.status_code == 422
    assert "type" in response.json["error"]["fields"]


def test_an_event_for_another_firms_contact_is_refused(api, acme, globex):
    theirs = make_contact(globex)
    response = api.post("/api/v1/events/", json={"type": "email_opened", "contact_id": theirs.id})
    assert response.status_code == 422


def started_for(acme, workflow) -> list[int]:
    with firm_context(acme.id):
        rows = db.session.query(WorkflowExecution).filter_by(workflow_id=workflow.id).all()
        return [row.contact_id for row in rows]


def test_api_crm_changes_fire_the_same_triggers_as_the_browser(api, acme):
    contact = make_contact(acme)
    tagged = make_workflow(
        acme,
        name="On VIP",
        nodes=WELCOME_NODES,
        edges=WELCOME_EDGES,
        triggers=[{"trigger_type": "contact_tag_added", "configuration": {"tag": "vip"}}],
        status="active",
    )
    won = make_workflow(
        acme,
        name="On won",
        nodes=WELCOME_NODES,
        edges=WELCOME_EDGES,
        triggers=[{"trigger_type": "deal_won"}],
        status="active",
    )
    api.post(f"{CONTACTS}{contact.id}/tags/", json={"tag": "other"})
    assert started_for(acme, tagged) == []
    api.post(f"{CONTACTS}{contact.id}/tags/", json={"tag": "vip"})
    assert started_for(acme, tagged) == [contact.id]

    deal = api.post("/api/v1/deals/", json={"contact": contact.id, "title": "Pro"}).json
    assert started_for(acme, won) == []
    api.patch(f"/api/v1/deals/{deal['id']}/", json={"status": "won"})
    assert started_for(acme, won) == [contact.id]
