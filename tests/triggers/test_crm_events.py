"""CRM changes made through the ORM fire their triggers after commit."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import select

from app.extensions import db
from app.models import Contact, ContactList, Deal, EventLog, Tag
from app.tenancy import firm_context
from tests.factories import make_contact
from tests.triggers.conftest import executions_of


def _logged(firm, event_type):
    with firm_context(firm.id):
        stmt = select(EventLog).where(EventLog.event_type == event_type).order_by(EventLog.id)
        return list(db.session.scalars(stmt))


def test_a_new_contact_fires_contact_created(acme, live_workflow):
    workflow = live_workflow(acme, "contact_created")
    contact = make_contact(acme)
    (execution,) = executions_of(acme, workflow)
    assert execution.contact_id == contact.id
    assert execution.trigger_type == "contact_created"


def test_contact_updated_carries_the_changed_fields_and_honours_the_field_filter(
    acme, live_workflow
):
    on_name = live_workflow(acme, "contact_updated", {"fields": ["first_name"]}, name="Name")
    on_plan = live_workflow(acme, "contact_updated", {"fields": ["custom.plan"]}, name="Plan")
    contact = make_contact(acme, first_name="Ann", custom_fields={"plan": "free"})
    with firm_context(acme.id):
        contact = db.session.get(Contact, contact.id)
        contact.first_name = "Anna"
        db.session.commit()
    (execution,) = executions_of(acme)
    assert execution.workflow_id == on_name.id
    assert execution.context_data["changed"] == {"first_name": ["Ann", "Anna"]}
    with firm_context(acme.id):
        contact = db.session.get(Contact, contact.id)
        contact.custom_fields = {"plan": "pro"}
        db.session.commit()
    assert [e.workflow_id for e in executions_of(acme, on_plan)] == [on_plan.id]


def test_tags_added_and_removed_through_the_collection_fire(acme, live_workflow):
    added = live_workflow(acme, "contact_tag_added", {"tag": "vip"}, name="Added")
    removed = live_workflow(acme, "contact_tag_removed", {"tag": "vip"}, name="Removed")
    contact = make_contact(acme)
    with firm_context(acme.id):
        contact = db.session.get(Contact, contact.id)
        contact.tags.append(Tag(name="vip"))
        db.session.commit()
        assert [e.workflow_id for e in executions_of(acme)] == [added.id]
        contact = db.session.get(Contact, contact.id)
        contact.tags.clear()
        db.session.commit()
    assert [e.workflow_id for e in executions_of(acme)] == [added.id, removed.id]
    assert executions_of(acme)[0].context_data["tag"] == "vip"


def test_list_membership_from_either_side_fires_once(acme, live_workflow):
    contact = make_contact(acme)
    with firm_context(acme.id):
        newsletter = ContactList(name="Newsletter")
        db.session.add(newsletter)
        db.session.commit()
        list_id = newsletter.id
    joined = live_workflow(acme, "contact_list_added", {"list": list_id}, name="Joined")
    left = live_workflow(acme, "contact_list_removed", {"list": list_id}, name="Left")
    with firm_context(acme.id):
        newsletter = db.session.get(ContactList, list_id)
        newsletter.contacts.append(db.session.get(Contact, contact.id))
        db.session.commit()
        assert len(_logged(acme, "contact_list_added")) == 1
        db.session.get(Contact, contact.id).lists.clear()
        db.session.commit()
    assert [e.workflow_id for e in executions_of(acme)] == [joined.id, left.id]


def test_deal_lifecycle_fires_created_stage_value_won_and_lost(acme, live_workflow):
    created = live_workflow(acme, "deal_created", name="Created")
    staged = live_workflow(
        acme, "deal_stage_changed", {"from_stage": "new", "to_stage": "proposal"}, name="Stage"
    )
    valued = live_workflow(acme, "deal_value_changed", {"min_value": 1000}, name="Value")
    won = live_workflow(acme, "deal_won", name="Won")
    lost = live_workflow(acme, "deal_lost", name="Lost")
    alice_contact, bob_contact = make_contact(acme), make_contact(acme)
    with firm_context(acme.id):
        deal = Deal(contact_id=alice_contact.id, title="Big one", value=Decimal("500"))
        db.session.add(deal)
        db.session.commit()
        deal.stage = "proposal"
        db.session.commit()
        deal.value = Decimal("500.00")  # the same amount: no change
        db.session.commit()
        deal.value = Decimal("2500")
        db.session.commit()
        deal.status = "won"
        db.session.commit()
        other = Deal(contact_id=bob_contact.id, title="Small one")
        db.session.add(other)
        db.session.commit()
        other.status = "lost"
        db.session.commit()
    by_workflow = {}
    for execution in executions_of(acme):
        by_workflow.setdefault(execution.workflow_id, []).append(execution)
    assert len(by_workflow[created.id]) == 2
    (stage_run,) = by_workflow[staged.id]
    assert (stage_run.context_data["from_stage"], stage_run.context_data["to_stage"]) == (
        "new",
        "proposal",
    )
    (value_run,) = by_workflow[valued.id]
    assert Decimal(value_run.context_data["new_value"]) == 2500
    assert [e.contact_id for e in by_workflow[won.id]] == [alice_contact.id]
    assert [e.contact_id for e in by_workflow[lost.id]] == [bob_contact.id]


def test_score_fires_on_crossing_not_on_every_change(acme, live_workflow):
    reached = live_workflow(
        acme, "score_threshold_reached", {"threshold": 80}, name="Hot", allow_reentry=True
    )
    dropped = live_workflow(
        acme, "score_threshold_dropped", {"threshold": 80}, name="Cold", allow_reentry=True
    )
    contact = make_contact(acme, score=70)
    for score in (75, 85, 90, 60, 50):
        with firm_context(acme.id):
            # A fresh, expired object each time: the old value is still known.
            db.session.expire_all()
            db.session.get(Contact, contact.id).score = score
            db.session.commit()
            # Re-entry needs the earlier run to be over.
            for execution in executions_of(acme):
                execution.status = "completed"
            db.session.commit()
    runs = executions_of(acme)
    assert [r.workflow_id for r in runs] == [reached.id, dropped.id]
    assert runs[0].context_data["old_score"] == 75
    assert runs[0].context_data["new_score"] == 85


def test_a_rolled_back_change_fires_nothing(acme, live_workflow):
    live_workflow(acme, "contact_tag_added")
    contact = make_contact(acme)
    with firm_context(acme.id):
        db.session.get(Contact, contact.id).tags.append(Tag(name="vip"))
        db.session.flush()
        db.session.rollback()
    assert executions_of(acme) == []
    assert _logged(acme, "contact_tag_added") == []


def test_a_rolled_back_savepoint_drops_only_its_own_events(acme, live_workflow):
    live_workflow(acme, "contact_tag_added", allow_reentry=True)
    contact = make_contact(acme)
    with firm_context(acme.id):
        row = db.session.get(Contact, contact.id)
        row.tags.append(Tag(name="kept"))
        db.session.flush()
        savepoint = db.session.begin_nested()
        row.tags.append(Tag(name="dropped"))
        db.session.flush()
        savepoint.rollback()
        db.session.commit()
    assert [e.data["tag"] for e in _logged(acme, "contact_tag_added")] == ["kept"]


def test_events_carry_the_firm_of_the_row(acme, globex, live_workflow):
    live_workflow(acme, "contact_created")
    make_contact(globex)
    assert executions_of(acme) == []
    assert len(_logged(globex, "contact_created")) == 1
    assert _logged(acme, "contact_created") == []
