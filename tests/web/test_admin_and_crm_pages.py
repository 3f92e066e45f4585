"""Forms, lists, tags, admin users/tokens and the queue page."""

from __future__ import annotations

from sqlalchemy import select

from app.extensions import db
from app.models import ApiToken, ContactList, Form, Tag, User
from app.tenancy import firm_context
from tests.factories import make_contact


def _rows(firm, model):
    with firm_context(firm.id):
        db.session.expire_all()
        return db.session.scalars(select(model).order_by(model.id)).all()


def test_pages_need_a_login_and_admin_pages_need_an_admin(client, signed_in, bob, paula, token_for):
    for path in ("/forms", "/lists", "/tags", "/admin", "/admin/queues"):
        assert client.get(path).status_code == 302, path
        assert client.get(path, headers=token_for(paula)).status_code == 403, path
    signed_in(bob)
    assert client.get("/forms").status_code == 200
    assert client.get("/admin").status_code == 403
    assert client.get("/admin/queues").status_code == 403


def test_it_creates_and_edits_a_form_with_its_fields(client, signed_in, alice, acme):
    token = signed_in(alice)
    assert "No forms yet" in client.get("/forms").get_data(as_text=True)
    response = client.post("/forms", data={"name": "Newsletter", "csrf_token": token})
    assert response.status_code == 302
    (form,) = _rows(acme, Form)
    page = client.get(f"/forms/{form.id}").get_data(as_text=True)
    assert f"/f/{form.form_key}" in page
    response = client.post(
        f"/forms/{form.id}",
        data={
            "csrf_token": token,
            "name": "Newsletter",
            "success_message": "Thanks!",
            "redirect_url": "",
            "field_count": "4",
            "fields-0-name": "email",
            "fields-0-label": "Email",
            "fields-0-type": "email",
            "fields-0-required": "1",
            "fields-1-name": "first_name",
            "fields-1-type": "text",
            "fields-1-remove": "1",
            "fields-2-name": "custom.company",
            "fields-2-label": "Company",
            "fields-2-type": "text",
            "fields-3-name": "",
        },
    )
    assert response.status_code == 302
    (form,) = _rows(acme, Form)
    assert form.fields == [
        {"name": "email", "label": "Email", "type": "email", "required": True},
        {"name": "custom.company", "label": "Company", "type": "text", "required": False},
    ]
    assert form.success_message == "Thanks!"


def test_a_bad_form_field_is_shown_and_nothing_saved(client, signed_in, alice, acme):
    token = signed_in(alice)
    client.post("/forms", data={"name": "Signup", "csrf_token": token})
    (form,) = _rows(acme, Form)
    before = list(form.fields)
    response = client.post(
        f"/forms/{form.id}",
        data={
            "csrf_token": token,
            "name": "Signup",
            "redirect_url": "javascript:alert(1)",
            "field_count": "1",
            "fields-0-name": "password",
            "fields-0-type": "text",
        },
    )
    assert response.status_code == 400
    body = response.get_data(as_text=True)
    assert "Field must be email, first_name" in body
    assert "Enter a full http(s) address" in body
    (form,) = _rows(acme, Form)
    assert form.fields == before


def test_lists_and_tags_are_created_counted_and_deleted(client, signed_in, alice, acme):
    token = signed_in(alice)
    assert client.post("/lists", data={"name": "Customers", "csrf_token": token}).status_code == 302
    assert client.post("/lists", data={"name": "Customers", "csrf_token": token}).status_code == 400
    assert client.post("/tags", data={"name": "vip", "csrf_token": token}).status_code == 302
    assert client.post("/tags", data={"name": " ", "csrf_token": token}).status_code == 400
    (item,) = _rows(acme, ContactList)
    (tag,) = _rows(acme, Tag)
    contact = make_contact(acme)
    client.post(f"/contacts/{contact.id}/tags", data={"tag": "vip", "csrf_token": token})
    assert ">1</td>" in client.get("/tags").get_data(as_text=True)
    assert client.post(f"/lists/{item.id}/delete", data={"csrf_token": token}).status_code == 302
    assert client.post(f"/tags/{tag.id}/delete", data={"csrf_token": token}).status_code == 302
    assert _rows(acme, ContactList) == [] and _rows(acme, Tag) == []


def test_another_firms_forms_lists_and_tags_are_404(client, signed_in, charlie, acme):
    with firm_context(acme.id):
        form = Form(name="Acme form")
        item = ContactList(name="Acme list")
        tag = Tag(name="acme")
        db.session.add_all([form, item, tag])
        db.session.commit()
    token = signed_in(charlie)
    assert client.get(f"/forms/{form.id}").status_code == 404
    assert client.post(f"/forms/{form.id}/delete", data={"csrf_token": token}).status_code == 404
    assert client.post(f"/lists/{item.id}/delete", data={"csrf_token": token}).status_code == 404
    assert client.post(f"/tags/{tag.id}/delete", data={"csrf_token": token}).status_code == 404
    assert "Acme form" not in client.get("/forms").get_data(as_text=True)
    assert len(_rows(acme, Form)) == 1


def test_an_admin_adds_a_user_with_a_role(client, signed_in, alice, acme):
    token = signed_in(alice)
    response = client.post(
        "/admin/users",
        data={
            "email": "Mia@Example.com",
            "role": "marketer",
            "password": "long enough pw",
            "csrf_token": token,
        },
    )
    assert response.status_code == 302
    mia = next(u for u in _rows(acme, User) if u.email == "mia@example.com")
    assert mia.role == "marketer" and mia.check_password("long enough pw")
    bad = client.post(
        "/admin/users",
        data={
            "email": "mia@example.com",
            "role": "owner",
            "password": "short",
            "csrf_token": token,
        },
    )
    assert bad.status_code == 400
    body = bad.get_data(as_text=True)
    assert "already has an account" in body and "Choose admin" in body and "at least 12" in body
    assert len(_rows(acme, User)) == 2  # alice and mia


def test_a_token_is_shown_once_and_can_be_revoked(client, signed_in, alice, acme):
    token = signed_in(alice)
    response = client.post(
        "/admin/tokens", data={"name": "CRM sync", "user_id": alice.id, "csrf_token": token}
    )
    assert response.status_code == 201
    body = response.get_data(as_text=True)
    raw = body.split('<code id="new-token">')[1].split("</code>")[0]
    assert raw.startswith("atk_")
    assert raw not in client.get("/admin").get_data(as_text=True)
    api = client.application.test_client()
    assert api.get("/automation", headers={"Authorization": f"Bearer {raw}"}).status_code == 200
    (row,) = _rows(acme, ApiToken)
    assert (
        client.post(f"/admin/tokens/{row.id}/revoke", data={"csrf_token": token}).status_code == 302
    )
    (row,) = _rows(acme, ApiToken)
    assert row.revoked_at is not None
    assert api.get("/automation", headers={"Authorization": f"Bearer {raw}"}).status_code == 302


def test_tokens_are_only_for_users_of_the_firm(client, signed_in, alice, charlie, acme):
    token = signed_in(alice)
    response = client.post(
        "/admin/tokens", data={"name": "x", "user_id": charlie.id, "csrf_token": token}
    )
    assert response.status_code == 400
    assert _rows(acme, ApiToken) == []


def test_the_queue_page_reports_the_mode(client, signed_in, alice, app):
    signed_in(alice)
    page = client.get("/admin/queues").get_data(as_text=True)
    if app.config.get("REDIS_URL"):
        assert "automation-engine" in page or "-engine" in page
    else:
        assert "In-process runner" in page
    assert "Executions ready now" in page
