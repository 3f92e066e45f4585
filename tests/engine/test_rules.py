"""The rules evaluator on every operator and every kind of field."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from app.automation.engine.context import facts_for
from app.automation.rules.evaluator import compare, evaluate, explain
from app.extensions import db
from app.models import ContactList, Deal, Tag, TrackingEvent
from app.tenancy import firm_context
from tests.factories import make_contact

FACTS = {
    "contact": {
        "email": "Ann@Example.com",
        "first_name": "Ann",
        "score": 85,
        "unsubscribed": False,
        "phone": "",
        "created_at": datetime(2026, 1, 10, tzinfo=UTC),
        "custom_fields": {
            "plan": "pro",
            "seats": "12",
            "renewal": "2026-06-01",
            "utm.source": "ads",
        },
    },
    "deal": {"stage": "proposal", "value": 1500.0, "status": "open"},
    "context": {"source": "webinar", "order": {"total": 99}},
    "tags": {"VIP", "newsletter"},
    "lists": {3, 7},
    "events": [("open", "welcome"), ("click", "offer")],
}


def rule(field, op, value=None):
    return {"match": "all", "rules": [{"field": field, "op": op, "value": value}]}


@pytest.mark.parametrize(
    ("field", "op", "value", "expected"),
    [
        ("contact.score", "eq", 85, True),
        ("contact.score", "eq", "85", True),
        ("contact.first_name", "eq", "ann", True),
        ("contact.first_name", "neq", "Bob", True),
        ("contact.first_name", "neq", "ANN", False),
        ("contact.score", "gt", 84, True),
        ("contact.score", "gt", 85, False),
        ("contact.score", "gte", 85, True),
        ("contact.score", "lt", 100, True),
        ("contact.score", "lte", 84, False),
        ("contact.custom.seats", "gt", 9, True),
        ("contact.custom.renewal", "lt", "2026-07-01", True),
        ("contact.created_at", "gte", "2026-01-01T00:00:00Z", True),
        ("contact.email", "contains", "example", True),
        ("contact.email", "not_contains", "gmail", True),
        ("contact.email", "starts_with", "ann@", True),
        ("contact.custom.plan", "in", ["basic", "pro"], True),
        ("contact.custom.plan", "in", "basic, enterprise", False),
        ("contact.phone", "is_set", None, False),
        ("contact.phone", "is_not_set", None, True),
        ("contact.custom.plan", "is_set", None, True),
        ("contact.custom.missing", "is_not_set", None, True),
        ("contact.custom.missing", "eq", "x", False),
        ("contact.custom.missing", "neq", "x", True),
        ("contact.custom.missing", "gt", 1, False),
        ("contact.custom.utm.source", "eq", "ads", True),
        ("contact.unsubscribed", "eq", "false", True),
        ("deal.stage", "eq", "proposal", True),
        ("deal.value", "gte", 1000, True),
        ("context.source", "eq", "webinar", True),
        ("context.order.total", "lt", 100, True),
        ("context.nothing", "is_set", None, False),
    ],
)
def test_field_operators(field, op, value, expected):
    assert evaluate(rule(field, op, value), FACTS) is expected


def test_deal_fields_without_an_open_deal_are_missing():
    facts = {**FACTS, "deal": None}
    assert evaluate(rule("deal.stage", "eq", "proposal"), facts) is False
    assert evaluate(rule("deal.stage", "is_not_set"), facts) is True


def test_tags_lists_and_events():
    assert evaluate({"rules": [{"tag": "vip", "op": "has"}]}, FACTS)
    assert evaluate({"rules": [{"tag": "customer", "op": "has_not"}]}, FACTS)
    assert not evaluate({"rules": [{"tag": "newsletter", "op": "has_not"}]}, FACTS)
    assert evaluate({"rules": [{"list": 3, "op": "in"}]}, FACTS)
    assert evaluate({"rules": [{"list": "4", "op": "not_in"}]}, FACTS)
    assert evaluate({"rules": [{"event": "email_opened", "op": "happened"}]}, FACTS)
    assert evaluate(
        {"rules": [{"event": "email_clicked", "node": "offer", "op": "happened"}]}, FACTS
    )
    assert not evaluate(
        {"rules": [{"event": "email_clicked", "node": "welcome", "op": "happened"}]}, FACTS
    )


def test_groups_match_all_any_and_nest():
    yes = {"field": "contact.score", "op": "gt", "value": 1}
    no = {"field": "contact.score", "op": "lt", "value": 1}
    assert evaluate({"match": "all", "rules": [yes, yes]}, FACTS)
    assert not evaluate({"match": "all", "rules": [yes, no]}, FACTS)
    assert evaluate({"match": "any", "rules": [no, yes]}, FACTS)
    assert not evaluate({"match": "any", "rules": [no, no]}, FACTS)
    assert evaluate({"rules": [yes, {"match": "any", "rules": [no, {"tag": "vip"}]}]}, FACTS)
    assert evaluate({"match": "all", "rules": []}, FACTS)
    assert not evaluate({"match": "any", "rules": []}, FACTS)


def test_explain_gives_the_values_that_decided():
    group = {
        "match": "any",
        "rules": [
            {"field": "contact.score", "op": "gte", "value": 90},
            {"match": "all", "rules": [{"tag": "vip", "op": "has"}]},
        ],
    }
    verdict, score, nested = explain(group, FACTS)
    assert verdict == {"match": "any", "result": True}
    assert (score["actual"], score["result"]) == (85, False)
    assert nested["result"] is True
    assert nested["rules"][0]["actual"] is True


def test_an_unknown_operator_is_an_error():
    with pytest.raises(ValueError):
        compare("between", 1, 2)


def test_facts_for_a_contact_load_tags_lists_deal_and_this_workflows_events(acme):
    contact = make_contact(acme, score=5)
    with firm_context(acme.id):
        tag, lst = Tag(name="vip"), ContactList(name="L")
        db.session.add_all([tag, lst])
        db.session.flush()
        contact.tags.append(tag)
        contact.lists.append(lst)
        db.session.add(Deal(contact_id=contact.id, title="D", stage="won-soon"))
        db.session.add(
            TrackingEvent(contact_id=contact.id, workflow_id=7, node_id="m", kind="open")
        )
        db.session.add(
            TrackingEvent(contact_id=contact.id, workflow_id=8, node_id="m", kind="click")
        )
        db.session.commit()
        facts = facts_for(contact, workflow_id=7, context={"k": 1})
        group = {
            "rules": [
                {"tag": "vip"},
                {"list": lst.id},
                {"field": "deal.stage", "op": "eq", "value": "won-soon"},
                {"event": "email_opened", "node": "m"},
                {"event": "email_clicked", "op": "not_happened"},
                {"field": "context.k", "op": "eq", "value": 1},
            ]
        }
        assert evaluate(group, facts)
