"""/api/v1/suppressions/: list, add with a note, filter, remove with an audit entry."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import AuditLog, Suppression
from app.tenancy import firm_context

URL = "/api/v1/suppressions/"


def test_a_marketer_adds_filters_and_removes_an_address(api_as, bob):
    api = api_as(bob)
    created = api.post(
        URL, json={"email": "Ann@Example.com", "reason": "manual", "note": "asked by phone"}
    )
    assert created.status_code == 201, created.get_json()
    body = created.get_json()
    assert body["email"] == "ann@example.com" and body["note"] == "asked by phone"
    assert body["created_by"] == f"token:{body['created_by'].split(':', 1)[1]}"
    assert body["description"].startswith("suppressed: added by hand on ")
    api.post(URL, json={"email": "other@example.com", "reason": "complaint"})

    found = api.get(URL, query_string={"email": "ANN@example.com"}).get_json()["results"]
    assert [r["id"] for r in found] == [body["id"]]
    assert len(api.get(URL, query_string={"q": "example"}).get_json()["results"]) == 2

    assert api.delete(f"{URL}{body['id']}/").status_code == 204
    with firm_context(bob.firm_id):
        assert db.session.scalars(select(Suppression.address)).all() == ["other@example.com"]
        actions = db.session.scalars(select(AuditLog.action).order_by(AuditLog.id)).all()
    assert actions.count("suppression.added") == 2 and actions[-1] == "suppression.removed"


@pytest.mark.parametrize(
    "body, field",
    [
        ({"email": "not an address"}, "email"),
        ({"email": "a@b.example", "reason": "bored"}, "reason"),
        ({"email": "a@b.example", "extra": 1}, "extra"),
        ({"reason": "manual"}, "email"),
    ],
)
def test_bad_input_names_the_field_and_changes_nothing(api, alice, body, field):
    response = api.post(URL, json=body)
    assert response.status_code == 400, response.get_json()
    assert field in response.get_json()["error"]["fields"]
    with firm_context(alice.firm_id):
        assert db.session.scalars(select(Suppression)).all() == []


def test_a_repeat_is_a_conflict(api):
    assert api.post(URL, json={"email": "a@b.example"}).status_code == 201
    repeat = api.post(URL, json={"email": "A@b.example"})
    assert repeat.status_code == 409 and "email" in repeat.get_json()["error"]["fields"]


def test_another_firms_entries_are_invisible(api_as, alice, charlie):
    entry = api_as(charlie).post(URL, json={"email": "x@globex.example"}).get_json()
    api = api_as(alice)
    assert api.get(URL).get_json()["results"] == []
    assert api.get(f"{URL}{entry['id']}/").status_code == 404
    assert api.delete(f"{URL}{entry['id']}/").status_code == 404


def test_a_phone_number_is_suppressed_for_sms(api):
    created = api.post(URL, json={"phone": "+1 (555) 010-2000", "reason": "unsubscribe"})
    assert created.status_code == 201, created.get_json()
    body = created.get_json()
    assert body["channel"] == "sms" and body["phone"] == "+15550102000" and body["email"] is None
    api.post(URL, json={"email": "a@b.example"})
    found = api.get(URL, query_string={"phone": "+1 555 010 2000"}).get_json()["results"]
    assert [r["id"] for r in found] == [body["id"]]
    only_sms = api.get(URL, query_string={"channel": "sms"}).get_json()["results"]
    assert [r["id"] for r in only_sms] == [body["id"]]
    repeat = api.post(URL, json={"phone": "+15550102000"})
    assert repeat.status_code == 409 and "phone" in repeat.get_json()["error"]["fields"]


@pytest.mark.parametrize(
    "body, field",
    [
        ({"phone": "call me"}, "phone"),
        ({"phone": "12"}, "phone"),
        ({"phone": "+1 555 0100", "email": "a@b.example"}, "email"),
    ],
)
def test_a_bad_phone_number_names_the_field(api, alice, body, field):
    response = api.post(URL, json=body)
    assert response.status_code == 400, response.get_json()
    assert field in response.get_json()["error"]["fields"]
    with firm_context(alice.firm_id):
        assert db.session.scalars(select(Suppression)).all() == []
