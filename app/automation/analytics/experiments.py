"""Experiments: what each split of a workflow shows, and the decision it
takes once (docs/EXPERIMENTS.md).

Per split and variant: contacts entered, conversions by the split's
``metric``, the rate with its Wilson interval, the always-valid p-value of
:mod:`sequential`; the recorded decision (``split_decisions``) with its
numbers and moment; the holdout and the lift of the workflow over it.

A decision is written once: an INSERT guarded by the unique key
(workflow, node_id) with ON CONFLICT DO NOTHING, from the periodic job
:func:`run_experiment_decisions` and from every read of
:func:`workflow_experiments`, so two workers (or a worker and a page)
deciding at the same moment write one row and agree on it.

The counts read the analytics engine (a replica when one is set,
docs/OPERATIONS.md); the decisions are read and written on the primary. A
replica a little behind only makes a look a little earlier: the
sequential test stays valid at any moment it is read.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, exists, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import aliased

from app.automation.analytics.ab_testing import wilson_interval
from app.automation.analytics.queries import E, S, dialect, each_active_workflow, goal_hit
from app.automation.analytics.sequential import (
    LIFT_TEST,
    TEST_NAME,
    Arm,
    look,
    rate_difference,
)
from app.automation.audiences.counting import sql_condition
from app.automation.graph.definition import definition_of
from app.automation.nodes.control import AutoWinner, SplitConfig
from app.automation.triggers.audience import matching_contact_ids
from app.clock import now
from app.extensions import db, reads_analytics
from app.models import Contact, SplitDecision, TrackingEvent, Workflow, WorkflowVersion

log = logging.getLogger(__name__)

ID_CHUNK = 5000


@dataclass
class SplitSpec:
    node_id: str
    label: str
    config: SplitConfig
    goals: dict[str, dict]  # goal node_id -> configuration

    @property
    def metric_name(self) -> str:
        metric = self.config.metric
        if isinstance(metric, dict):
            return f"goal:{metric['goal']}"
        return metric or "goal_reached"

    @property
    def rules_goal(self) -> tuple[str, dict] | None:
        """The goal whose rules say, without the workflow, whether a contact
        converted: the metric's goal, or the only goal with rules."""
        metric = self.config.metric
        if isinstance(metric, dict):
            wanted = [metric["goal"]]
        elif metric is None:
            wanted = list(self.goals)
        else:
            return None
        with_rules = [g for g in wanted if (self.goals.get(g) or {}).get("rules")]
        if len(with_rules) != 1:
            return None
        config = self.goals[with_rules[0]]
        return with_rules[0], {"match": config.get("match", "all"), "rules": config["rules"]}


def running_definition(workflow: Workflow) -> dict:
    """The definition contacts walk: the latest published version's, or the
    draft before the first publication."""
    if workflow.version:
        definition = db.session.scalar(
            select(WorkflowVersion.definition).where(
                WorkflowVersion.workflow_id == workflow.id,
                WorkflowVersion.number == workflow.version,
            )
        )
        if definition is not None:
            return definition
    return definition_of(workflow)


def splits_of(definition: dict) -> list[SplitSpec]:
    goals = {
        node["node_id"]: dict(node.get("configuration") or {})
        for node in definition.get("nodes", [])
        if node.get("node_type") == "goal"
    }
    specs = []
    for node in definition.get("nodes", []):
        if node.get("node_type") != "split":
            continue
        try:
            config = SplitConfig.model_validate(node.get("configuration") or {})
        except ValueError:
            continue  # a broken split is a validation problem, not an experiment
        specs.append(
            SplitSpec(node["node_id"], node.get("label") or node["node_id"], config, goals)
        )
    return specs


# -- counting -------------------------------------------------------------------


def _split_rows(workflow_id: int, node_id: str):
    return and_(
        S.workflow_id == workflow_id,
        S.node_id == node_id,
        E.id == S.execution_id,
        E.test_mode.is_(False),
    )


def _converted(spec: SplitSpec):
    """A condition on the split's flow state row ``S`` (joined with its
    execution ``E``): that visit converted by the metric."""
    metric = spec.config.metric
    if metric is None:
        return goal_hit()
    if isinstance(metric, dict):
        reached = aliased(S)
        return exists().where(
            reached.execution_id == S.execution_id,
            reached.node_id == metric["goal"],
            reached.action_status == "success",
        )
    T = TrackingEvent
    return exists().where(
        T.execution_id == S.execution_id,
        T.kind == metric,
        T.machine.is_(False),
        T.created_at >= S.entered_at,
    )


