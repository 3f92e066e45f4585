"""The event bus starts the matching workflows, once per event."""

from __future__ import annotations

from sqlalchemy import select

from app.automation.lifecycle.publishing import pause_workflow
from app.automation.triggers.bus import emit, emit_many
from app.extensions import db
from app.models import AuditLog, EventLog
from app.tenancy import firm_context
from tests.factories import make_contact
from tests.triggers.conftest import executions_of


def test_it_starts_a_workflow_whose_filter_matches(acme, live_workflow):
    workflow = live_workflow(acme, "contact_tag_added", {"tag": "VIP"})
    contact = make_contact(acme)
    started = emit(acme.id, "contact_tag_added", contact.id, {"tag": "vip"}, source="test")
    assert len(started) == 1
    (execution,) = executions_of(acme, workflow)
    assert execution.trigger_type == "contact_tag_added"
    assert execution.context_data["tag"] == "vip"
    assert execution.current_node == "send_welcome_email"


def test_it_ignores_events_the_filter_refuses(acme, live_workflow):
    live_workflow(acme, "contact_tag_added", {"tag": "vip"})
    contact = make_contact(acme)
    assert emit(acme.id, "contact_tag_added", contact.id, {"tag": "newsletter"}) == []
    assert emit(acme.id, "contact_tag_removed", contact.id, {"tag": "vip"}) == []
    assert executions_of(acme) == []


def test_a_repeated_event_id_is_a_no_op(acme, live_workflow):
    live_workflow(acme, "email_opened", allow_reentry=True)
    contact = make_contact(acme)
    assert len(emit(acme.id, "email_opened", contact.id, event_id="open-1")) == 1
    assert emit(acme.id, "email_opened", contact.id, event_id="open-1") == []
    with firm_context(acme.id):
        logged = db.session.scalars(
            select(EventLog).where(EventLog.event_type == "email_opened")
        ).all()
    assert [(e.event_id, e.executions_started) for e in logged] == [("open-1", 1)]


def test_paused_workflows_and_inactive_triggers_start_nothing(acme, live_workflow, alice):
    paused = live_workflow(acme, "contact_created")
    with firm_context(acme.id):
        pause_workflow(paused, alice)
        db.session.commit()
    contact = make_contact(acme)
    assert emit(acme.id, "contact_created", contact.id) == []


def test_the_excluded_workflow_is_never_started(acme, live_workflow):
    acting = live_workflow(acme, "contact_tag_added", {"tag": "vip"}, name="Tagger")
    other = live_workflow(acme, "contact_tag_added", {"tag": "vip"}, name="Listener")
    contact = make_contact(acme)
    started = emit(
        acme.id, "contact_tag_added", contact.id, {"tag": "vip"}, exclude_workflow_id=acting.id
    )
    assert len(started) == 1
    assert [e.workflow_id for e in executions_of(acme)] == [other.id]


def test_each_firing_is_audited(acme, live_workflow):
    workflow = live_workflow(acme, "email_replied")
    contact = make_contact(acme)
    emit(acme.id, "email_replied", contact.id, event_id="c-1", source="api")
    with firm_context(acme.id):
        entries = db.session.scalars(
            select(AuditLog).where(AuditLog.action == "trigger.fired")
        ).all()
    assert len(entries) == 1
    assert entries[0].data["workflow_id"] == workflow.id
    assert entries[0].data["contact_id"] == contact.id
    assert entries[0].data["event_id"] == "c-1"
    assert entries[0].data["source"] == "api"


def test_events_of_another_firm_never_start_its_workflows(acme, globex, live_workflow):
    live_workflow(acme, "contact_created")
    stranger = make_contact(globex)
    assert emit(globex.id, "contact_created", stranger.id) == []
    # A forged cross-firm contact id does not enter acme's workflow either.
    assert emit(acme.id, "contact_created", stranger.id) == []
    assert executions_of(acme) == []


