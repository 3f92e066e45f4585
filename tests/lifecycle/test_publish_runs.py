"""With the real engine: contacts run on their version, and after a publish
on the version (and step) they were moved to."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from sqlalchemy import select

from app.automation.engine.enrollment import enroll
from app.automation.graph.definition import definition_of
from app.automation.graph.rows import apply_definition
from app.automation.lifecycle.publishing import publish
from app.extensions import db
from app.models import Contact, WorkflowExecution
from app.tenancy import firm_context
from tests.factories import make_contact
from tests.lifecycle.helpers import nurture_workflow

START = datetime(2026, 4, 1, 9, 0, tzinfo=UTC)


def _swap_last_step(definition):
    """v2: the last step tags 'v2' instead of 'nurtured', under a new key."""
    definition["nodes"] = [n for n in definition["nodes"] if n["node_id"] != "tag_done"]
    definition["nodes"].append(
        {"node_id": "tag_v2", "node_type": "add_tag", "configuration": {"tag": "v2"}}
    )
    definition["edges"] = [e for e in definition["edges"] if e["target"] != "tag_done"]
    definition["edges"].append({"source": "wait_1_day", "target": "tag_v2"})


@pytest.fixture
def running(acme, alice):
    """Two contacts of v1 waiting on wait_2_days."""
    from app.automation.engine.jobs import drain

    workflow = nurture_workflow(acme)
    contacts = [make_contact(acme) for _ in range(2)]
    traveller = time_machine.travel(START, tick=False)
    clock = traveller.start()
    with firm_context(acme.id):
        publish(workflow, alice)
        ids = enroll(workflow, [c.id for c in contacts])
        drain()
        rows = db.session.scalars(select(WorkflowExecution)).all()
        assert {(r.status, r.current_node, r.version) for r in rows} == {
            ("waiting", "wait_2_days", 1)
        }
    yield workflow, ids, contacts, clock
    traveller.stop()


def _finish(firm, clock):
    from app.automation.engine.jobs import drain

    with firm_context(firm.id):
        for _ in range(10):
            clock.shift(timedelta(hours=13))
            drain()
        db.session.expire_all()
        return db.session.scalars(select(WorkflowExecution).order_by(WorkflowExecution.id)).all()


def _tags(firm, contact):
    with firm_context(firm.id):
        return {tag.name for tag in db.session.get(Contact, contact.id).tags}


def test_moved_contacts_finish_on_the_new_version(acme, alice, running):
    workflow, ids, contacts, clock = running
    with firm_context(acme.id):
        definition = copy.deepcopy(definition_of(workflow))
        _swap_last_step(definition)
        apply_definition(workflow, definition)
        db.session.commit()
        _, moved = publish(workflow, alice)
    assert moved == {"wait_2_days": 2}
    rows = _finish(acme, clock)
    assert {(r.status, r.version) for r in rows} == {("completed", 2)}
    assert rows[0].execution_path[-1] == "tag_v2"
    assert _tags(acme, contacts[0]) == {"v2"}


def test_kept_contacts_finish_on_their_old_version(acme, alice, running):
    workflow, ids, contacts, clock = running
    with firm_context(acme.id):
        definition = copy.deepcopy(definition_of(workflow))
        _swap_last_step(definition)
        apply_definition(workflow, definition)
        db.session.commit()
        publish(workflow, alice, keep_on_old_version=True)
    rows = _finish(acme, clock)
    assert {(r.status, r.version) for r in rows} == {("completed", 1)}
    assert rows[0].execution_path[-1] == "tag_done"
    assert _tags(acme, contacts[0]) == {"nurtured"}


def test_contacts_mapped_to_another_step_continue_from_it(acme, alice, running):
    workflow, ids, contacts, clock = running
    with firm_context(acme.id):
        _, moved = publish(workflow, alice, mapping={"wait_2_days": "tag_done"})
        # Same graph: no new version, but the contacts are on it already.
        assert moved == {}
        definition = copy.deepcopy(definition_of(workflow))
        definition["nodes"][4]["configuration"] = {"tag": "fast-tracked"}
        apply_definition(workflow, definition)
        db.session.commit()
        _, moved = publish(workflow, alice, mapping={"wait_2_days": "tag_done"})
    assert moved == {"wait_2_days": 2}
    from app.automation.engine.jobs import drain

    with firm_context(acme.id):
        drain()  # no time passes: they skip the waits
        db.session.expire_all()
        rows = db.session.scalars(select(WorkflowExecution)).all()
    assert {(r.status, r.version) for r in rows} == {("completed", 2)}
    assert _tags(acme, contacts[1]) == {"fast-tracked"}
