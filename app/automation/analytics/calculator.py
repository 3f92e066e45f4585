"""The seed's ``AnalyticsCalculator``: stored period analytics and the flow
overlays the builder and the API show.

Numbers come from the aggregates in :mod:`queries` and :mod:`flow_queries`;
this module only shapes
them (per-node dicts, rates, the stored row)."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from app.automation.analytics import completion
from app.automation.analytics import flow_queries as fq
from app.automation.analytics import queries as q
from app.automation.analytics.concurrent import run_together
from app.automation.engine.enrollment import workflow_definition
from app.automation.graph.definition import definition_of
from app.clock import now
from app.extensions import analytics_reads, db, reads_analytics
from app.models import ContactFlowState, Workflow, WorkflowAnalytics, WorkflowExecution


def percent(part: float, whole: float) -> float:
    """``part`` as a percentage (0-100) of ``whole``; 0 when nothing to divide."""
    return round(100.0 * part / whole, 4) if whole else 0.0


def email_block(counts: dict[str, int]) -> dict[str, Any]:
    """E-mail counts with their rates (percent of sent)."""
    sent = counts.get("sent", 0)
    block: dict[str, Any] = dict(counts)
    rates = {
        "open_rate": "opened",
        "click_rate": "clicked",
        "unsubscribe_rate": "unsubscribed",
        "bounce_rate": "bounced",
    }
    for rate, name in rates.items():
        block[rate] = percent(counts.get(name, 0), sent)
    return block


def build_node_performance(
    period: q.Period,
    nodes: list[dict],
    total_executions: int,
    stops: dict[str, int],
    flow: tuple[dict, dict, dict] | None = None,
    emails: dict[str, dict[str, int]] | None = None,
    drops: dict[str, int] | None = None,
) -> tuple[dict[str, dict], list[dict]]:
    """(node_performance, drop_off_points) for one period, from the flow
    and e-mail aggregates (queried here unless the caller already has them).

    Every count in node_performance is additive across periods (the
    dashboard sums daily rows); averages are derived from stored sums
    (``time_spent_seconds`` / ``timed``). ``stopped`` counts executions that
    ended at the node short of a goal; ``dropped`` the part of them that
    failed, was canceled or is stuck (the rest completed a branch)."""
    stats, transitions, variants = flow if flow is not None else fq.flow_stats(period)
    if emails is None:
        emails = fq.email_counts(period)

    known = {node["node_id"]: node for node in nodes}
    keys = list(known) + sorted(
        key for key in set(stats) | set(stops) | set(emails) if key not in known
    )
    performance: dict[str, dict] = {}
    drop_offs: list[dict] = []
    for key in keys:
        node = known.get(key, {})
        row = stats.get(key) or fq.new_node_row()
        entry: dict[str, Any] = {
            "node_type": node.get("node_type", ""),
            "label": node.get("label") or key,
            **row,
            "avg_time_seconds": (row["time_spent_seconds"] / row["timed"])
            if row["timed"]
            else None,
            "stopped": stops.get(key, 0),
            "dropped": (drops or {}).get(key, 0),
            "transitions": {
                target: n for (source, target), n in sorted(transitions.items()) if source == key
            },
        }
        if entry["node_type"] == "send_email" or key in emails:
            entry["email"] = email_block(
                emails.get(
                    key, {"sent": 0, "opened": 0, "clicked": 0, "unsubscribed": 0, "bounced": 0}
                )
            )
        if key in variants:
            entry["variants"] = variants[key]
        performance[key] = entry
        if entry["visits"] or entry["stopped"]:
            drop_offs.append(drop_off_point(key, entry, total_executions))
    drop_offs.sort(key=lambda point: (-point["stopped"], point["node_id"]))
    return performance, drop_offs


def drop_off_point(key: str, entry: dict, total_executions: int) -> dict[str, Any]:
    """Entered, moved on, stopped here; ``share`` is the part of those who
    entered that stopped here, ``share_of_executions`` the part of all."""
    return {
        "node_id": key,
        "label": entry.get("label") or key,
        "entered": entry["visits"],
        "exited_onward": entry["exited"],
        "stopped": entry["stopped"],
        "dropped": entry.get("dropped", 0),
        "completed": entry["stopped"] - entry.get("dropped", 0),
        "share": percent(entry["stopped"], entry["visits"]),
        "share_of_executions": percent(entry["stopped"], total_executions),
    }


def _store(
    workflow: Workflow, period_start: date, period_end: date, values: dict
) -> WorkflowAnalytics:
    """Insert or update the row for (workflow, period); a concurrent insert
    of the same period loses the race on the unique key and updates. The
    row is looked up on the primary (a replica may lag behind the write)."""
    with analytics_reads(enabled=False):
        return _store_on_primary(workflow, period_start, period_end, values)


def _store_on_primary(
    workflow: Workflow, period_start: date, period_end: date, values: dict
) -> WorkflowAnalytics:
    for attempt in range(2):
        row = db.session.scalars(
            select(WorkflowAnalytics).where(
                WorkflowAnalytics.workflow_id == workflow.id,
                WorkflowAnalytics.period_start == period_start,
                WorkflowAnalytics.period_end == period_end,
            )
        ).first()
        if row is None:
            row = WorkflowAnalytics(
                workflow_id=workflow.id, period_start=period_start, period_end=period_end
            )
            db.session.add(row)
        for name, value in values.items():
            setattr(row, name, value)
        try:
            db.session.commit()
            return row
        except IntegrityError:
            db.session.rollback()
            if attempt:
                raise
    raise AssertionError("unreachable")


def _aggregates(period: q.Period, nodes: list[dict], daily: bool = False) -> dict[str, Any]:
    """The period's independent aggregates, queried together (see
    :mod:`concurrent`). A/B conversions join flow states with executions;
    they run alongside when the graph has a split, and afterwards only if
    an older version's split left variants behind."""
    period.prepare()
    with_split = any(node.get("node_type") == "split" for node in nodes)
    calls = {
        "summary": lambda: q.execution_summary(period),
        "times": lambda: q.completion_times(period),
        "flow": lambda: fq.flow_stats(period, with_conversions=False),
        "emails": lambda: fq.email_counts(period),
    }
    if daily:
        # Here, not at the top: both modules use this one's helpers.
        from app.automation.analytics.cohorts import cohorts
        from app.automation.analytics.paths import path_outcomes

        calls["completion"] = lambda: q.completion_values(period)
        calls["paths"] = lambda: path_outcomes(period)
        calls["cohorts"] = lambda: cohorts(period)
    if with_split:
        calls["conversions"] = lambda: fq.variant_conversions(period)
    found = run_together(calls)
    variants = found["flow"][2]
    if variants:
        conversions = found.get("conversions")
        if conversions is None:
            conversions = fq.variant_conversions(period)
        fq.add_conversions(variants, conversions)
    return found