@reads_analytics
def variant_counts(workflow_id: int, spec: SplitSpec) -> dict[str, dict[str, int]]:
    """Per variant: executions that entered it and those that converted."""
    names = [variant.name for variant in spec.config.variants]
    counts = {name: {"entered": 0, "conversions": 0} for name in names}
    base = _split_rows(workflow_id, spec.node_id)
    stmt = (
        select(S.variant, func.count(func.distinct(S.execution_id)))
        .select_from(S)
        .join(E, E.id == S.execution_id)
        .where(base, S.variant.in_(names))
        .group_by(S.variant)
    )
    for name, n in db.session.execute(stmt):
        counts[name]["entered"] = int(n)
    converted = stmt.where(_converted(spec))
    for name, n in db.session.execute(converted):
        counts[name]["conversions"] = int(n)
    return counts


def _members(workflow_id: int, node_id: str, held: bool):
    """The distinct contacts of a group: held out, or treated (entered a
    variant and never held out, should ``holdout_percent`` have changed)."""
    base = select(E.contact_id).select_from(S).join(E, E.id == S.execution_id)
    held_out = base.where(_split_rows(workflow_id, node_id), S.branch == "holdout")
    chosen = (
        S.branch == "holdout"
        if held
        else and_(S.variant.is_not(None), E.contact_id.not_in(held_out))
    )
    return base.where(
        _split_rows(workflow_id, node_id), chosen, E.contact_id.is_not(None)
    ).distinct()


@reads_analytics
def _group_counts(workflow_id: int, node_id: str, held: bool, rules: dict) -> tuple[int, int]:
    """(contacts, contacts meeting ``rules`` now) of a group: one SQL count
    when the rules compile (app/automation/rules/sql.py), else the one
    evaluator over the group's contacts in batches."""
    members = _members(workflow_id, node_id, held).subquery()
    total = int(db.session.scalar(select(func.count()).select_from(members)) or 0)
    if not total:
        return 0, 0
    where = sql_condition(rules, workflow_id)
    if where is not None:
        stmt = select(func.count(Contact.id)).where(
            Contact.id.in_(select(members.c.contact_id)), where
        )
        return total, int(db.session.scalar(stmt) or 0)
    ids = sorted(db.session.scalars(select(members.c.contact_id)))
    passed = 0
    for start in range(0, len(ids), ID_CHUNK):
        chunk = ids[start : start + ID_CHUNK]
        for batch in matching_contact_ids(
            rules, workflow_id=workflow_id, where=(Contact.id.in_(chunk),)
        ):
            passed += len(batch)
    return total, passed


@reads_analytics
def holdout_count(workflow_id: int, node_id: str) -> int:
    stmt = (
        select(func.count(func.distinct(S.execution_id)))
        .select_from(S)
        .join(E, E.id == S.execution_id)
        .where(_split_rows(workflow_id, node_id), S.branch == "holdout")
    )
    return int(db.session.scalar(stmt) or 0)


def lift(workflow_id: int, spec: SplitSpec) -> dict[str, Any]:
    """The workflow's lift over its holdout (docs/EXPERIMENTS.md "Lift"):
    contacts of each group who meet the goal's rules now, the difference of
    the two rates and its interval. Both groups are measured the same way,
    so reaching the goal inside the workflow gives the treated no edge."""
    found = spec.rules_goal
    if found is None:
        return {
            "available": False,
            "note": "lift needs a goal with rules as the metric: held-out contacts "
            "never reach a goal inside the workflow",
        }
    goal_id, rules = found
    groups = {}
    for name, held in (("treated", False), ("holdout", True)):
        contacts, converted = _group_counts(workflow_id, spec.node_id, held, rules)
        groups[name] = _rate_block(converted, contacts)
    found_difference = rate_difference(
        groups["treated"]["conversions"],
        groups["treated"]["contacts"],
        groups["holdout"]["conversions"],
        groups["holdout"]["contacts"],
    )
    result: dict[str, Any] = {"available": True, "goal": goal_id, "test": LIFT_TEST, **groups}
    if found_difference is None:
        result.update(difference=None, interval=None, note="no contacts in one of the groups yet")
    else:
        difference, low, high = found_difference
        result.update(
            difference=round(100 * difference, 4),
            interval=[round(100 * low, 4), round(100 * high, 4)],
            note="",
        )
    return result


def _rate_block(conversions: int, contacts: int) -> dict[str, Any]:
    low, high = wilson_interval(conversions, contacts)
    return {
        "contacts": contacts,
        "conversions": conversions,
        "rate": round(100 * conversions / contacts, 4) if contacts else 0.0,
        "interval": [round(100 * low, 4), round(100 * high, 4)],
    }


# -- deciding -------------------------------------------------------------------


def _record(workflow: Workflow, spec: SplitSpec, verdict, counts, settings: AutoWinner) -> None:
    values = {
        "firm_id": workflow.firm_id,
        "workflow_id": workflow.id,
        "node_id": spec.node_id,
        "winner": verdict.winner,
        "p_value": verdict.p_value,
        "alpha": settings.alpha,
        "test": verdict.test,
        "metric": spec.metric_name,
        "numbers": counts,
        "decided_at": now(),
    }
    insert = pg_insert if dialect() == "postgresql" else sqlite_insert
    stmt = (
        insert(SplitDecision.__table__)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["workflow_id", "node_id"])
    )
    db.session.execute(stmt)


