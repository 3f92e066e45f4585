"""A goal's rules pull a waiting contact at once: any change to the contact
wakes its waits in workflows with a rule goal (issue 22, item 1)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import time_machine
from sqlalchemy import update

from app.automation.delivery import gates
from app.automation.delivery.gates.chain import CHAIN
from app.automation.engine.batch import run_batch
from app.automation.engine.claim import claim_ready, new_owner
from app.automation.engine.jobs import drain
from app.automation.engine.sweeper import process_waiting_executions
from app.extensions import db
from app.models import Contact, Tag, WorkflowExecution, contact_tags
from app.tenancy import firm_context
from tests.engine.helpers import active_workflow, chain, execution, run, start, states_by_node
from tests.factories import make_contact

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
BOUGHT = {
    "node_id": "bought",
    "node_type": "goal",
    "configuration": {"rules": [{"tag": "customer", "op": "has"}], "goal_value": 99},
}


def _with_goal(acme, alice, wait: tuple[str, dict]):
    """wait -> nudge, and a stand-alone goal "bought" (tag customer)."""
    nodes = [
        {"node_id": "wait", "node_type": wait[0], "configuration": wait[1]},
        {"node_id": "nudge", "node_type": "add_tag", "configuration": {"tag": "nudged"}},
        BOUGHT,
    ]
    return active_workflow(acme, alice, nodes, [("wait", "nudge")])


TEN_MINUTES = ("wait_time", {"wait_duration_seconds": 600})


def _tag_through_the_crm(acme, contact_id: int, name: str) -> None:
    """As the UI and the API do: an ORM change, an event after commit."""
    with firm_context(acme.id):
        contact = db.session.get(Contact, contact_id)
        tag = db.session.query(Tag).filter_by(name=name).one_or_none() or Tag(name=name)
        contact.tags.append(tag)
        db.session.commit()


def _tag_without_an_event(acme, contact_id: int, name: str) -> None:
    with firm_context(acme.id):
        tag = Tag(name=name)
        db.session.add(tag)
        db.session.flush()
        db.session.execute(contact_tags.insert().values(contact_id=contact_id, tag_id=tag.id))
        db.session.commit()


def _assert_jumped(acme, execution_id: int) -> None:
    done = execution(acme.id, execution_id)
    assert (done.status, done.execution_path) == ("goal_reached", ["wait", "bought"])
    wait = states_by_node(acme.id, execution_id)["wait"]
    assert (wait.action_status, wait.next_node) == ("skipped", "bought")
    assert wait.action_result["reason"] == "jumped to goal"


def test_a_crm_change_pulls_a_contact_out_of_a_time_wait_to_the_goal(acme, alice):
    workflow = _with_goal(acme, alice, TEN_MINUTES)
    contact, bystander = make_contact(acme), make_contact(acme)
    with time_machine.travel(T0, tick=False):
        waiting, other = run(workflow, contact), run(workflow, bystander)
        assert waiting.status == "waiting" and waiting.wait_reason == "time"
        _tag_through_the_crm(acme, contact.id, "customer")
        drain()  # the clock has not moved: no timer made it due
    _assert_jumped(acme, waiting.id)
    untouched = execution(acme.id, other.id)
    assert (untouched.status, untouched.steps_taken) == ("waiting", 1)


def test_another_workflows_crm_step_pulls_it(acme, alice):
    waits = _with_goal(acme, alice, TEN_MINUTES)
    tagger = active_workflow(acme, alice, *chain(("t", "add_tag", {"tag": "customer"})))
    contact = make_contact(acme)
    with time_machine.travel(T0, tick=False):
        waiting = run(waits, contact)
        run(tagger, contact)
    _assert_jumped(acme, waiting.id)


def test_a_wait_until_is_pulled_too(acme, alice):
    until = (T0 + timedelta(days=3)).isoformat()
    workflow = _with_goal(acme, alice, ("wait_until", {"until": until}))
    contact = make_contact(acme)
    with time_machine.travel(T0, tick=False):
        waiting = run(workflow, contact)
        assert waiting.wait_reason == "until"
        _tag_through_the_crm(acme, contact.id, "customer")
        drain()
    _assert_jumped(acme, waiting.id)


class _HoldAll(gates.Gate):
    """A throwaway gate: holds every e-mail for a day."""

    name = "test_hold_all"

    def check(self, candidate, state):
        return gates.defer(candidate.moment + timedelta(days=1), "outside send window", self.name)


def test_a_send_held_by_a_gate_is_pulled_and_never_sent(acme, alice, smtp_server):
    mail = {"subject": "Still thinking?", "body_text": "Hi", "max_attempts": 1}
    workflow = _with_goal(acme, alice, ("send_email", mail))
    contact = make_contact(acme)
    gates.register(_HoldAll)
    try:
        with time_machine.travel(T0, tick=False):
            waiting = run(workflow, contact)
            assert waiting.wait_reason == "held"
            _tag_through_the_crm(acme, contact.id, "customer")
            drain()
    finally:
        CHAIN.remove(next(g for g in CHAIN if g.name == _HoldAll.name))
    _assert_jumped(acme, waiting.id)
    assert smtp_server.messages == []


def test_a_change_that_does_not_meet_the_goal_does_not_cut_the_wait_short(acme, alice):
    workflow = _with_goal(acme, alice, TEN_MINUTES)
    contact = make_contact(acme)
    with time_machine.travel(T0, tick=False) as clock:
        waiting = run(workflow, contact)
        _tag_through_the_crm(acme, contact.id, "browsing")
        drain()
        still = execution(acme.id, waiting.id)
        assert (still.status, still.execution_path) == ("waiting", ["wait"])
        assert still.wake_at.replace(tzinfo=UTC) == T0 + timedelta(seconds=600)
        clock.shift(timedelta(seconds=601))
        drain()
    done = execution(acme.id, waiting.id)
    assert (done.status, done.execution_path) == ("completed", ["wait", "nudge"])


def test_a_workflow_without_a_rule_goal_is_not_woken(acme, alice):
    workflow = active_workflow(
        acme, alice, *chain(("wait", *TEN_MINUTES), ("nudge", "add_tag", {"tag": "nudged"}))
    )
    contact = make_contact(acme)
    with time_machine.travel(T0, tick=False):
        waiting = run(workflow, contact)
        _tag_through_the_crm(acme, contact.id, "customer")
        drain()
    still = execution(acme.id, waiting.id)
    assert (still.status, still.steps_taken) == ("waiting", 1)


def test_a_walk_on_facts_from_before_the_change_is_fenced_out_and_walked_again(acme, alice):
    workflow = _with_goal(acme, alice, TEN_MINUTES)
    contact = make_contact(acme)
    with time_machine.travel(T0, tick=False) as clock:
        [execution_id] = start(workflow, contact)
        drain()
        clock.shift(timedelta(seconds=601))
        owner = new_owner()
        stale = claim_ready(10, owner)  # a worker takes the ended wait ...
        assert [row["id"] for row in stale] == [execution_id]
        _tag_through_the_crm(acme, contact.id, "customer")  # ... as the contact changes
        assert run_batch(stale, owner)["steps"] == 0  # its write-back is refused
        drain()
    _assert_jumped(acme, execution_id)


def test_the_sweep_rechecks_goal_waits_for_changes_without_an_event(acme, alice, app):
    workflow = _with_goal(acme, alice, ("wait_time", {"wait_duration_hours": 72}))
    contact = make_contact(acme)
    recheck = timedelta(seconds=app.config["GOAL_RECHECK_SECONDS"])
    with time_machine.travel(T0, tick=False) as clock:
        waiting = run(workflow, contact)
        _tag_without_an_event(acme, contact.id, "customer")
        clock.shift(recheck - timedelta(seconds=1))
        assert process_waiting_executions()["goal_rechecks"] == 0
        drain()
        assert execution(acme.id, waiting.id).status == "waiting"
        clock.shift(timedelta(seconds=2))
        assert process_waiting_executions()["goal_rechecks"] == 1
        drain()
    _assert_jumped(acme, waiting.id)


def test_the_sweep_recheck_moves_on_to_the_next_wait(acme, alice, app):
    """Rechecked waits that still wait are walked, so the next sweep takes
    others first; test runs are never rechecked."""
    workflow = _with_goal(acme, alice, ("wait_time", {"wait_duration_hours": 72}))
    recheck = timedelta(seconds=app.config["GOAL_RECHECK_SECONDS"])
    with time_machine.travel(T0, tick=False) as clock:
        ids = start(workflow, make_contact(acme), make_contact(acme))
        drain()
        clock.shift(recheck + timedelta(seconds=1))
        assert process_waiting_executions()["goal_rechecks"] == 2
        drain()
        assert process_waiting_executions()["goal_rechecks"] == 0
        with firm_context(acme.id):
            stmt = update(WorkflowExecution).where(WorkflowExecution.id == ids[0])
            db.session.execute(stmt.values(test_mode=True))
            db.session.commit()
        clock.shift(recheck + timedelta(seconds=1))
        assert process_waiting_executions()["goal_rechecks"] == 1
