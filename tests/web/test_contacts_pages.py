"""Contact pages: list, filters, create/edit with inline errors, tags and
lists, the execution timeline ("why did this contact get this email?")."""

from __future__ import annotations

from sqlalchemy import select

from app.extensions import db
from app.models import (
    Contact,
    ContactFlowState,
    ContactList,
    OutboxMessage,
    Tag,
    TrackingEvent,
    WorkflowExecution,
)
from app.tenancy import firm_context
from tests.factories import WELCOME_EDGES, WELCOME_NODES, make_contact, make_workflow
from tests.web.conftest import HX


def _contacts(firm):
    with firm_context(firm.id):
        return db.session.scalars(select(Contact).order_by(Contact.id)).all()


def test_anonymous_and_portal_are_kept_out(client, acme, paula, token_for):
    contact = make_contact(acme)
    assert client.get("/contacts").status_code == 302
    assert client.get(f"/contacts/{contact.id}").status_code == 302
    assert client.get("/contacts", headers=token_for(paula)).status_code == 403


def test_it_lists_searches_and_filters_by_tag_and_list(client, signed_in, alice, acme, globex):
    ann = make_contact(acme, email="ann@example.com", first_name="Ann")
    make_contact(acme, email="ben@example.com", first_name="Ben")
    make_contact(globex, email="gus@globex.test")
    with firm_context(acme.id):
        vip = Tag(name="vip")
        newsletter = ContactList(name="Newsletter")
        db.session.add_all([vip, newsletter])
        contact = db.session.get(Contact, ann.id)
        contact.tags.append(vip)
        contact.lists.append(newsletter)
        db.session.commit()
        vip_id, list_id = vip.id, newsletter.id
    signed_in(alice)
    page = client.get("/contacts").get_data(as_text=True)
    assert "ann@example.com" in page and "ben@example.com" in page
    assert "gus@globex.test" not in page
    found = client.get("/contacts?q=BEN", headers=HX).get_data(as_text=True)
    assert "ben@example.com" in found and "ann@example.com" not in found and "<html" not in found
    tagged = client.get(f"/contacts?tag={vip_id}").get_data(as_text=True)
    assert "ann@example.com" in tagged and "ben@example.com" not in tagged
    listed = client.get(f"/contacts?list={list_id}", headers=HX).get_data(as_text=True)
    assert "ann@example.com" in listed and "ben@example.com" not in listed


def test_it_creates_a_contact(client, signed_in, alice, acme):
    token = signed_in(alice)
    response = client.post(
        "/contacts/new",
        data={
            "email": "New@Example.com",
            "first_name": "Nia",
            "score": "12",
            "timezone": "Europe/Berlin",
            "custom_fields": "company = Acme\nplan = pro",
            "csrf_token": token,
        },
    )
    assert response.status_code == 302
    (contact,) = _contacts(acme)
    assert contact.email == "new@example.com"
    assert contact.score == 12
    assert contact.custom_fields == {"company": "Acme", "plan": "pro"}


def test_bad_input_shows_every_field_error_and_saves_nothing(client, signed_in, alice, acme):
    make_contact(acme, email="taken@example.com")
    token = signed_in(alice)
    response = client.post(
        "/contacts/new",
        data={
            "email": "taken@example.com",
            "score": "lots",
            "timezone": "Mars/Base",
            "custom_fields": "no equals sign",
            "csrf_token": token,
        },
    )
    assert response.status_code == 400
    body = response.get_data(as_text=True)
    assert "Another contact already has this e-mail address." in body
    assert "Enter a whole number." in body
    assert "Use a time zone name" in body
    assert "Line 1: write key = value" in body
    assert len(_contacts(acme)) == 1


def test_it_edits_a_contact(client, signed_in, alice, acme):
    contact = make_contact(acme, email="edit@example.com")
    token = signed_in(alice)
    assert client.get(f"/contacts/{contact.id}/edit").status_code == 200
    response = client.post(
        f"/contacts/{contact.id}/edit",
        data={
            "email": "edit@example.com",
            "first_name": "Eda",
            "unsubscribed": "1",
            "csrf_token": token,
        },
    )
    assert response.status_code == 302
    db.session.expire_all()
    (saved,) = _contacts(acme)
    assert saved.first_name == "Eda" and saved.unsubscribed and saved.unsubscribed_at