class AnalyticsCalculator:
    """Entry points named by the seed."""

    @staticmethod
    @reads_analytics
    def compute(workflow: Workflow, period_start: date, period_end: date) -> dict[str, Any]:
        """Every WorkflowAnalytics field for the period, without storing."""
        period = q.Period(workflow.id, period_start, period_end)
        nodes = definition_of(workflow)["nodes"]
        # A single day is what the dashboard stores and merges: its
        # completion times are kept in buckets too (see completion.py).
        daily = period_start == period_end
        found = _aggregates(period, nodes, daily=daily)
        totals, stops, drops = found["summary"]
        average, median = found["times"]
        performance, drop_offs = build_node_performance(
            period, nodes, totals["total"], stops, found["flow"], found["emails"], drops
        )
        values = {
            "total_executions": totals["total"],
            "completed_executions": totals["completed"],
            "failed_executions": totals["failed"],
            "goal_reached_executions": totals["goal_reached"],
            "avg_completion_time_seconds": average,
            "median_completion_time_seconds": median,
            "drop_off_points": drop_offs,
            "node_performance": performance,
            "goal_conversion_rate": percent(totals["goal_reached"], totals["total"]),
            "computed_at": now(),
        }
        if daily:
            values["completion_times"] = completion.rollup(found["completion"], median=median)
            values["breakdowns"] = {
                "paths": [[list(path), outcome, n] for path, outcome, n in found["paths"]],
                "cohorts": [cohort.as_dict() for cohort in found["cohorts"]],
            }
        return values

    @staticmethod
    def calculate_workflow_analytics(
        workflow: Workflow, period_start: date, period_end: date
    ) -> WorkflowAnalytics:
        """Compute the period's analytics and store them in the row unique on
        (workflow, period_start, period_end); commits and returns the row."""
        if period_end < period_start:
            raise ValueError("period_end is before period_start")
        values = AnalyticsCalculator.compute(workflow, period_start, period_end)
        return _store(workflow, period_start, period_end, values)

    @staticmethod
    @reads_analytics
    def get_flow_visualization_data(workflow: Workflow) -> dict[str, list[dict]]:
        """Visits and drop-off per node, transitions per edge, over the
        workflow's whole history, laid on its current graph (nodes and
        moves seen only in older versions are appended)."""
        period = q.Period(workflow.id).prepare()
        found = run_together(
            {
                "flow": lambda: fq.flow_stats(period, detail=False),
                "stops": lambda: q.stop_counts(period),
            }
        )
        stats, transitions, _ = found["flow"]
        stops = found["stops"]
        visits = {key: row["visits"] for key, row in stats.items()}
        return _overlay(definition_of(workflow), visits, stops, transitions)

    @staticmethod
    @reads_analytics
    def get_canvas_overlay(workflow: Workflow) -> dict[str, list[dict]]:
        """The flow visualization, each node also telling apart the
        executions that dropped out there (failed, canceled, stuck) from
        those that ended there having walked their branch to its end."""
        data = AnalyticsCalculator.get_flow_visualization_data(workflow)
        dropped = q.stop_counts(q.Period(workflow.id).prepare(), dropped_only=True)
        for node in data["nodes"]:
            node["dropped"] = min(int(dropped.get(node["id"], 0)), node["drop_off"])
            node["ended"] = node["drop_off"] - node["dropped"]
        return data

    @staticmethod
    @reads_analytics
    def get_execution_flow_visualization(execution: WorkflowExecution) -> dict[str, list[dict]]:
        """The same shape for one execution: the path it took."""
        S = ContactFlowState
        visits = dict(
            db.session.execute(
                select(S.node_id, func.count())
                .where(S.execution_id == execution.id)
                .group_by(S.node_id)
            ).all()
        )
        transitions = {
            (source, target): n
            for source, target, n in db.session.execute(
                select(S.node_id, S.next_node, func.count())
                .where(S.execution_id == execution.id, S.next_node.is_not(None))
                .group_by(S.node_id, S.next_node)
            )
        }
        stops: dict[str, int] = {}
        stopped = db.session.scalar(
            select(func.count()).where(WorkflowExecution.id == execution.id, q.ended_without_goal())
        )
        if stopped:
            last = execution.current_node or db.session.scalar(
                select(S.node_id).where(S.execution_id == execution.id).order_by(S.id.desc())
            )
            if last:
                stops[last] = 1
        definition = workflow_definition(execution.workflow, execution.version)
        return _overlay(definition, visits, stops, transitions)


