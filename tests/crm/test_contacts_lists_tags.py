"""Contacts, lists and tags are created, changed and attached by one
domain package (app/automation/crm/contacts.py, lists.py), which the pages
and the API both call."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy import select

from app.automation.crm import lists
from app.automation.crm.errors import CrmError
from app.extensions import db
from app.models import AuditLog, ContactList, Tag
from app.tenancy import firm_context
from tests.factories import make_contact

APP = Path(__file__).resolve().parents[2] / "app"


def _names(firm, model) -> list[str]:
    db.session.expire_all()
    with firm_context(firm.id):
        return list(db.session.scalars(select(model.name).order_by(model.id)))


def test_the_domain_cleans_names_and_refuses_a_taken_one(acme):
    with firm_context(acme.id):
        item = lists.create_list("  VIP   buyers ")
        assert item.name == "VIP buyers"
        with pytest.raises(CrmError) as taken:
            lists.create_list("VIP buyers")
        assert (taken.value.field, taken.value.conflict) == ("name", True)
        db.session.rollback()
        with pytest.raises(CrmError) as empty:
            lists.update_list(item, name="   ")
        assert (empty.value.field, empty.value.conflict) == ("name", False)
        db.session.rollback()
        assert lists.update_list(item, name="VIP buyers").name == "VIP buyers"  # itself: fine


def test_the_page_and_the_api_refuse_the_same_taken_list_name(api, client, signed_in, alice, acme):
    token = signed_in(alice)
    assert client.post("/lists", data={"name": "Customers", "csrf_token": token}).status_code == 302
    page = client.post("/lists", data={"name": " Customers ", "csrf_token": token})
    assert page.status_code == 400
    assert "A list with this name exists already." in page.get_data(as_text=True)
    answer = api.post("/api/v1/lists/", json={"name": "Customers  "})
    assert answer.status_code == 409
    assert answer.json["error"]["fields"] == {"name": ["A list with this name exists already."]}
    created = api.post("/api/v1/lists/", json={"name": "  Prospects\tQ3 "})
    assert created.status_code == 201 and created.json["name"] == "Prospects Q3"
    renamed = api.patch(f"/api/v1/lists/{created.json['id']}/", json={"name": "Customers"})
    assert renamed.status_code == 409
    assert api.patch(f"/api/v1/lists/{created.json['id']}/", json={"name": " "}).status_code == 400
    assert _names(acme, ContactList) == ["Customers", "Prospects Q3"]


def test_tagging_from_the_page_and_the_api_is_one_operation(api, client, signed_in, alice, acme):
    token = signed_in(alice)
    contact = make_contact(acme)
    client.post(f"/contacts/{contact.id}/tags", data={"tag": " vip ", "csrf_token": token})
    assert api.post(f"/api/v1/contacts/{contact.id}/tags/", json={"tag": "vip"}).status_code == 201
    answer = api.post(f"/api/v1/contacts/{contact.id}/tags/", json={"tag": "big  spender"})
    assert sorted(answer.json["tags"]) == ["big spender", "vip"]
    assert api.delete(f"/api/v1/contacts/{contact.id}/tags/vip/").status_code == 204
    assert _names(acme, Tag) == ["vip", "big spender"]
    with firm_context(acme.id):
        actions = list(
            db.session.scalars(
                select(AuditLog.action)
                .where(AuditLog.action.like("contact.tag%"))
                .order_by(AuditLog.id)
            )
        )
    # The page's "vip" and the API's "big spender" (the repeat changed nothing).
    assert actions == ["contact.tag_added", "contact.tag_added", "contact.tag_removed"]


def test_the_same_address_is_refused_on_both_sides_whatever_its_case(
    api, client, signed_in, alice, acme
):
    token = signed_in(alice)
    form = {"email": "Ann@Example.com", "timezone": "UTC", "score": "0", "csrf_token": token}
    assert client.post("/contacts/new", data=form).status_code == 302
    answer = api.post("/api/v1/contacts/", json={"email": "ANN@example.COM"})
    assert answer.status_code == 409
    assert answer.json["error"]["fields"] == {"email": ["already taken"]}
    other = api.post("/api/v1/contacts/", json={"email": "Bob@Example.com"})
    assert other.status_code == 201 and other.json["email"] == "bob@example.com"
    moved = api.patch(f"/api/v1/contacts/{other.json['id']}/", json={"email": "ann@EXAMPLE.com"})
    assert moved.status_code == 409
    page = client.post(
        f"/contacts/{other.json['id']}/edit", data={**form, "email": "ANN@example.com"}
    )
    assert page.status_code == 400
    assert "Another contact already has this e-mail address." in page.get_data(as_text=True)
    gone = api.patch(f"/api/v1/contacts/{other.json['id']}/", json={"unsubscribed": True})
    assert gone.json["unsubscribed"] is True and gone.json["unsubscribed_at"]


def test_views_create_no_contact_list_or_tag_rows_themselves():
    """The pages and the API hold no copy of these operations."""
    pattern = re.compile(r"\b(Contact|ContactList|Tag)\(")
    views = [*(APP / "web").glob("*.py"), *(APP / "api").glob("*.py")]
    offenders = [path.name for path in views if pattern.search(path.read_text())]
    assert offenders == []
