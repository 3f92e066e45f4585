"""A wait-for-condition re-checks when its contact changes, not on a timer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import time_machine

from app.automation.engine.batch import run_batch
from app.automation.engine.claim import claim_ready, new_owner
from app.automation.engine.jobs import drain
from app.extensions import db
from app.models import Contact, Tag
from app.tenancy import firm_context
from tests.engine.helpers import active_workflow, chain, execution, run, start, states_by_node
from tests.factories import make_contact

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
WAIT_FOR_VIP = (
    "wait",
    "wait_condition",
    {"rules": [{"tag": "vip", "op": "has"}], "timeout_hours": 24},
)


def _wait_for_vip(acme, alice, before=()):
    nodes = [
        *({"node_id": n, "node_type": t, "configuration": c} for n, t, c in before),
        {"node_id": "wait", "node_type": WAIT_FOR_VIP[1], "configuration": WAIT_FOR_VIP[2]},
        {"node_id": "met", "node_type": "add_tag", "configuration": {"tag": "met"}},
        {"node_id": "late", "node_type": "add_tag", "configuration": {"tag": "late"}},
    ]
    edges = [(a[0], b[0]) for a, b in zip(before, [*before[1:], WAIT_FOR_VIP], strict=False)]
    edges += [("wait", "met", "yes"), ("wait", "late", "timeout")]
    return active_workflow(acme, alice, nodes, edges)


def _tag_through_the_crm(acme, contact_id: int, name: str) -> None:
    """As the UI and the API do: an ORM change, an event after commit."""
    with firm_context(acme.id):
        contact = db.session.get(Contact, contact_id)
        tag = db.session.query(Tag).filter_by(name=name).one_or_none() or Tag(name=name)
        contact.tags.append(tag)
        db.session.commit()


def test_a_crm_change_wakes_the_contacts_condition_wait_at_once(acme, alice):
    workflow = _wait_for_vip(acme, alice)
    contact, bystander = make_contact(acme), make_contact(acme)
    with time_machine.travel(T0, tick=False):
        waiting, other = run(workflow, contact), run(workflow, bystander)
        _tag_through_the_crm(acme, contact.id, "vip")
        drain()  # the clock has not moved: no timer made it due
    assert execution(acme.id, waiting.id).execution_path == ["wait", "met"]
    assert states_by_node(acme.id, waiting.id)["wait"].branch == "yes"
    untouched = execution(acme.id, other.id)
    assert (untouched.status, untouched.steps_taken) == ("waiting", 1)


def test_another_workflows_crm_step_wakes_it_though_no_trigger_listens(acme, alice):
    waits = _wait_for_vip(acme, alice)
    tagger = active_workflow(acme, alice, *chain(("vip", "add_tag", {"tag": "vip"})))
    contact = make_contact(acme)
    with time_machine.travel(T0, tick=False):
        waiting = run(waits, contact)
        run(tagger, contact)
    assert execution(acme.id, waiting.id).execution_path == ["wait", "met"]


def test_a_change_made_by_the_waiting_execution_itself_does_not_wake_it_again(acme, alice, app):
    workflow = _wait_for_vip(acme, alice, before=(("mark", "add_tag", {"tag": "seen"}),))
    recheck = timedelta(seconds=app.config["CONDITION_RECHECK_SECONDS"])
    with time_machine.travel(T0, tick=False):
        waiting = run(workflow, make_contact(acme))
    assert (waiting.status, waiting.steps_taken) == ("waiting", 2)
    assert waiting.wake_at.replace(tzinfo=UTC) == T0 + recheck


def test_a_walk_on_facts_from_before_the_change_is_fenced_out_and_walked_again(acme, alice, app):
    workflow = _wait_for_vip(acme, alice)
    contact = make_contact(acme)
    recheck = timedelta(seconds=app.config["CONDITION_RECHECK_SECONDS"])
    with time_machine.travel(T0, tick=False) as clock:
        [execution_id] = start(workflow, contact)
        drain()
        clock.shift(recheck)
        owner = new_owner()
        stale = claim_ready(10, owner)  # a worker takes the due recheck ...
        assert [row["id"] for row in stale] == [execution_id]
        _tag_through_the_crm(acme, contact.id, "vip")  # ... as the contact changes
        assert run_batch(stale, owner)["steps"] == 0  # its write-back is refused
        drain()
    done = execution(acme.id, execution_id)
    assert done.execution_path == ["wait", "met"]
