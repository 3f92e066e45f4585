"""Every action node, end to end: enroll, drain, look at the database."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import select

from app.extensions import db
from app.models import ContactList, Deal, Notification, OutboxMessage, Tag, Task
from app.tenancy import firm_context
from tests.engine.helpers import active_workflow, chain, run, states_by_node
from tests.factories import make_contact, make_user


def _one(firm, nodes, user, **contact_fields):
    specs, edges = chain(*nodes)
    workflow = active_workflow(firm, user, specs, edges)
    contact = make_contact(firm, **contact_fields)
    return workflow, contact, run(workflow, contact)


class _Snapshot:
    """A contact's state read under its firm (lazy loads need the firm)."""

    def __init__(self, firm, contact):
        db.session.expire_all()
        with firm_context(firm.id):
            fresh = db.session.get(type(contact), contact.id)
            self.tag_names = fresh.tag_names
            self.lists = list(fresh.lists)
            self.score = fresh.score
            self.first_name = fresh.first_name
            self.custom_fields = dict(fresh.custom_fields)


def _contact(firm, contact):
    return _Snapshot(firm, contact)


def test_add_tag_creates_the_tag_and_tags_the_contact(acme, alice):
    _, contact, execution = _one(acme, [("t", "add_tag", {"tag": "vip"})], alice)
    assert execution.status == "completed"
    assert _contact(acme, contact).tag_names == ["vip"]
    with firm_context(acme.id):
        assert db.session.scalars(select(Tag.name)).all() == ["vip"]


def test_remove_tag_untags_and_skips_when_absent(acme, alice):
    nodes = [
        ("a", "add_tag", {"tag": "old"}),
        ("r", "remove_tag", {"tag": "old"}),
        ("r2", "remove_tag", {"tag": "never"}),
    ]
    _, contact, execution = _one(acme, nodes, alice)
    assert _contact(acme, contact).tag_names == []
    states = states_by_node(acme.id, execution.id)
    assert states["r"].action_status == "success"
    assert states["r2"].action_status == "skipped"


def test_lists_add_and_remove_members(acme, alice):
    with firm_context(acme.id):
        lst = ContactList(name="Newsletter")
        db.session.add(lst)
        db.session.commit()
    _, contact, execution = _one(acme, [("l", "add_to_list", {"list": lst.id})], alice)
    assert execution.status == "completed"
    assert [x.id for x in _contact(acme, contact).lists] == [lst.id]
    _, other, _ = _one(
        acme,
        [("in", "add_to_list", {"list": lst.id}), ("out", "remove_from_list", {"list": lst.id})],
        alice,
    )
    assert _contact(acme, other).lists == []


def test_a_list_of_another_firm_fails_the_step(acme, globex, alice):
    with firm_context(globex.id):
        foreign = ContactList(name="Theirs")
        db.session.add(foreign)
        db.session.commit()
    _, contact, execution = _one(acme, [("l", "add_to_list", {"list": foreign.id})], alice)
    assert execution.status == "failed"
    assert "does not exist" in execution.last_error
    assert _contact(acme, contact).lists == []


def test_update_contact_adds_to_the_score_and_sets_fields(acme, alice):
    nodes = [
        (
            "u",
            "update_contact",
            {"fields": {"score": "+10", "first_name": "Ann", "custom.plan": "pro"}},
        ),
        ("u2", "update_contact", {"fields": {"score": "+5"}}),
    ]
    _, contact, execution = _one(acme, nodes, alice, score=3, custom_fields={"a": 1})
    assert execution.status == "completed"
    fresh = _contact(acme, contact)
    assert fresh.score == 18
    assert fresh.first_name == "Ann"
    assert fresh.custom_fields == {"a": 1, "plan": "pro"}


def test_create_task_assigns_by_email_within_the_firm(acme, alice, bob):
    nodes = [
        (
            "task",
            "create_task",
            {
                "title": "Call {{ contact.first_name }}",
                "due_in_hours": 2,
                "assignee_email": "bob@acme.test",
            },
        )
    ]
    _, contact, execution = _one(acme, nodes, alice, first_name="Zoe")
    assert execution.status == "completed"
    with firm_context(acme.id):
        task = db.session.scalars(select(Task)).one()
    assert task.title == "Call Zoe"
    assert task.assignee_id == bob.id
    assert task.contact_id == contact.id
    assert task.execution_id == execution.id


