"""The seed's helpers, manual and API starts, enrolling existing contacts."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.automation.lifecycle.publishing import pause_workflow
from app.automation.triggers import helpers
from app.extensions import db
from app.models import AuditLog, Contact, Form, Tag
from app.tenancy import firm_context
from tests.factories import make_contact
from tests.triggers.conftest import executions_of


def test_trigger_manual_starts_one_contact_with_its_context(acme, live_workflow):
    workflow = live_workflow(acme, "manual")
    contact = make_contact(acme)
    execution = helpers.trigger_manual(acme, workflow.id, contact, context={"source": "manual"})
    assert execution.contact_id == contact.id
    assert execution.context_data["source"] == "manual"
    assert execution.trigger_type == "manual"
    # Without re-entry, a second press starts nothing.
    assert helpers.trigger_manual(acme, workflow.id, contact) is None


def test_trigger_manual_many_starts_a_list_of_contacts(acme, live_workflow, globex):
    workflow = live_workflow(acme, "manual")
    mine = [make_contact(acme) for _ in range(3)]
    stranger = make_contact(globex)
    with firm_context(acme.id):
        started = helpers.trigger_manual_many(workflow, [c.id for c in mine] + [stranger.id])
    assert len(started) == 3
    with firm_context(acme.id):
        audited = db.session.scalars(
            select(AuditLog).where(AuditLog.action == "trigger.fired")
        ).all()
    assert sorted(a.data["contact_id"] for a in audited) == sorted(c.id for c in mine)


def test_trigger_api_needs_an_active_api_or_manual_trigger(acme, live_workflow, alice):
    contact = make_contact(acme)
    on_tags = live_workflow(acme, "contact_tag_added")
    with firm_context(acme.id), pytest.raises(helpers.TriggerNotAllowed):
        helpers.trigger_api(on_tags, contact.id, {})
    api = live_workflow(acme, "api")
    with firm_context(acme.id):
        pause_workflow(api, alice)
        db.session.commit()
        with pytest.raises(helpers.TriggerNotAllowed):
            helpers.trigger_api(api, contact.id, {})


def test_trigger_api_with_the_same_idempotency_key_returns_the_same_execution(acme, live_workflow):
    workflow = live_workflow(acme, "api", allow_reentry=True)
    contact, other = make_contact(acme), make_contact(acme)
    with firm_context(acme.id):
        first, created = helpers.start_via_api(workflow, contact.id, {"order": 7}, "key-1")
        again, created_again = helpers.start_via_api(workflow, contact.id, {"order": 7}, "key-1")
        assert (created, created_again) == (True, False)
        assert again.id == first.id
        assert first.context_data["order"] == 7
        with pytest.raises(helpers.IdempotencyConflict):
            helpers.trigger_api(workflow, other.id, {}, "key-1")
        with pytest.raises(helpers.AlreadyEnrolled):
            helpers.trigger_api(workflow, contact.id, {}, "key-2")  # still running
        with pytest.raises(helpers.ContactNotFound):
            helpers.trigger_api(workflow, 999999, {})
    assert len(executions_of(acme)) == 1


def test_the_seed_event_helpers_fire_their_triggers(acme, live_workflow):
    opened = live_workflow(acme, "email_opened", name="Opened")
    clicked = live_workflow(acme, "email_clicked", {"url_contains": "pricing"}, name="Clicked")
    score = live_workflow(acme, "score_threshold_reached", {"threshold": 80}, name="Score")
    visited = live_workflow(acme, "page_visited", {"url_contains": "/pricing"}, name="Visited")
    contact = make_contact(acme)
    assert len(helpers.trigger_email_opened(acme, contact, email_id=456)) == 1
    assert helpers.trigger_email_clicked(acme, contact, 456, "https://x.example/blog") == []
    assert len(helpers.trigger_email_clicked(acme, contact, 456, "https://x.example/pricing")) == 1
    assert helpers.trigger_score_threshold(acme, contact, score=85, threshold=90) == []
    assert len(helpers.trigger_score_threshold(acme, contact, score=85, threshold=80)) == 1
    assert len(helpers.trigger_page_visited(acme, contact, "/pricing", {"title": "Pricing"})) == 1
    started = {e.workflow_id for e in executions_of(acme)}
    assert started == {opened.id, clicked.id, score.id, visited.id}


def test_trigger_form_submitted_upserts_and_fires(acme, live_workflow):
    with firm_context(acme.id):
        form = Form(name="Demo", fields=[{"name": "email", "type": "email", "required": True}])
        db.session.add(form)
        db.session.commit()
    workflow = live_workflow(acme, "form_submitted", {"form_id": form.id})
    started = helpers.trigger_form_submitted(acme, form.id, {"email": "new@example.com"})
    assert len(started) == 1
    assert executions_of(acme, workflow)[0].context_data["fields"] == {"email": "new@example.com"}
    with pytest.raises(ValueError, match="email"):
        helpers.trigger_form_submitted(acme, form.id, {"email": "nope"})


def test_enroll_existing_takes_every_contact_matching_the_trigger(acme, live_workflow):
    vip = [make_contact(acme, score=s) for s in (10, 90, 95)]
    make_contact(acme, score=99)  # high score but no tag
    with firm_context(acme.id):
        tag = Tag(name="vip")
        for contact in vip:
            db.session.get(Contact, contact.id).tags.append(tag)
        db.session.commit()
    workflow = live_workflow(
        acme,
        "contact_tag_added",
        {"tag": "vip", "rules": [{"field": "contact.score", "op": "gte", "value": 50}]},
    )
    with firm_context(acme.id):
        assert helpers.enroll_existing(workflow) == 2
        assert helpers.enroll_existing(workflow) == 0
    assert sorted(e.contact_id for e in executions_of(acme)) == [vip[1].id, vip[2].id]


def test_enroll_existing_in_batches_covers_a_large_firm(acme, live_workflow):
    with firm_context(acme.id):
        db.session.add_all([Contact(email=f"c{n}@example.com") for n in range(30)])
        db.session.commit()
    workflow = live_workflow(acme, "manual")
    with firm_context(acme.id):
        assert helpers.enroll_existing(workflow, batch=7) == 30
