"""Condition, waits, split and goal nodes, with the clock moved by time-machine."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import time_machine
from sqlalchemy import select

from app.automation.engine.jobs import drain
from app.automation.engine.wakes import wake
from app.extensions import db
from app.models import WorkflowExecution, contact_tags
from app.tenancy import firm_context
from tests.engine.helpers import (
    active_workflow,
    chain,
    execution,
    flow_states,
    run,
    start,
    states_by_node,
)
from tests.factories import make_contact

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def _branching(acme, alice, rules):
    nodes = [
        {"node_id": "check", "node_type": "condition", "configuration": rules},
        {"node_id": "yes_tag", "node_type": "add_tag", "configuration": {"tag": "yes"}},
        {"node_id": "no_tag", "node_type": "add_tag", "configuration": {"tag": "no"}},
    ]
    edges = [("check", "yes_tag", "yes"), ("check", "no_tag", "no")]
    return active_workflow(acme, alice, nodes, edges)


def test_condition_takes_the_yes_and_no_branches(acme, alice):
    workflow = _branching(
        acme,
        alice,
        {"match": "all", "rules": [{"field": "contact.score", "op": "gte", "value": 50}]},
    )
    hot = run(workflow, make_contact(acme, score=80))
    cold = run(workflow, make_contact(acme, score=10))
    assert hot.execution_path == ["check", "yes_tag"]
    assert cold.execution_path == ["check", "no_tag"]
    state = states_by_node(acme.id, hot.id)["check"]
    assert (state.branch, state.next_node) == ("yes", "yes_tag")
    assert state.action_result["explain"][0]["actual"] == 80


def test_wait_time_waits_until_the_clock_passes(acme, alice):
    nodes, edges = chain(
        ("wait", "wait_time", {"wait_duration_hours": 48}), ("tag", "add_tag", {"tag": "later"})
    )
    workflow = active_workflow(acme, alice, nodes, edges)
    with time_machine.travel(T0, tick=False) as clock:
        waiting = run(workflow, make_contact(acme))
        assert (waiting.status, waiting.wait_reason) == ("waiting", "time")
        assert waiting.wake_at == T0 + timedelta(hours=48)
        assert states_by_node(acme.id, waiting.id)["wait"].action_status == "waiting"
        clock.shift(timedelta(hours=47))
        drain()
        assert execution(acme.id, waiting.id).status == "waiting"
        clock.shift(timedelta(hours=1))
        drain()
    done = execution(acme.id, waiting.id)
    assert done.status == "completed"
    states = states_by_node(acme.id, done.id)
    assert states["wait"].action_status == "success"
    assert states["wait"].exited_at == T0 + timedelta(hours=48)
    assert len(flow_states(acme.id, done.id)) == 2


def test_an_early_wake_does_not_cut_a_wait_short(acme, alice):
    nodes, edges = chain(
        ("wait", "wait_time", {"wait_duration_seconds": 600}), ("t", "add_tag", {"tag": "x"})
    )
    workflow = active_workflow(acme, alice, nodes, edges)
    with time_machine.travel(T0, tick=False):
        waiting = run(workflow, make_contact(acme))
        wake([waiting.id])
        drain()
        again = execution(acme.id, waiting.id)
    assert again.status == "waiting"
    assert again.wake_at == T0 + timedelta(seconds=600)


def test_wait_until_a_contact_date_in_the_contacts_timezone(acme, alice):
    nodes, edges = chain(
        ("until", "wait_until", {"field": "custom.renewal", "offset_days": -7, "at": "09:00"}),
        ("t", "add_tag", {"tag": "renewal"}),
    )
    workflow = active_workflow(acme, alice, nodes, edges)
    contact = make_contact(
        acme, timezone="America/New_York", custom_fields={"renewal": "2026-03-20"}
    )
    with time_machine.travel(T0, tick=False) as clock:
        waiting = run(workflow, contact)
        # 2026-03-13 09:00 in New York (EDT from March 8) is 13:00 UTC.
        assert waiting.wake_at == datetime(2026, 3, 13, 13, 0, tzinfo=UTC)
        clock.move_to(datetime(2026, 3, 13, 13, 0, 1, tzinfo=UTC))
        drain()
    assert execution(acme.id, waiting.id).status == "completed"


def test_wait_until_a_fixed_moment_in_the_past_passes_at_once(acme, alice):
    nodes, edges = chain(("until", "wait_until", {"until": "2020-01-01T00:00:00Z"}))
    workflow = active_workflow(acme, alice, nodes, edges)
    assert run(workflow, make_contact(acme)).status == "completed"


def test_wait_until_without_the_date_is_skipped(acme, alice):
    nodes, edges = chain(("until", "wait_until", {"field": "custom.renewal"}))
    workflow = active_workflow(acme, alice, nodes, edges)
    done = run(workflow, make_contact(acme))
    assert states_by_node(acme.id, done.id)["until"].action_status == "skipped"


def _wait_for_vip(acme, alice):
    nodes = [
        {
            "node_id": "wait",
            "node_type": "wait_condition",
            "configuration": {"rules": [{"tag": "vip", "op": "has"}], "timeout_hours": 24},
        },
        {"node_id": "met", "node_type": "add_tag", "configuration": {"tag": "met"}},
        {"node_id": "late", "node_type": "add_tag", "configuration": {"tag": "late"}},
    ]
    edges = [("wait", "met", "yes"), ("wait", "late", "timeout")]
    return active_workflow(acme, alice, nodes, edges)


def _tag(firm, contact, name):
    from app.models import Tag

    with firm_context(firm.id):
        tag = Tag(name=name)
        db.session.add(tag)
        db.session.flush()
        db.session.execute(contact_tags.insert().values(contact_id=contact.id, tag_id=tag.id))
        db.session.commit()


def test_wait_condition_rechecks_a_change_made_without_an_event_periodically(acme, alice, app):
    workflow = _wait_for_vip(acme, alice)
    contact = make_contact(acme)
    recheck = timedelta(seconds=app.config["CONDITION_RECHECK_SECONDS"])
    with time_machine.travel(T0, tick=False) as clock:
        waiting = run(workflow, contact)
        assert (waiting.status, waiting.wait_reason) == ("waiting", "condition")
        _tag(acme, contact, "vip")  # straight into the table: no event
        clock.shift(timedelta(minutes=1))  # sweeps pass; no walk every sweep
        drain()
        assert execution(acme.id, waiting.id).status == "waiting"
        clock.shift(recheck)  # the safety-net recheck
        drain()
    done = execution(acme.id, waiting.id)
    assert done.execution_path == ["wait", "met"]
    assert states_by_node(acme.id, done.id)["wait"].branch == "yes"


def test_wait_condition_times_out(acme, alice):
    workflow = _wait_for_vip(acme, alice)
    with time_machine.travel(T0, tick=False) as clock:
        waiting = run(workflow, make_contact(acme))
        for _ in range(3):
            clock.shift(timedelta(hours=9))
            drain()
    done = execution(acme.id, waiting.id)
    assert done.execution_path == ["wait", "late"]
    wait_state = states_by_node(acme.id, done.id)["wait"]
    assert wait_state.branch == "timeout"
    assert wait_state.action_result["timed_out_at"] == (T0 + timedelta(hours=24)).isoformat()


def _split_workflow(acme, alice, weights=(50, 50)):
    nodes = [
        {
            "node_id": "ab",
            "node_type": "split",
            "configuration": {
                "variants": [
                    {"name": "A", "weight": weights[0]},
                    {"name": "B", "weight": weights[1]},
                ]
            },
        },
        {"node_id": "a", "node_type": "add_tag", "configuration": {"tag": "a"}},
        {"node_id": "b", "node_type": "add_tag", "configuration": {"tag": "b"}},
    ]
    edges = [("ab", "a", "variant", {"variant": "A"}), ("ab", "b", "variant", {"variant": "B"})]
    return active_workflow(acme, alice, nodes, edges, allow_reentry=True)


def test_split_sends_contacts_down_weighted_variants(acme, alice):
    workflow = _split_workflow(acme, alice, (80, 20))
    contacts = [make_contact(acme) for _ in range(200)]
    start(workflow, *contacts)
    drain()
    with firm_context(acme.id):
        rows = db.session.scalars(select(WorkflowExecution)).all()
        chosen = Counter(row.context_data["variants"]["ab"] for row in rows)
        paths = {row.execution_path[1] for row in rows}
    assert paths == {"a", "b"}
    assert 130 <= chosen["A"] <= 190, chosen


def test_split_is_sticky_for_a_contact_that_comes_back(acme, alice):
    workflow = _split_workflow(acme, alice)
    contact = make_contact(acme)
    first = run(workflow, contact)
    second_id = start(workflow, contact, context={"again": True})[0]
    drain()
    second = execution(acme.id, second_id)
    assert first.id != second.id
    assert first.execution_path == second.execution_path
    state = states_by_node(acme.id, second.id)["ab"]
    assert state.variant == first.context_data["variants"]["ab"]


def test_goal_ends_with_goal_reached(acme, alice):
    nodes, edges = chain(
        ("t", "add_tag", {"tag": "x"}),
        ("goal", "goal", {"goal_value": 10}),
        ("after", "add_tag", {"tag": "after"}),
    )
    workflow = active_workflow(acme, alice, nodes, edges)
    done = run(workflow, make_contact(acme))
    assert (done.status, done.goal_reached) == ("goal_reached", True)
    assert done.execution_path == ["t", "goal"]


def test_goal_without_exit_on_goal_continues(acme, alice):
    nodes, edges = chain(
        ("t", "add_tag", {"tag": "x"}), ("goal", "goal", {}), ("after", "add_tag", {"tag": "y"})
    )
    workflow = active_workflow(acme, alice, nodes, edges, exit_on_goal=False)
    done = run(workflow, make_contact(acme))
    assert done.execution_path == ["t", "goal", "after"]
    assert (done.status, done.goal_reached) == ("goal_reached", True)


def test_a_contact_meeting_a_goals_rules_jumps_to_it_from_a_wait(acme, alice):
    nodes = [
        {"node_id": "wait", "node_type": "wait_time", "configuration": {"wait_duration_hours": 72}},
        {"node_id": "nudge", "node_type": "add_tag", "configuration": {"tag": "nudged"}},
        {
            "node_id": "bought",
            "node_type": "goal",
            "configuration": {"rules": [{"tag": "customer", "op": "has"}], "goal_value": 99},
        },
    ]
    workflow = active_workflow(acme, alice, nodes, [("wait", "nudge")])
    contact = make_contact(acme)
    with time_machine.travel(T0, tick=False):
        waiting = run(workflow, contact)
        assert waiting.status == "waiting"
        _tag(acme, contact, "customer")
        wake([waiting.id])
        drain()
    done = execution(acme.id, waiting.id)
    assert done.status == "goal_reached"
    assert done.execution_path == ["wait", "bought"]
    states = states_by_node(acme.id, done.id)
    assert (states["wait"].action_status, states["wait"].next_node) == ("skipped", "bought")