def test_create_task_for_a_stranger_fails(acme, alice, charlie):
    nodes = [("task", "create_task", {"title": "x", "assignee_email": "charlie@globex.test"})]
    _, _, execution = _one(acme, nodes, alice)
    assert execution.status == "failed"


def test_create_then_update_deal(acme, alice):
    nodes = [
        ("new", "create_deal", {"title": "Deal {{ contact.first_name }}", "value": "100"}),
        ("move", "update_deal", {"stage": "proposal"}),
        ("win", "update_deal", {"status": "won"}),
    ]
    _, contact, execution = _one(acme, nodes, alice, first_name="Max")
    assert execution.status == "completed"
    with firm_context(acme.id):
        deal = db.session.scalars(select(Deal)).one()
    assert (deal.title, deal.value, deal.stage, deal.status) == (
        "Deal Max",
        Decimal("100.00"),
        "proposal",
        "won",
    )
    assert deal.closed_at is not None


def test_update_deal_changes_the_latest_open_deal(acme, alice):
    contact = make_contact(acme)
    with firm_context(acme.id):
        db.session.add_all(
            [
                Deal(contact_id=contact.id, title="old", status="open"),
                Deal(contact_id=contact.id, title="new", status="open"),
                Deal(contact_id=contact.id, title="closed", status="won"),
            ]
        )
        db.session.commit()
    specs, edges = chain(("u", "update_deal", {"stage": "negotiation"}))
    workflow = active_workflow(acme, alice, specs, edges)
    run(workflow, contact)
    with firm_context(acme.id):
        stages = dict(db.session.execute(select(Deal.title, Deal.stage)).all())
    assert stages == {"old": "new", "new": "negotiation", "closed": "new"}


def test_update_deal_without_an_open_deal_is_skipped(acme, alice):
    _, _, execution = _one(acme, [("u", "update_deal", {"stage": "x"})], alice)
    assert execution.status == "completed"
    assert states_by_node(acme.id, execution.id)["u"].action_status == "skipped"


def test_internal_notification_goes_to_admins_by_default(acme, alice, bob):
    nodes = [("n", "internal_notification", {"message": "{{ contact.email }} arrived"})]
    _, contact, execution = _one(acme, nodes, alice, email="zed@example.com")
    with firm_context(acme.id):
        notes = db.session.scalars(select(Notification)).all()
    assert [(n.user_id, n.message) for n in notes] == [(alice.id, "zed@example.com arrived")]


def test_internal_notification_to_named_recipients(acme, alice, charlie):
    dan = make_user(acme, "dan@example.com")
    erin = make_user(acme, "erin@example.com")
    nodes = [
        (
            "n",
            "internal_notification",
            {"message": "hi", "recipients": ["dan@example.com", "Erin@example.com"]},
        )
    ]
    _one(acme, nodes, alice)
    with firm_context(acme.id):
        users = sorted(db.session.scalars(select(Notification.user_id)).all())
    assert users == sorted([dan.id, erin.id])


def test_email_and_sms_are_recorded_without_transports(acme, alice):
    nodes = [
        ("mail", "send_email", {"subject": "Hi {{ contact.first_name }}", "body_text": "x"}),
        ("sms", "send_sms", {"body": "Hello"}),
    ]
    _, contact, execution = _one(acme, nodes, alice, first_name="Ida", phone="+15550001")
    assert execution.status == "completed"
    with firm_context(acme.id):
        rows = {r.node_id: r for r in db.session.scalars(select(OutboxMessage))}
    assert rows["mail"].status == "recorded"
    assert rows["mail"].subject == "Hi Ida"
    assert rows["mail"].execution_id == execution.id
    assert rows["sms"].status == "recorded"
    states = states_by_node(acme.id, execution.id)
    assert states["mail"].action_result["message_id"] == rows["mail"].message_id


def test_an_unsubscribed_contact_is_skipped_not_failed(acme, alice):
    nodes = [("mail", "send_email", {"subject": "Hi", "body_text": "x"})]
    _, _, execution = _one(acme, nodes, alice, unsubscribed=True)
    assert execution.status == "completed"
    state = states_by_node(acme.id, execution.id)["mail"]
    assert state.action_status == "skipped"
    assert "unsubscribed" in state.action_result["reason"]