def _overlay(
    definition: dict,
    visits: dict[str, int],
    stops: dict[str, int],
    transitions: dict[tuple[str, str], int],
) -> dict[str, list[dict]]:
    keys = [node["node_id"] for node in definition.get("nodes", [])]
    keys += sorted((set(visits) | set(stops)) - set(keys))
    nodes = [
        {"id": key, "visits": int(visits.get(key, 0)), "drop_off": int(stops.get(key, 0))}
        for key in keys
    ]
    pairs = list(dict.fromkeys((e["source"], e["target"]) for e in definition.get("edges", [])))
    pairs += sorted(set(transitions) - set(pairs))
    edges = [
        {
            "source": source,
            "target": target,
            "transitions": int(transitions.get((source, target), 0)),
        }
        for source, target in pairs
    ]
    return {"nodes": nodes, "edges": edges}


@reads_analytics
def node_live_counts(workflow: Workflow) -> dict[str, dict[str, int]]:
    """For the builder's canvas: per node, executions waiting there now and
    visits ever (test runs excluded)."""
    waiting = q.waiting_counts(workflow.id)
    visits = fq.visit_counts(workflow.id)
    held = q.held_counts(workflow.id)
    keys = [node.node_id for node in workflow.nodes]
    keys += sorted((set(waiting) | set(visits)) - set(keys))
    return {
        key: {
            "waiting": waiting.get(key, 0),
            "visits": visits.get(key, 0),
            "held": sum(held.get(key, {}).values()),
            "held_text": held_text(held.get(key, {})),
        }
        for key in keys
    }


HELD_BY = {
    "send_window": "held for the send window",
    "frequency_cap": "held by the frequency cap",
    "pause": "held while sending is paused",
    "warmup": "held by the warm-up",
    "rate_limit": "held by the rate limit",
}


def held_text(by_gate: dict[str, int]) -> str:
    """ "12 held for the send window, 3 held by the frequency cap"."""
    return ", ".join(f"{n} {HELD_BY.get(gate, 'held')}" for gate, n in sorted(by_gate.items()) if n)
