"""Experiments over executions the real engine ran: a winner decided once,
routing after it, holdouts that get nothing, the lift over them."""

from __future__ import annotations

import math
import random

import pytest
from scipy import stats
from sqlalchemy import event, func, select

from app.automation.analytics import experiments
from app.automation.analytics.experiments import decide, workflow_experiments
from app.automation.analytics.sequential import TEST_NAME, Arm, look
from app.automation.audiences.counting import sql_condition
from app.automation.engine.enrollment import enroll
from app.automation.engine.jobs import drain
from app.automation.lifecycle.publishing import activate_workflow
from app.automation.nodes.control import holdout_bucket
from app.extensions import db
from app.models import (
    Contact,
    ContactFlowState,
    OutboxMessage,
    SplitDecision,
    Tag,
    WorkflowExecution,
)
from app.tenancy import firm_context
from tests.delivery.conftest import smtp_server  # noqa: F401 - the fixture
from tests.factories import make_workflow

AUTO = {"min_per_variant": 100, "alpha": 0.05}


def _split(**extra) -> dict:
    return {
        "node_id": "split",
        "node_type": "split",
        "configuration": {
            "variants": [{"name": "A", "weight": 50}, {"name": "B", "weight": 50}],
            **extra,
        },
    }


def _converts_below(node_id: str, share: float) -> dict:
    """A contact converts when its drawn number ``custom.u`` is below ``share``."""
    return {
        "node_id": node_id,
        "node_type": "condition",
        "configuration": {"rules": [{"field": "contact.custom.u", "op": "lt", "value": share}]},
    }


def _experiment_workflow(firm, user, rate_a: float, rate_b: float):
    nodes = [
        _split(metric={"goal": "won"}, auto_winner=AUTO),
        _converts_below("check_a", rate_a),
        _converts_below("check_b", rate_b),
        {"node_id": "won", "node_type": "goal", "configuration": {"goal_value": 1}},
    ]
    edges = [
        ("split", "check_a", "variant", {"variant": "A"}),
        ("split", "check_b", "variant", {"variant": "B"}),
        ("check_a", "won", "yes"),
        ("check_b", "won", "yes"),
    ]
    workflow = make_workflow(firm, nodes=nodes, edges=edges, triggers=[{"trigger_type": "manual"}])
    with firm_context(firm.id):
        activate_workflow(workflow, user)
        db.session.commit()
    return workflow


def _contacts(firm, n: int, rng: random.Random, **fields) -> list[int]:
    with firm_context(firm.id):
        rows = [
            Contact(email=f"c{rng.random():.12f}@example.com", custom_fields={"u": rng.random()})
            for _ in range(n)
        ]
        for row in rows:
            for key, value in fields.items():
                setattr(row, key, value)
        db.session.add_all(rows)
        db.session.commit()
        return [row.id for row in rows]


def _stream(firm, workflow, rng, chunks: int, size: int = 40) -> list[int]:
    """Enroll ``size`` contacts at a time, run the engine, look; returns how
    many decisions each look recorded."""
    recorded = []
    for _ in range(chunks):
        ids = _contacts(firm, size, rng)
        with firm_context(firm.id):
            enroll(workflow, ids, trigger_type="manual")
        drain()
        with firm_context(firm.id):
            recorded.append(decide(db.session.get(type(workflow), workflow.id)))
    return recorded


def _variants_after(firm, workflow, moment) -> set[str]:
    with firm_context(firm.id):
        stmt = select(ContactFlowState.variant).where(
            ContactFlowState.workflow_id == workflow.id,
            ContactFlowState.node_id == "split",
            ContactFlowState.entered_at > moment,
        )
        return set(db.session.scalars(stmt))


def test_a_real_effect_is_decided_exactly_once_and_new_contacts_take_the_winner(acme, alice):
    workflow = _experiment_workflow(acme, alice, 0.10, 0.35)
    rng = random.Random(11)
    recorded = _stream(acme, workflow, rng, chunks=10)
    assert sum(recorded) == 1
    with firm_context(acme.id):
        (decision,) = db.session.scalars(select(SplitDecision)).all()
        assert decision.winner == "B" and decision.node_id == "split"
        assert decision.p_value <= 0.05 and decision.test == TEST_NAME
        assert decision.metric == "goal:won"
        numbers = decision.numbers
        assert min(numbers["A"]["entered"], numbers["B"]["entered"]) >= 100
        # The recorded numbers are the ones the test decided on.
        verdict = look(
            [Arm(k, v["entered"], v["conversions"]) for k, v in numbers.items()], 100, 0.05
        )
        assert verdict.winner == "B" and verdict.p_value == pytest.approx(decision.p_value)
        decided_at = decision.decided_at
    # Every contact entering after the decision goes down B's edge.
    _stream(acme, workflow, rng, chunks=2)
    assert _variants_after(acme, workflow, decided_at) == {"B"}
    with firm_context(acme.id):
        assert db.session.scalar(select(func.count()).select_from(SplitDecision)) == 1


