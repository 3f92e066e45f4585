"""Forms, deals and tasks are created and changed by one domain module each
(app/automation/crm/forms.py, deals.py, tasks.py), which the pages, the API
and the workflow steps share: one set of rules, the same errors by field."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from app.automation.crm import deals, forms, tasks
from app.automation.crm.errors import CrmError
from app.clock import now
from app.extensions import db
from app.models import Deal, Form, Task
from app.tenancy import firm_context
from tests.engine.helpers import active_workflow, run
from tests.factories import make_contact

APP = Path(__file__).resolve().parents[2] / "app"


def _rows(firm, model):
    with firm_context(firm.id):
        db.session.expire_all()
        return db.session.scalars(select(model).order_by(model.id)).all()


def test_the_form_rules_name_every_bad_field_and_change_nothing(acme):
    with firm_context(acme.id):
        form = forms.create_form("  Sign   up ")
        assert form.name == "Sign up"
        assert [field["name"] for field in form.fields] == ["email", "first_name"]
        with pytest.raises(CrmError) as refused:
            forms.update_form(
                form,
                {
                    "name": " ",
                    "redirect_url": "ftp://example.com",
                    "fields": [{"name": "email"}, {"name": "email"}, {"name": "password"}],
                },
            )
        assert set(refused.value.errors) == {"name", "redirect_url", "fields.1", "fields.2"}
        assert refused.value.errors["fields.1"] == "email is on the form twice."
        db.session.rollback()
        assert form.name == "Sign up"
        changed = forms.update_form(form, {"fields": [{"name": "custom.plan_tier"}]})
        assert changed.fields == [
            {"name": "custom.plan_tier", "label": "Plan tier", "type": "text", "required": False}
        ]


def test_the_api_and_the_page_refuse_the_same_form_fields(api, client, signed_in, alice, acme):
    twice = [{"name": "email", "type": "email"}, {"name": "email", "type": "email"}]
    answer = api.post("/api/v1/forms/", json={"name": "Join", "fields": twice})
    assert answer.status_code == 400
    assert answer.json["error"]["fields"] == {"fields.1": ["email is on the form twice."]}
    made = api.post("/api/v1/forms/", json={"name": " Join ", "fields": [{"name": "timezone"}]})
    assert made.status_code == 201, made.json
    assert made.json["name"] == "Join"
    assert made.json["fields"] == [
        {"name": "timezone", "label": "Timezone", "type": "text", "required": False}
    ]
    token = signed_in(alice)
    page = client.post(
        f"/forms/{made.json['id']}",
        data={
            "csrf_token": token,
            "name": "Join",
            "field_count": "2",
            "fields-0-name": "email",
            "fields-0-type": "email",
            "fields-1-name": "email",
            "fields-1-type": "email",
        },
    )
    assert page.status_code == 400
    assert "email is on the form twice." in page.get_data(as_text=True)
    saved = client.post(
        f"/forms/{made.json['id']}",
        data={"csrf_token": token, "name": "Join", "field_count": "1", "fields-0-name": "timezone"},
    )
    assert saved.status_code == 302  # the page takes what the API takes
    (form,) = _rows(acme, Form)
    assert [field["name"] for field in form.fields] == ["timezone"]


def test_a_deal_closes_and_reopens_by_one_rule(api, acme):
    moment = now()
    assert deals.closing(None, "open", moment) == {"closed_at": None}
    assert deals.closing("open", "won", moment) == {"closed_at": moment}
    assert deals.closing("won", "won", moment) == {}
    assert deals.closing("won", None, moment) == {}
    assert deals.closing("lost", "open", moment) == {"closed_at": None}
    contact = make_contact(acme)
    made = api.post("/api/v1/deals/", json={"contact": contact.id, "title": "T", "status": "won"})
    assert made.status_code == 201 and made.json["closed_at"] is not None
    reopened = api.patch(f"/api/v1/deals/{made.json['id']}/", json={"status": "open"})
    assert reopened.json["closed_at"] is None
    foreign = api.patch(f"/api/v1/deals/{made.json['id']}/", json={"contact": 10**6})
    assert foreign.status_code == 422
    assert foreign.json["error"]["fields"] == {"contact": ["no such contact"]}


def test_the_steps_close_deals_and_make_tasks_like_the_api(acme, alice):
    contact = make_contact(acme)
    with firm_context(acme.id):
        deal = deals.create_deal({"contact_id": contact.id, "title": "Pro"})
        deal_id = deal.id
    nodes = [
        {"node_id": "win", "node_type": "update_deal", "configuration": {"status": "won"}},
        {
            "node_id": "task",
            "node_type": "create_task",
            "configuration": {"title": "x" * 280 + "{{ contact.email }}", "due_in_hours": 2},
        },
    ]
    workflow = active_workflow(acme, alice, nodes, [("win", "task")])
    assert run(workflow, contact).status == "completed"
    with firm_context(acme.id):
        db.session.expire_all()
        won = db.session.get(Deal, deal_id)
        assert won.status == "won" and won.closed_at is not None
        (task,) = db.session.scalars(select(Task)).all()
        assert len(task.title) == tasks.TITLE_MAX
        assert task.due_at - task.created_at == timedelta(hours=2)
        assert task.status == "open" and task.contact_id == contact.id


def test_views_create_no_form_deal_or_task_rows_themselves():
    """The pages and the API hold no copy of these operations."""
    pattern = re.compile(r"\b(Form|Deal|Task)\(")
    views = [*(APP / "web").glob("*.py"), *(APP / "api").glob("*.py")]
    offenders = [path.name for path in views if pattern.search(path.read_text())]
    assert offenders == []