def test_emit_many_records_every_event_and_counts_starts(acme, globex, live_workflow):
    live_workflow(acme, "contact_list_added", {"list": 7})
    mine, theirs = make_contact(acme), make_contact(globex)
    events = [
        {
            "firm_id": acme.id,
            "event_type": "contact_list_added",
            "contact_id": mine.id,
            "data": {"list": 7},
        },
        {
            "firm_id": acme.id,
            "event_type": "contact_list_added",
            "contact_id": mine.id,
            "data": {"list": 8},
        },
        {"firm_id": globex.id, "event_type": "contact_created", "contact_id": theirs.id},
    ]
    assert emit_many(events) == 1
    with firm_context(acme.id):
        listed = select(db.func.count(EventLog.id)).where(
            EventLog.event_type == "contact_list_added"
        )
        assert db.session.scalar(listed) == 2
    with firm_context(globex.id):
        # The contact's own creation, then the event emitted by hand.
        assert db.session.scalar(select(db.func.count(EventLog.id))) == 2


def test_trigger_rules_filter_the_contact_and_the_event_context(acme, live_workflow):
    workflow = live_workflow(
        acme,
        "email_clicked",
        {
            "match": "all",
            "rules": [
                {"field": "contact.score", "op": "gte", "value": 50},
                {"field": "context.url", "op": "contains", "value": "pricing"},
            ],
        },
        allow_reentry=True,
    )
    cold, hot = make_contact(acme, score=10), make_contact(acme, score=70)
    url = {"url": "https://acme.example/pricing"}
    assert emit(acme.id, "email_clicked", cold.id, url) == []
    assert emit(acme.id, "email_clicked", hot.id, {"url": "https://acme.example/blog"}) == []
    assert len(emit(acme.id, "email_clicked", hot.id, url)) == 1
    assert [e.contact_id for e in executions_of(acme, workflow)] == [hot.id]


def test_a_score_change_reported_by_the_engine_derives_the_crossing(acme, live_workflow):
    reached = live_workflow(acme, "score_threshold_reached", {"threshold": 80}, name="Up")
    dropped = live_workflow(acme, "score_threshold_dropped", {"threshold": 50}, name="Down")
    contact = make_contact(acme)

    def engine_reports(old, new):
        return emit_many(
            [
                {
                    "firm_id": acme.id,
                    "event_type": "contact_updated",
                    "contact_id": contact.id,
                    "data": {"changed": {"score": [old, new]}},
                    "source": "workflow",
                    "exclude_workflow_id": None,
                }
            ]
        )

    assert engine_reports(10, 79) == 0
    assert engine_reports(79, 80) == 1
    assert engine_reports(80, 95) == 0
    assert engine_reports(95, 40) == 1
    assert [e.workflow_id for e in executions_of(acme)] == [reached.id, dropped.id]


def test_emit_many_takes_more_events_than_one_statement_can_bind(acme, live_workflow):
    # 9,000 events x 8 columns is over PostgreSQL's 65,535 bound parameters.
    contact = make_contact(acme)
    events = [
        {"firm_id": acme.id, "event_type": "site_activity", "contact_id": contact.id}
        for _ in range(9000)
    ]
    assert emit_many(events) == 0
    with firm_context(acme.id):
        count = select(db.func.count(EventLog.id)).where(EventLog.event_type == "site_activity")
        assert db.session.scalar(count) == 9000


def test_an_event_about_a_missing_contact_is_logged_about_nobody(acme, globex, live_workflow):
    live_workflow(acme, "email_opened")
    stranger = make_contact(globex)
    assert emit(acme.id, "email_opened", 987654, event_id="gone") == []
    assert emit(acme.id, "email_opened", stranger.id, event_id="foreign") == []
    with firm_context(acme.id):
        logged = db.session.scalars(
            select(EventLog).where(EventLog.event_type == "email_opened").order_by(EventLog.id)
        ).all()
    assert [(e.event_id, e.contact_id) for e in logged] == [("gone", None), ("foreign", None)]
    assert logged[1].data["unknown_contact_id"] == stranger.id