def test_an_aa_stream_decides_nothing(acme, alice):
    workflow = _experiment_workflow(acme, alice, 0.2, 0.2)
    recorded = _stream(acme, workflow, random.Random(5), chunks=12)
    assert sum(recorded) == 0
    with firm_context(acme.id):
        assert db.session.scalar(select(func.count()).select_from(SplitDecision)) == 0
        (experiment,) = workflow_experiments(workflow)
    assert experiment["winner"] is None and experiment["decided_at"] is None
    assert experiment["ready"] and experiment["p_value"] > 0.05
    assert sum(v["entered"] for v in experiment["variants"]) == 12 * 40


def test_two_deciders_at_once_write_one_decision(acme, alice, monkeypatch):
    """Both saw no decision and both insert: the unique key keeps one row,
    and the second insert is no error."""
    workflow = _experiment_workflow(acme, alice, 0.05, 0.6)
    _stream(acme, workflow, random.Random(3), chunks=1, size=300)
    with firm_context(acme.id):
        db.session.execute(SplitDecision.__table__.delete())
        db.session.commit()
        monkeypatch.setattr(experiments, "_decisions", lambda workflow_id: {})
        assert decide(workflow) == 1
        assert decide(workflow) == 1  # inserted nothing: the row was there
        assert db.session.scalar(select(func.count()).select_from(SplitDecision)) == 1


def test_held_out_contacts_get_nothing_and_end_completed(acme, alice, smtp_server):  # noqa: F811
    nodes = [
        _split(holdout_percent=40),
        {
            "node_id": "mail_a",
            "node_type": "send_email",
            "configuration": {"subject": "A", "body_text": "Offer A"},
        },
        {
            "node_id": "mail_b",
            "node_type": "send_email",
            "configuration": {"subject": "B", "body_text": "Offer B"},
        },
    ]
    edges = [
        ("split", "mail_a", "variant", {"variant": "A"}),
        ("split", "mail_b", "variant", {"variant": "B"}),
    ]
    workflow = make_workflow(acme, nodes=nodes, edges=edges, triggers=[{"trigger_type": "manual"}])
    ids = _contacts(acme, 40, random.Random(8))
    with firm_context(acme.id):
        activate_workflow(workflow, alice)
        db.session.commit()
        enroll(workflow, ids, trigger_type="manual")
    drain()
    # The held-out contacts are exactly those whose holdout bucket is under 40.
    expected_held = {i for i in ids if holdout_bucket(workflow.id, "split", i) < 40}
    assert 5 < len(expected_held) < 30
    with firm_context(acme.id):
        rows = db.session.execute(
            select(WorkflowExecution.contact_id, WorkflowExecution.status, ContactFlowState)
            .join(ContactFlowState, ContactFlowState.execution_id == WorkflowExecution.id)
            .where(ContactFlowState.node_id == "split")
        ).all()
        held = {contact for contact, _, state in rows if state.branch == "holdout"}
        assert held == expected_held
        for contact, status, state in rows:
            if contact in held:
                assert status == "completed"
                assert state.action_status == "skipped"
                assert state.action_result == {"reason": "holdout"}
                assert state.variant is None
        emails = dict(db.session.execute(select(Contact.id, Contact.email)).all())
        outbox_contacts = set(db.session.scalars(select(OutboxMessage.contact_id)))
    assert outbox_contacts == set(ids) - held
    received = {rcpt for _, rcpts in smtp_server.envelopes for rcpt in rcpts}
    assert received == {emails[i] for i in set(ids) - held}
    assert not received & {emails[i] for i in held}


def _wilson(x: int, n: int) -> tuple[float, float]:
    z = stats.norm.ppf(0.975)
    p = x / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return centre - half, centre + half


TAGGED = {"rules": [{"tag": "buyer", "op": "has"}]}
# A custom key with a dot has no SQL form: the evaluator counts instead.
NESTED = {"rules": [{"field": "contact.custom.plan.tier", "op": "eq", "value": "gold"}]}


def _buy(contact: Contact, tag: Tag) -> None:
    contact.tags.append(tag)
    contact.custom_fields = {**(contact.custom_fields or {}), "plan": {"tier": "gold"}}