def decided_winners(workflow_id: int) -> dict[str, str]:
    """node_id -> winner of the workflow's decided splits (the canvas cards)."""
    stmt = select(SplitDecision.node_id, SplitDecision.winner).where(
        SplitDecision.workflow_id == workflow_id
    )
    return dict(db.session.execute(stmt).all())


def _decisions(workflow_id: int) -> dict[str, SplitDecision]:
    rows = db.session.scalars(select(SplitDecision).where(SplitDecision.workflow_id == workflow_id))
    return {row.node_id: row for row in rows}


def decide(
    workflow: Workflow,
    specs: list[SplitSpec] | None = None,
    counts: dict[str, dict] | None = None,
) -> int:
    """Record the winner of every undecided ``auto_winner`` split whose test
    is conclusive now (``counts`` by node_id when the caller has them);
    commits, returns how many were decided."""
    specs = splits_of(running_definition(workflow)) if specs is None else specs
    undecided = [s for s in specs if s.config.auto_winner is not None]
    if not undecided:
        return 0
    decided = _decisions(workflow.id)
    recorded = 0
    for spec in undecided:
        if spec.node_id in decided:
            continue
        seen = counts[spec.node_id] if counts else variant_counts(workflow.id, spec)
        settings = spec.config.auto_winner
        verdict = look(_arms(seen), settings.min_per_variant, settings.alpha)
        if verdict.winner is not None:
            _record(workflow, spec, verdict, seen, settings)
            recorded += 1
    if recorded:
        db.session.commit()
    return recorded


def _arms(counts: dict[str, dict[str, int]]) -> list[Arm]:
    return [Arm(name, c["entered"], c["conversions"]) for name, c in counts.items()]


def run_experiment_decisions() -> int:
    """The periodic job: decide every active workflow's experiments, firm by
    firm; returns how many splits were decided."""
    done = 0
    for workflow in each_active_workflow():
        workflow_id = workflow.id
        try:
            done += decide(workflow)
        except Exception:
            # One broken workflow must not stop the others' decisions.
            db.session.rollback()
            log.exception("experiment decisions failed for workflow %s", workflow_id)
    return done


# -- what pages and the API show ------------------------------------------------------


def workflow_experiments(workflow: Workflow) -> list[dict[str, Any]]:
    """Every split of the running definition as the experiments resource
    shows it (docs/CONTRACT.md "Experiments, audiences, forecasts,
    integrations"), after deciding what can be decided now."""
    specs = splits_of(running_definition(workflow))
    counts = {spec.node_id: variant_counts(workflow.id, spec) for spec in specs}
    decide(workflow, specs, counts)
    decisions = _decisions(workflow.id)
    return [
        _experiment(workflow, spec, decisions.get(spec.node_id), counts[spec.node_id])
        for spec in specs
    ]


def _experiment(
    workflow: Workflow, spec: SplitSpec, decision: SplitDecision | None, counts: dict
) -> dict:
    settings = spec.config.auto_winner or AutoWinner()
    verdict = look(_arms(counts), settings.min_per_variant, settings.alpha)
    variants = []
    for variant in spec.config.variants:
        c = counts[variant.name]
        block = _rate_block(c["conversions"], c["entered"])
        variants.append(
            {
                "name": variant.name,
                "weight": variant.weight,
                "entered": c["entered"],
                "conversions": c["conversions"],
                "rate": block["rate"],
                "interval": block["interval"],
            }
        )
    holdout = None
    held = holdout_count(workflow.id, spec.node_id)
    if spec.config.holdout_percent or held:
        holdout = {
            "percent": spec.config.holdout_percent,
            "entered": held,
            "lift": lift(workflow.id, spec),
        }
    return {
        "node_id": spec.node_id,
        "label": spec.label,
        "metric": spec.metric_name,
        "auto_winner": spec.config.auto_winner.model_dump() if spec.config.auto_winner else None,
        "test": TEST_NAME,
        "variants": variants,
        "best": verdict.best,
        "p_value": decision.p_value if decision else verdict.p_value,
        "ready": verdict.ready,
        "winner": decision.winner if decision else None,
        "decided_at": decision.decided_at.isoformat() if decision else None,
        "decision": (
            {
                "winner": decision.winner,
                "p_value": decision.p_value,
                "alpha": decision.alpha,
                "test": decision.test,
                "metric": decision.metric,
                "numbers": decision.numbers,
                "decided_at": decision.decided_at.isoformat(),
            }
            if decision
            else None
        ),
        "holdout": holdout,
    }
