"""Contacts enter workflows once per event, set-based."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.automation.engine.enrollment import NotEnrollable, enroll
from app.automation.lifecycle.publishing import activate_workflow
from app.extensions import db
from app.models import WorkflowExecution
from app.tenancy import firm_context
from tests.factories import WELCOME_EDGES, WELCOME_NODES, make_contact, make_workflow


@pytest.fixture
def welcome(acme, alice):
    workflow = make_workflow(
        acme, nodes=WELCOME_NODES, edges=WELCOME_EDGES, triggers=[{"trigger_type": "manual"}]
    )
    with firm_context(acme.id):
        activate_workflow(workflow, alice)
        db.session.commit()
    return workflow


def _executions(firm):
    with firm_context(firm.id):
        return db.session.scalars(select(WorkflowExecution)).all()


def test_it_starts_one_execution_per_contact_at_the_entry(acme, welcome):
    contacts = [make_contact(acme) for _ in range(3)]
    with firm_context(acme.id):
        started = enroll(welcome, [c.id for c in contacts], trigger_type="manual", context={"a": 1})
    assert len(started) == 3
    executions = _executions(acme)
    assert {e.current_node for e in executions} == {"send_welcome_email"}
    assert {e.status for e in executions} == {"running"}
    assert {e.version for e in executions} == {1}
    assert executions[0].context_data == {"a": 1}


def test_a_contact_enters_once_without_reentry(acme, welcome):
    contact = make_contact(acme)
    with firm_context(acme.id):
        assert len(enroll(welcome, [contact.id], event_id="e1")) == 1
        assert enroll(welcome, [contact.id], event_id="e2") == []
    assert len(_executions(acme)) == 1


def test_reentry_allows_a_new_execution_once_the_last_one_ended(acme, welcome):
    contact = make_contact(acme)
    with firm_context(acme.id):
        welcome.allow_reentry = True
        db.session.commit()
        first = enroll(welcome, [contact.id], event_id="e1")
        assert enroll(welcome, [contact.id], event_id="e2") == []  # still inside
        db.session.get(WorkflowExecution, first[0]).status = "completed"
        db.session.commit()
        assert len(enroll(welcome, [contact.id], event_id="e3")) == 1
        assert enroll(welcome, [contact.id], event_id="e3") == []  # same event again


def test_contacts_of_another_firm_are_skipped(acme, globex, welcome):
    stranger = make_contact(globex)
    with firm_context(acme.id):
        assert enroll(welcome, [stranger.id]) == []


def test_a_draft_workflow_takes_no_contacts(acme):
    draft = make_workflow(acme, nodes=WELCOME_NODES, edges=WELCOME_EDGES)
    contact = make_contact(acme)
    with firm_context(acme.id), pytest.raises(NotEnrollable):
        enroll(draft, [contact.id])