@pytest.mark.parametrize("rules", [TAGGED, NESTED], ids=["sql", "evaluator"])
def test_the_lift_over_the_holdout_matches_a_hand_computation(acme, alice, rules):
    with firm_context(acme.id):
        assert (sql_condition(rules) is not None) == (rules is TAGGED)
    nodes = [
        _split(holdout_percent=50, metric={"goal": "bought"}),
        {"node_id": "wait", "node_type": "wait_time", "configuration": {"wait_duration_hours": 48}},
        {"node_id": "bought", "node_type": "goal", "configuration": rules},
    ]
    edges = [
        ("split", "wait", "variant", {"variant": "A"}),
        ("split", "wait", "variant", {"variant": "B"}),
    ]
    workflow = make_workflow(acme, nodes=nodes, edges=edges, triggers=[{"trigger_type": "manual"}])
    ids = _contacts(acme, 60, random.Random(21))
    with firm_context(acme.id):
        activate_workflow(workflow, alice)
        db.session.commit()
        enroll(workflow, ids, trigger_type="manual")
    drain()
    held = sorted(i for i in ids if holdout_bucket(workflow.id, "split", i) < 50)
    treated = sorted(set(ids) - set(held))
    # Later, outside the workflow: 9 treated and 2 held-out contacts buy.
    buyers = treated[:9] + held[:2]
    with firm_context(acme.id):
        tag = Tag(name="buyer")
        db.session.add(tag)
        for contact in db.session.scalars(select(Contact).where(Contact.id.in_(buyers))):
            _buy(contact, tag)
        db.session.commit()
        (experiment,) = workflow_experiments(workflow)
    holdout = experiment["holdout"]
    assert holdout["percent"] == 50 and holdout["entered"] == len(held)
    lift = holdout["lift"]
    assert lift["available"] and lift["goal"] == "bought"
    n_t, n_h = len(treated), len(held)
    assert lift["treated"]["contacts"] == n_t and lift["treated"]["conversions"] == 9
    assert lift["holdout"]["contacts"] == n_h and lift["holdout"]["conversions"] == 2
    p_t, p_h = 9 / n_t, 2 / n_h
    assert lift["difference"] == pytest.approx(100 * (p_t - p_h), abs=1e-3)
    (l_t, u_t), (l_h, u_h) = _wilson(9, n_t), _wilson(2, n_h)
    low = p_t - p_h - math.sqrt((p_t - l_t) ** 2 + (u_h - p_h) ** 2)
    high = p_t - p_h + math.sqrt((u_t - p_t) ** 2 + (p_h - l_h) ** 2)
    assert lift["interval"] == pytest.approx([100 * low, 100 * high], abs=1e-3)
    # Held-out contacts are never counted in a variant.
    assert sum(v["entered"] for v in experiment["variants"]) == n_t


def test_lift_needs_a_goal_with_rules(acme, alice):
    nodes = [
        _split(holdout_percent=20, metric="click"),
        {"node_id": "wait", "node_type": "wait_time", "configuration": {"wait_duration_hours": 1}},
    ]
    edges = [
        ("split", "wait", "variant", {"variant": "A"}),
        ("split", "wait", "variant", {"variant": "B"}),
    ]
    workflow = make_workflow(acme, nodes=nodes, edges=edges)
    with firm_context(acme.id):
        (experiment,) = workflow_experiments(workflow)
    assert experiment["metric"] == "click"
    assert experiment["holdout"]["lift"]["available"] is False
    assert "goal with rules" in experiment["holdout"]["lift"]["note"]


def test_the_periodic_job_decides_each_firms_active_workflows(acme, alice, globex, charlie):
    ours = _experiment_workflow(acme, alice, 0.05, 0.6)
    theirs = _experiment_workflow(globex, charlie, 0.6, 0.05)
    rng = random.Random(13)
    for firm, workflow in ((acme, ours), (globex, theirs)):
        ids = _contacts(firm, 300, rng)
        with firm_context(firm.id):
            enroll(workflow, ids, trigger_type="manual")
    drain()
    assert experiments.run_experiment_decisions() == 2
    assert experiments.run_experiment_decisions() == 0
    rows = db.session.execute(
        select(
            SplitDecision.firm_id, SplitDecision.workflow_id, SplitDecision.winner
        ).execution_options(all_firms=True)
    ).all()
    assert sorted(rows) == sorted([(acme.id, ours.id, "B"), (globex.id, theirs.id, "A")])


def test_without_a_metric_the_lift_uses_the_only_goal_with_rules(acme, alice):
    nodes = [
        _split(holdout_percent=30),
        {"node_id": "wait", "node_type": "wait_time", "configuration": {"wait_duration_hours": 1}},
        {"node_id": "path_goal", "node_type": "goal", "configuration": {}},
        {
            "node_id": "bought",
            "node_type": "goal",
            "configuration": {"rules": [{"tag": "buyer", "op": "has"}]},
        },
    ]
    edges = [
        ("split", "wait", "variant", {"variant": "A"}),
        ("split", "wait", "variant", {"variant": "B"}),
        ("wait", "path_goal"),
    ]
    workflow = make_workflow(acme, nodes=nodes, edges=edges)
    with firm_context(acme.id):
        (experiment,) = workflow_experiments(workflow)
    lift = experiment["holdout"]["lift"]
    assert lift["available"] and lift["goal"] == "bought"
    assert lift["difference"] is None and "no contacts" in lift["note"]


def test_the_engine_reads_the_decisions_once_per_batch(acme, alice, app):
    workflow = _experiment_workflow(acme, alice, 0.1, 0.1)
    ids = _contacts(acme, 60, random.Random(2))
    seen: list[str] = []

    def watch(conn, cursor, statement, *args):
        if "split_decisions" in statement:
            seen.append(statement)

    engine = db.engine
    event.listen(engine, "before_cursor_execute", watch)
    try:
        with firm_context(acme.id):
            enroll(workflow, ids, trigger_type="manual")
        totals = drain()
    finally:
        event.remove(engine, "before_cursor_execute", watch)
    assert totals["executions"] >= 60
    assert 1 <= len(seen) <= -(-60 // app.config["ENGINE_BATCH_SIZE"])
