"""SQL aggregates over flow states, the outbox and tracking events.

See :mod:`queries` for periods and the rules (one pass per table,
ORM-enabled selects so tenancy applies, test runs never count).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import case, func, literal, select

from app.automation.analytics.queries import (
    SENT_STATUSES,
    TRACKED_KINDS,
    E,
    Period,
    S,
    _int,
    dialect,
    goal_hit,
    seconds_between,
)
from app.extensions import db
from app.models import OutboxMessage, TrackingEvent


def new_node_row() -> dict[str, Any]:
    return {
        "visits": 0,
        "successes": 0,
        "failures": 0,
        "skipped": 0,
        "exited": 0,
        "timed": 0,
        "time_spent_seconds": 0.0,
    }


OUTCOME_FIELDS = {"success": "successes", "failed": "failures", "skipped": "skipped"}


def flow_stats(
    period: Period, detail: bool = True, with_conversions: bool = True
) -> tuple[dict, dict, dict]:
    """(per-node stats, transitions, per-variant counts) from one pass over
    the period's flow states.

    The pass groups by (node, next node, variant, outcome) and computes only
    counts and one SUM per group; Python folds the few groups into per-node
    figures. ``detail=False`` (the flow overlay) groups by (node, next node)
    alone. ``with_conversions=False`` leaves each variant's conversions at 0
    for a caller that runs :func:`variant_conversions` alongside and merges
    them with :func:`add_conversions`."""
    if dialect() == "postgresql":
        spent = func.sum(S.exited_at - S.entered_at)
    else:
        spent = func.sum(seconds_between(S.exited_at, S.entered_at))
    keys = [S.node_id, S.next_node]
    if detail:
        keys += [S.variant, S.action_status]
    if detail:
        columns = [*keys, func.count(), func.count(S.exited_at), spent]
    else:
        # The overlay needs no timing: count only.
        columns = [*keys, func.count(), literal(0), literal(None)]

    def run(stmt, sign: int, into: list) -> None:
        for row in db.session.execute(stmt.group_by(*keys)):
            *group, visits, n_timed, total = row
            into.append((group, sign * _int(visits), sign * _int(n_timed), total, sign))

    groups: list = []
    run(period.states(*columns), 1, groups)
    tests = period.test_states(*columns) if period.whole else None
    if tests is not None:
        run(tests, -1, groups)

    nodes: dict[str, dict[str, Any]] = {}
    transitions: dict[tuple[str, str], int] = {}
    variants: dict[str, dict[str, dict[str, int]]] = {}
    for group, visits, n_timed, total, sign in groups:
        key, target = group[0], group[1]
        row = nodes.setdefault(key, new_node_row())
        row["visits"] += visits
        row["timed"] += n_timed
        row["time_spent_seconds"] += sign * _seconds(total)
        if target is not None:
            row["exited"] += visits
            transitions[(key, target)] = transitions.get((key, target), 0) + visits
        if detail:
            variant, outcome = group[2], group[3]
            if outcome in OUTCOME_FIELDS:
                row[OUTCOME_FIELDS[outcome]] += visits
            if variant is not None:
                slot = variants.setdefault(key, {}).setdefault(
                    variant, {"entered": 0, "conversions": 0}
                )
                slot["entered"] += visits
    if detail and variants and with_conversions:
        add_conversions(variants, variant_conversions(period))
    for row in nodes.values():
        row["time_spent_seconds"] = round(row["time_spent_seconds"], 3)
    return nodes, transitions, variants


def _seconds(total) -> float:
    if total is None:
        return 0.0
    if isinstance(total, timedelta):
        return total.total_seconds()
    return float(total)


def add_conversions(variants: dict, conversions: dict[str, dict[str, int]]) -> None:
    """Set each seen variant's goal conversions (from :func:`variant_conversions`)."""
    for key, by_variant in conversions.items():
        for variant, n in by_variant.items():
            if variant in variants.get(key, {}):
                variants[key][variant]["conversions"] = n


def variant_conversions(period: Period) -> dict[str, dict[str, int]]:
    """Split visits whose execution reached a goal, per node and variant:
    a join of the (partially indexed) split rows with the executions."""
    stmt = (
        select(S.node_id, S.variant, func.count())
        .select_from(S)
        .join(E, E.id == S.execution_id)
        .where(S.workflow_id == period.workflow_id, S.variant.is_not(None), goal_hit())
        .where(*period.execution_filter())
        .group_by(S.node_id, S.variant)
    )
    if not period.whole and period.lo is not None:
        stmt = stmt.where(S.entered_at >= period.lo)
    result: dict[str, dict[str, int]] = {}
    for key, variant, n in db.session.execute(stmt):
        result.setdefault(key, {})[variant] = _int(n)
    return result


def visit_counts(workflow_id: int) -> dict[str, int]:
    nodes, _, _ = flow_stats(Period(workflow_id), detail=False)
    return {key: row["visits"] for key, row in nodes.items()}


def email_counts(period: Period) -> dict[str, dict[str, int]]:
    """Per e-mail node: messages sent and unique opens, clicks,
    unsubscribes and bounces (one per execution and kind)."""
    sent_stmt = (
        select(
            OutboxMessage.node_id,
            func.sum(case((OutboxMessage.status.in_(SENT_STATUSES), 1), else_=0)),
        )
        .where(
            OutboxMessage.workflow_id == period.workflow_id,
            OutboxMessage.channel == "email",
            *period.restrict(OutboxMessage.execution_id),
        )
        .group_by(OutboxMessage.node_id)
    )
    result: dict[str, dict[str, int]] = {}
    for node_id, sent in db.session.execute(sent_stmt):
        result[node_id] = {"sent": _int(sent), **{name: 0 for name in TRACKED_KINDS.values()}}
    T = TrackingEvent
    events_stmt = (
        select(T.node_id, T.kind, T.machine, func.count(func.distinct(T.execution_id)))
        .where(
            T.workflow_id == period.workflow_id,
            T.kind.in_(tuple(TRACKED_KINDS)),
            *period.restrict(T.execution_id),
        )
        .group_by(T.node_id, T.kind, T.machine)
    )
    # People's opens and clicks count; machines' (privacy proxies, link
    # scanners) are counted beside ("opened_by_machines"), never in a rate.
    for node_id, kind, machine, n in db.session.execute(events_stmt):
        row = result.setdefault(node_id, {"sent": 0, **{k: 0 for k in TRACKED_KINDS.values()}})
        if not machine:
            row[TRACKED_KINDS[kind]] = _int(n)
    raw_stmt = (
        select(T.node_id, T.kind, func.count(func.distinct(T.execution_id)))
        .where(
            T.workflow_id == period.workflow_id,
            T.kind.in_(("open", "click")),
            T.machine.is_(True),
            *period.restrict(T.execution_id),
        )
        .group_by(T.node_id, T.kind)
    )
    for node_id, kind, n in db.session.execute(raw_stmt):
        row = result[node_id]
        row[f"{TRACKED_KINDS[kind]}_by_machines"] = _int(n)
    return result
