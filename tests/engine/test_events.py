"""CRM changes made by actions reach the trigger bus, the acting workflow
excluded."""

from __future__ import annotations

from sqlalchemy import select

from app.automation.engine.jobs import drain
from app.automation.lifecycle.publishing import activate_workflow
from app.extensions import db
from app.models import EventLog, WorkflowExecution
from app.tenancy import firm_context
from tests.engine.helpers import chain, run
from tests.factories import make_contact, make_workflow


def _active(firm, user, nodes, trigger_type, configuration=None, **fields):
    specs, edges = chain(*nodes)
    workflow = make_workflow(
        firm,
        nodes=specs,
        edges=edges,
        triggers=[{"trigger_type": trigger_type, "configuration": configuration or {}}],
        **fields,
    )
    with firm_context(firm.id):
        activate_workflow(workflow, user)
        db.session.commit()
    return workflow


def test_a_tag_added_by_a_workflow_starts_the_workflows_listening(acme, alice):
    tagger = _active(
        acme,
        alice,
        [("tag", "add_tag", {"tag": "vip"})],
        "contact_tag_added",
        {"tag": "vip"},
        allow_reentry=True,
    )
    listener = _active(
        acme,
        alice,
        [("hello", "add_tag", {"tag": "welcomed"})],
        "contact_tag_added",
        {"tag": "vip"},
    )
    contact = make_contact(acme)
    run(tagger, contact)
    drain()
    with firm_context(acme.id):
        started = db.session.scalars(
            select(WorkflowExecution.workflow_id).where(WorkflowExecution.contact_id == contact.id)
        ).all()
    # The listener ran once; the tagger did not start itself again.
    assert sorted(started) == sorted([tagger.id, listener.id])


def test_events_nobody_listens_to_are_not_recorded(acme, alice):
    tagger = _active(acme, alice, [("tag", "add_tag", {"tag": "quiet"})], "manual")
    run(tagger, make_contact(acme))
    with firm_context(acme.id):
        types = db.session.scalars(select(EventLog.event_type)).all()
    assert "contact_tag_added" not in types
