"""Audience membership follows contacts' changes; segment_entered and
segment_left fire once per change (app/automation/audiences/membership.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from app.automation.audiences.membership import refresh_timed
from app.automation.audiences.saving import create_audience
from app.automation.crm import lists as crm_lists
from app.automation.engine.context import facts_for
from app.automation.rules.evaluator import evaluate
from app.extensions import db
from app.models import Contact, EventLog, Tag, TrackingEvent, WorkflowExecution, audience_members
from app.tenancy import firm_context
from tests.factories import make_contact, make_workflow


def _members(audience_id: int) -> set[int]:
    stmt = select(audience_members.c.contact_id).where(
        audience_members.c.audience_id == audience_id
    )
    return set(db.session.scalars(stmt))


def _events(kind: str, contact_id: int) -> int:
    stmt = select(func.count(EventLog.id)).where(
        EventLog.event_type == kind, EventLog.contact_id == contact_id
    )
    return db.session.scalar(stmt)


def _tag(contact_id: int, name: str, add: bool = True) -> None:
    contact = db.session.get(Contact, contact_id)
    if add:
        tag = db.session.scalars(select(Tag).where(Tag.name == name)).first() or Tag(name=name)
        contact.tags.append(tag)
    else:
        contact.tags = [t for t in contact.tags if t.name != name]
    db.session.commit()


def test_enter_leave_enter_fires_two_entries_and_one_leave(acme):
    contact = make_contact(acme)
    other = make_contact(acme)
    with firm_context(acme.id):
        audience = create_audience("VIPs", "all", [{"tag": "vip", "op": "has"}])
        audience_id = audience.id
    workflow = make_workflow(
        acme,
        name="On VIP",
        status="active",
        allow_reentry=True,
        nodes=[
            {"node_id": "w", "node_type": "wait_time", "configuration": {"wait_duration_hours": 1}}
        ],
        triggers=[{"trigger_type": "segment_entered", "configuration": {"audience": audience_id}}],
    )
    with firm_context(acme.id):
        _tag(contact.id, "vip")
        assert _members(audience_id) == {contact.id}
        _tag(contact.id, "other")  # a change that keeps it inside fires nothing
        _tag(contact.id, "vip", add=False)
        assert _members(audience_id) == set()
        _tag(contact.id, "vip")
        assert _events("segment_entered", contact.id) == 2
        assert _events("segment_left", contact.id) == 1
        assert _events("segment_entered", other.id) == 0
        started = db.session.scalar(
            select(func.count(WorkflowExecution.id)).where(
                WorkflowExecution.workflow_id == workflow.id
            )
        )
        assert started == 1  # the first execution still runs: one active per contact
        # The condition rule tests membership through the same rows.
        assert evaluate({"rules": [{"audience": audience_id, "op": "in"}]}, facts_for(contact.id))
        assert not evaluate({"rules": [{"audience": audience_id, "op": "in"}]}, facts_for(other.id))


def test_a_saved_audience_fills_its_members_without_firing(acme):
    contact = make_contact(acme, score=90)
    make_contact(acme, score=10)
    with firm_context(acme.id):
        audience = create_audience(
            "Hot", "all", [{"field": "contact.score", "op": "gte", "value": 80}]
        )
        assert _members(audience.id) == {contact.id}
        assert _events("segment_entered", contact.id) == 0


def test_list_joins_update_membership(acme):
    contact = make_contact(acme)
    with firm_context(acme.id):
        customers = crm_lists.create_list("Customers")
        audience = create_audience("Customers", "all", [{"list": customers.id, "op": "in"}])
        crm_lists.add_to_list(db.session.get(Contact, contact.id), customers)
        assert _members(audience.id) == {contact.id}


def test_a_time_window_lets_contacts_leave_as_time_passes(acme, time_machine):
    time_machine.move_to(datetime(2026, 11, 1, 9, tzinfo=UTC), tick=False)
    contact = make_contact(acme)
    with firm_context(acme.id):
        db.session.add(TrackingEvent(contact_id=contact.id, kind="open", node_id="x"))
        db.session.commit()
        audience = create_audience(
            "Engaged", "all", [{"event": "email_opened", "within_days": 30, "op": "happened"}]
        )
        assert audience.timed
        assert _members(audience.id) == {contact.id}
    time_machine.move_to(datetime(2026, 11, 1, 9, tzinfo=UTC) + timedelta(days=31), tick=False)
    assert refresh_timed() == 1
    assert refresh_timed() == 0
    with firm_context(acme.id):
        assert _members(audience.id) == set()
        assert _events("segment_left", contact.id) == 1


def test_a_topic_opt_out_and_an_audience_of_audiences_follow(acme, time_machine):
    from app.automation.delivery import topics
    from app.models import Topic

    time_machine.move_to(datetime(2026, 11, 1, 9, tzinfo=UTC), tick=False)
    contact = make_contact(acme)
    with firm_context(acme.id):
        news = Topic(name="News", kind="marketing")
        db.session.add(news)
        db.session.add(TrackingEvent(contact_id=contact.id, kind="open", node_id="x"))
        db.session.commit()
        readers = create_audience("Readers", "all", [{"topic": news.id, "op": "subscribed"}])
        engaged = create_audience(
            "Engaged", "all", [{"event": "email_opened", "within_days": 30, "op": "happened"}]
        )
        both = create_audience("Engaged readers", "all", [{"audience": engaged.id}])
        assert _members(readers.id) == {contact.id} and _members(both.id) == {contact.id}
        topics.set_subscriptions(db.session.get(Contact, contact.id), {news.id: False}, "test")
        db.session.commit()  # the bus hears of it after the commit
        assert _members(readers.id) == set()
        assert _events("segment_left", contact.id) == 1
    time_machine.move_to(datetime(2026, 12, 5, 9, tzinfo=UTC), tick=False)
    refresh_timed()
    with firm_context(acme.id):
        assert _members(engaged.id) == set()
        assert _members(both.id) == set()  # followed the audience it is made of
        assert _events("segment_left", contact.id) == 3


def test_a_workflows_own_changes_move_membership_with_no_trigger_listening(acme, alice):
    """The engine hands the bus only the events some trigger listens to; a
    firm's audiences listen to every change of its contacts."""
    from app.automation.engine.jobs import advance_ready_batch
    from tests.engine.helpers import active_workflow, chain, start

    contacts = [make_contact(acme) for _ in range(3)]
    with firm_context(acme.id):
        audience_id = create_audience("VIPs", "all", [{"tag": "vip", "op": "has"}]).id
    follow = make_workflow(
        acme,
        name="On VIP",
        status="active",
        nodes=[
            {"node_id": "w", "node_type": "wait_time", "configuration": {"wait_duration_hours": 1}}
        ],
        triggers=[{"trigger_type": "segment_entered", "configuration": {"audience": audience_id}}],
    )
    specs, edges = chain(("vip", "add_tag", {"tag": "vip"}))
    tagging = active_workflow(acme, alice, specs, edges)
    start(tagging, *contacts[:2])
    advance_ready_batch(limit=10)
    db.session.expire_all()
    with firm_context(acme.id):
        assert _members(audience_id) == {c.id for c in contacts[:2]}
        started = db.session.scalars(
            select(WorkflowExecution.contact_id).where(WorkflowExecution.workflow_id == follow.id)
        ).all()
        assert sorted(started) == sorted(c.id for c in contacts[:2])


