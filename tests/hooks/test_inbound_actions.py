"""Inbound actions by e-mail address: start a workflow, add a tag
(docs/INTEGRATIONS.md "Inbound actions")."""

from __future__ import annotations

from sqlalchemy import func, select

from app.extensions import db
from app.models import Contact
from app.tenancy import firm_context
from tests.factories import WELCOME_EDGES, WELCOME_NODES, make_contact, make_workflow

WF = "/api/v1/automation/workflows/"


def _live(api, firm, **fields):
    workflow = make_workflow(
        firm, nodes=WELCOME_NODES, edges=WELCOME_EDGES, triggers=[{"trigger_type": "api"}], **fields
    )
    assert api.post(f"{WF}{workflow.id}/activate/").status_code == 200
    return workflow


def _contacts(firm, email=None) -> int:
    with firm_context(firm.id):
        stmt = select(func.count()).select_from(Contact)
        if email is not None:
            stmt = stmt.where(Contact.email == email)
        return db.session.scalar(stmt)


def test_a_start_by_email_makes_the_contact_and_keeps_the_idempotency_key(api, acme):
    workflow = _live(api, acme)
    url, key = f"{WF}{workflow.id}/trigger/", {"Idempotency-Key": "zap-1"}
    first = api.post(url, json={"email": "New.Person@Example.com"}, headers=key)
    assert first.status_code == 201, first.json
    assert _contacts(acme, "new.person@example.com") == 1
    again = api.post(url, json={"email": "new.person@example.com"}, headers=key)
    assert again.json["id"] == first.json["id"]
    assert _contacts(acme) == 1


def test_a_start_by_email_uses_the_known_contact(api, acme):
    workflow = _live(api, acme)
    known = make_contact(acme, email="ann@example.com")
    response = api.post(f"{WF}{workflow.id}/trigger/", json={"email": "ANN@example.com"})
    assert response.status_code == 201
    assert response.json["contact"] == known.id
    assert _contacts(acme) == 1


def test_a_start_names_the_contact_once_and_well(api, acme):
    workflow = _live(api, acme)
    url = f"{WF}{workflow.id}/trigger/"
    for body, field in (
        ({}, "contact_id"),
        ({"contact_id": 1, "email": "a@example.com"}, "contact_id"),
        ({"email": "not an address"}, "email"),
    ):
        response = api.post(url, json=body)
        assert response.status_code == 400, (body, response.json)
        assert field in response.json["error"]["fields"]
    assert _contacts(acme) == 0


def test_no_contact_is_made_for_a_workflow_that_cannot_start(api, acme, globex, api_as, charlie):
    paused = make_workflow(acme, nodes=WELCOME_NODES, edges=WELCOME_EDGES)
    response = api.post(f"{WF}{paused.id}/trigger/", json={"email": "x@example.com"})
    assert response.status_code == 409
    theirs = _live(api_as(charlie), globex)
    response = api.post(f"{WF}{theirs.id}/trigger/", json={"email": "x@example.com"})
    assert response.status_code == 404
    assert _contacts(acme) == 0 and _contacts(globex) == 0


def test_a_tag_by_email_tags_a_new_or_known_contact(api, acme, globex):
    known = make_contact(acme, email="ann@example.com")
    make_contact(globex, email="bob@example.com")
    response = api.post("/api/v1/contacts/tags/", json={"email": "Ann@example.com", "tag": "vip"})
    assert response.status_code == 201, response.json
    assert response.json["id"] == known.id and response.json["tags"] == ["vip"]
    response = api.post("/api/v1/contacts/tags/", json={"email": "bob@example.com", "tag": "vip"})
    assert response.status_code == 201
    assert response.json["id"] != known.id  # Acme's own new contact, not Globex's
    assert _contacts(acme, "bob@example.com") == 1 and _contacts(globex) == 1
    for body, field in (
        ({"email": "ann@example.com", "tag": ""}, "tag"),
        ({"email": "nope", "tag": "vip"}, "email"),
        ({"tag": "vip"}, "email"),
    ):
        response = api.post("/api/v1/contacts/tags/", json=body)
        assert response.status_code == 400, (body, response.json)
        assert field in response.json["error"]["fields"]


def test_portal_users_cannot_act_by_email(api_as, paula):
    response = api_as(paula).post(
        "/api/v1/contacts/tags/", json={"email": "a@example.com", "tag": "vip"}
    )
    assert response.status_code == 403