def test_tags_and_lists_are_added_and_removed_in_place(client, signed_in, alice, acme):
    contact = make_contact(acme)
    with firm_context(acme.id):
        db.session.add(ContactList(name="Customers"))
        db.session.commit()
        list_id = db.session.scalar(select(ContactList.id))
    token = signed_in(alice)
    added = client.post(
        f"/contacts/{contact.id}/tags", data={"tag": " vip ", "csrf_token": token}, headers=HX
    )
    assert added.status_code == 200 and "vip" in added.get_data(as_text=True)
    assert "<html" not in added.get_data(as_text=True)
    empty = client.post(
        f"/contacts/{contact.id}/tags", data={"tag": "", "csrf_token": token}, headers=HX
    )
    assert empty.status_code == 400
    client.post(f"/contacts/{contact.id}/lists", data={"list_id": list_id, "csrf_token": token})
    db.session.expire_all()
    with firm_context(acme.id):
        saved = db.session.get(Contact, contact.id)
        assert saved.tag_names == ["vip"]
        assert [item.name for item in saved.lists] == ["Customers"]
        tag_id = saved.tags[0].id
    client.post(
        f"/contacts/{contact.id}/tags/{tag_id}/remove", data={"csrf_token": token}, headers=HX
    )
    client.post(f"/contacts/{contact.id}/lists/{list_id}/remove", data={"csrf_token": token})
    db.session.expire_all()
    with firm_context(acme.id):
        saved = db.session.get(Contact, contact.id)
        assert saved.tags == [] and saved.lists == []


def test_the_timeline_says_why_a_contact_got_an_email(client, signed_in, alice, acme):
    workflow = make_workflow(acme, nodes=WELCOME_NODES, edges=WELCOME_EDGES, status="active")
    contact = make_contact(acme, email="why@example.com", score=90)
    with firm_context(acme.id):
        execution = WorkflowExecution(
            workflow_id=workflow.id,
            contact_id=contact.id,
            status="waiting",
            current_node="wait_2_days",
            idempotency_key="why",
        )
        db.session.add(execution)
        db.session.flush()
        db.session.add(
            ContactFlowState(
                execution_id=execution.id,
                workflow_id=workflow.id,
                node_id="check_score",
                node_type="condition",
                action_status="success",
                branch="yes",
                next_node="send_welcome_email",
                action_result={
                    "result": True,
                    "explanation": [
                        {
                            "rule": {"field": "contact.score", "op": "gte", "value": 80},
                            "actual": 90,
                            "result": True,
                        },
                    ],
                },
            )
        )
        db.session.add(
            ContactFlowState(
                execution_id=execution.id,
                workflow_id=workflow.id,
                node_id="send_welcome_email",
                node_type="send_email",
                action_status="success",
                next_node="wait_2_days",
            )
        )
        message = OutboxMessage(
            execution_id=execution.id,
            workflow_id=workflow.id,
            contact_id=contact.id,
            node_id="send_welcome_email",
            visit=1,
            channel="email",
            status="recorded",
            to_address="why@example.com",
            subject="Welcome <b>friend</b>",
            message_id="<m1@x>",
        )
        db.session.add(message)
        db.session.flush()
        db.session.add(
            TrackingEvent(
                outbox_id=message.id,
                contact_id=contact.id,
                kind="open",
                user_agent="<script>alert(1)</script>",
            )
        )
        db.session.commit()
    signed_in(alice)
    page = client.get(f"/contacts/{contact.id}").get_data(as_text=True)
    assert "Welcome Campaign" in page
    assert "contact.score" in page and "≥" in page and "why-true" in page
    assert "took <strong data-hx-disable>yes</strong>" in page
    assert "Welcome &lt;b&gt;friend&lt;/b&gt;" in page
    assert "opened 1×" in page
    assert "<script>alert(1)" not in page and "&lt;script&gt;" in page
    fragment = client.get(f"/contacts/{contact.id}", headers=HX).get_data(as_text=True)
    assert "<html" not in fragment and "contact.score" in fragment


def test_another_firms_contact_is_404(client, signed_in, charlie, acme):
    contact = make_contact(acme)
    token = signed_in(charlie)
    assert client.get(f"/contacts/{contact.id}").status_code == 404
    assert client.get(f"/contacts/{contact.id}/edit").status_code == 404
    response = client.post(f"/contacts/{contact.id}/tags", data={"tag": "x", "csrf_token": token})
    assert response.status_code == 404
    with firm_context(acme.id):
        assert db.session.scalars(select(Tag)).all() == []


def test_the_list_loads_tags_without_a_query_per_contact(
    client, signed_in, alice, acme, count_queries
):
    signed_in(alice)
    with firm_context(acme.id):
        tag = Tag(name="vip")
        db.session.add(tag)
        db.session.commit()

    def tagged_contacts(n):
        for _ in range(n):
            contact = make_contact(acme)
            with firm_context(acme.id):
                db.session.get(Contact, contact.id).tags.append(tag)
                db.session.commit()

    tagged_contacts(2)
    with count_queries() as few:
        client.get("/contacts", headers=HX)
    tagged_contacts(10)
    with count_queries() as many:
        page = client.get("/contacts", headers=HX).get_data(as_text=True)
    assert page.count(">vip<") == 12
    assert many["n"] == few["n"], many["sql"]