def test_a_firm_without_audiences_pays_no_query_for_them_per_event(acme, globex):
    """The bus asks "has the firm audiences?" inside the query it makes
    anyway (the events' contacts); only a firm with some reads them."""
    from sqlalchemy import event as sa_event

    from app.automation.triggers.bus import emit

    plain, segmented = make_contact(globex), make_contact(acme)
    with firm_context(acme.id):
        audience_id = create_audience("VIPs", "all", [{"tag": "vip"}]).id
        tag = Tag(name="vip")
        db.session.add(tag)
        db.session.commit()
        db.session.get(Contact, segmented.id).tags.append(tag)
        db.session.commit()
    statements: list[str] = []

    def seen(conn, cursor, statement, *args):
        statements.append(statement)

    sa_event.listen(db.engine, "before_cursor_execute", seen)
    try:
        for _ in range(3):
            emit(globex.id, "contact_tag_added", plain.id, {"tag": "vip"})
        plain_count = len(statements)
        audience_reads = [s for s in statements if s.lstrip().startswith("SELECT audiences.")]
        emit(acme.id, "contact_tag_added", segmented.id, {"tag": "vip"})
    finally:
        sa_event.remove(db.engine, "before_cursor_execute", seen)
    assert plain_count and audience_reads == []
    with firm_context(acme.id):
        assert _members(audience_id) == {segmented.id}
        assert _events("segment_entered", segmented.id) == 1


def test_an_audience_made_of_a_newer_audience_follows_it_at_once(acme):
    """Audiences are re-checked inner first, whatever their ids: one made
    (older) of a newer one sees the newer one's membership of this change."""
    from app.automation.audiences.saving import update_audience

    contact = make_contact(acme)
    with firm_context(acme.id):
        outer = create_audience("Outer", "all", [])
        inner = create_audience("Inner", "all", [{"tag": "vip"}])
        update_audience(outer, rules=[{"audience": inner.id}])
        outer_id, inner_id = outer.id, inner.id
        assert outer_id < inner_id and _members(outer_id) == set()
        _tag(contact.id, "vip")
        assert _members(inner_id) == {contact.id}
        assert _members(outer_id) == {contact.id}
        _tag(contact.id, "vip", add=False)
        assert _members(outer_id) == set()


def test_changing_an_audiences_rules_refills_the_audiences_made_of_it(acme):
    vip, plain = make_contact(acme), make_contact(acme)
    with firm_context(acme.id):
        from app.automation.audiences.saving import update_audience

        _tag(vip.id, "vip")
        _tag(plain.id, "plain")
        inner = create_audience("Inner", "all", [{"tag": "vip"}])
        outer = create_audience("Outer", "all", [{"rules": [{"audience": inner.id}]}])
        outermost = create_audience("Outermost", "all", [{"audience": outer.id}])
        assert _members(outermost.id) == {vip.id}
        update_audience(inner, rules=[{"tag": "plain"}])
        assert _members(outer.id) == {plain.id}
        assert _members(outermost.id) == {plain.id}
        assert _events("segment_entered", plain.id) == 0  # a save fires nothing
