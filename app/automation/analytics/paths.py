"""The funnel per path: contacts followed along each branch of the graph.

A single funnel in graph order treats parallel branches as stages in a
row (the two arms of an A/B split would read 8 -> 4 -> 4, as if the second
arm came after the first). Here every way through the graph, from the
entry to an end, is a funnel of its own, and a stage counts the
executions whose recorded path (``execution_path``) starts with the steps
up to it. One GROUP BY over the period's executions (by path and outcome)
gives the few distinct paths taken; Python folds them into stages.

Each stage also says how the executions that ended there ended: finished
(walked to the end of the branch, no goal), at a goal, dropped out
(failed, canceled, stuck) or still in progress there.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import case, func, select

from app.automation.analytics.queries import E, Period, _int, dropped_out, goal_hit
from app.automation.graph.definition import Graph
from app.extensions import db

# Ways through the graph considered, and funnels shown (the most travelled).
MAX_GRAPH_PATHS = 64
MAX_SHOWN = 8
OUTCOMES = ("goal", "finished", "dropped", "active")


@dataclass
class Stage:
    node_id: str
    label: str
    entered: int = 0
    goal: int = 0
    finished: int = 0
    dropped: int = 0
    active: int = 0

    @property
    def ended_here(self) -> int:
        return self.goal + self.finished + self.dropped + self.active


@dataclass
class PathFunnel:
    """One way through the graph: its steps, and the branches it takes."""

    steps: list[str]
    branches: list[str]
    stages: list[Stage] = field(default_factory=list)

    @property
    def label(self) -> str:
        return " · ".join(self.branches) if self.branches else "Main path"

    @property
    def entered(self) -> int:
        return self.stages[0].entered if self.stages else 0

    @property
    def reached_end(self) -> int:
        return self.stages[-1].entered if self.stages else 0


def branch_label(graph: Graph, edge: dict) -> str | None:
    """How a marketer names the exit ("Split: variant A", "VIP?: yes");
    None for a plain edge out of a node with one exit."""
    kind = edge.get("condition_type")
    if not kind and len(graph.outgoing(edge["source"])) < 2:
        return None
    node = graph.nodes.get(edge["source"], {})
    name = node.get("label") or edge["source"]
    if kind == "variant":
        return f"{name}: variant {(edge.get('condition_config') or {}).get('variant', '?')}"
    return f"{name}: {edge.get('label') or kind or 'next'}"


def graph_paths(definition: dict, limit: int = MAX_GRAPH_PATHS) -> list[PathFunnel]:
    """Every way from the entry node to an end (a node with no exit), in
    edge order; a loop ends its path where it comes back to a step."""
    graph = Graph(definition)
    entry = graph.entry()
    if entry is None:
        return []
    found: list[PathFunnel] = []

    def walk(node_id: str, steps: list[str], branches: list[str]) -> None:
        if len(found) >= limit:
            return
        exits = [edge for edge in graph.outgoing(node_id) if edge["target"] in graph.nodes]
        if not exits:
            found.append(PathFunnel(steps, branches))
            return
        for edge in exits:
            label = branch_label(graph, edge)
            taken = [*branches, label] if label else branches
            if edge["target"] in steps:
                found.append(PathFunnel(steps, taken))
            else:
                walk(edge["target"], [*steps, edge["target"]], taken)

    walk(entry, [entry], [])
    return found


def path_outcomes(period: Period) -> list[tuple[tuple[str, ...], str, int]]:
    """(path taken, outcome, executions) for the period's executions: one
    GROUP BY on (execution_path, outcome)."""
    outcome = case(
        (goal_hit(), "goal"),
        (E.status == "completed", "finished"),
        (dropped_out(), "dropped"),
        else_="active",
    ).label("outcome")
    stmt = (
        select(E.execution_path, outcome, func.count())
        .where(*period.execution_filter())
        .group_by(E.execution_path, outcome)
    )
    return [(tuple(path or ()), kind, _int(n)) for path, kind, n in db.session.execute(stmt)]


def merge_outcomes(stored: list[list]) -> list[tuple[tuple[str, ...], str, int]]:
    """(path, outcome, executions) summed over stored days' lists."""
    totals: dict[tuple[tuple[str, ...], str], int] = {}
    for path, outcome, n in stored:
        key = (tuple(path), outcome)
        totals[key] = totals.get(key, 0) + int(n)
    return [(path, outcome, n) for (path, outcome), n in sorted(totals.items())]


def path_funnels(
    definition: dict, period: Period | None = None, taken: list | None = None
) -> list[PathFunnel]:
    """The funnel of each way through the graph, in graph order: the
    :data:`MAX_SHOWN` most travelled. A way is left out when nobody reached
    its own first step (the first one no other way shares). ``taken``: the
    paths' outcomes when already known (the stored days', summed), else
    the ``period``'s are queried."""
    labels = {node["node_id"]: node.get("label") or node["node_id"] for node in definition["nodes"]}
    if taken is None:
        taken = path_outcomes(period)
    funnels = graph_paths(definition)
    for funnel in funnels:
        funnel.stages = [Stage(key, labels.get(key, key)) for key in funnel.steps]
        for path, outcome, n in taken:
            depth = _common_prefix(path, funnel.steps)
            for stage in funnel.stages[:depth]:
                stage.entered += n
            if depth and depth == len(path):
                stage = funnel.stages[depth - 1]
                setattr(stage, outcome, getattr(stage, outcome) + n)
    shown = [f for f in funnels if f.stages[_own_step(f, funnels)].entered]
    busiest = {id(f) for f in sorted(shown, key=lambda f: -f.reached_end)[:MAX_SHOWN]}
    return [funnel for funnel in shown if id(funnel) in busiest]


def _own_step(funnel: PathFunnel, funnels: list[PathFunnel]) -> int:
    shared = max(
        (
            _common_prefix(tuple(other.steps), funnel.steps)
            for other in funnels
            if other is not funnel
        ),
        default=0,
    )
    return min(shared, len(funnel.steps) - 1)


def _common_prefix(path: tuple[str, ...], steps: list[str]) -> int:
    n = 0
    for taken, step in zip(path, steps, strict=False):
        if taken != step:
            break
        n += 1
    return n
