"""Is a workflow graph runnable? One list of problems, each tied to a node."""

from __future__ import annotations

from typing import Any

from app.automation.graph.definition import Graph, definition_of
from app.automation.nodes.registry import UnknownNodeType, get_node_type, has_flag, keys_where
from app.automation.triggers.registry import trigger_config_errors

MAX_NODES = 500


class WorkflowInvalid(Exception):
    def __init__(self, problems: list[dict]):
        super().__init__("; ".join(problem["message"] for problem in problems))
        self.problems = problems


def validate_workflow(workflow) -> list[dict]:
    return validate_definition(definition_of(workflow))


def _problem(node: str | None, message: str) -> dict:
    return {"node": node, "message": message}


def validate_definition(definition: dict[str, Any], *, require_trigger: bool = True) -> list[dict]:
    problems: list[dict] = []
    nodes = definition.get("nodes", [])
    graph = Graph(definition)

    if not nodes:
        return [_problem(None, "add at least one step")]
    if len(nodes) > MAX_NODES:
        problems.append(_problem(None, f"a workflow may have at most {MAX_NODES} steps"))

    seen: set[str] = set()
    parsed: dict[str, Any] = {}
    for node in nodes:
        key = node["node_id"]
        if key in seen:
            problems.append(_problem(key, f"node id {key!r} is used twice"))
        seen.add(key)
        try:
            kind = get_node_type(node["node_type"])
        except UnknownNodeType:
            problems.append(_problem(key, f"unknown node type {node['node_type']!r}"))
            continue
        try:
            parsed[key] = (kind, kind.parse_config(node.get("configuration")))
        except Exception as exc:  # pydantic.ValidationError
            from app.automation.nodes.registry import validation_error_fields

            for field, messages in validation_error_fields(exc).items():
                where = "" if field == "__root__" else f"{field}: "
                problems.append(_problem(key, f"{where}{'; '.join(messages)}"))

    steps = {node["node_id"]: node["node_type"] for node in nodes}
    for key, (kind, config) in parsed.items():
        problems.extend(_problem(key, message) for message in kind.graph_problems(config, steps))
    problems.extend(_edge_problems(graph, parsed))

    candidates = graph.entry_candidates()
    if not candidates:
        problems.append(_problem(None, "no entry step: every step has an incoming connection"))
    elif len(candidates) > 1:
        for key in candidates:
            problems.append(
                _problem(key, "not connected: only the first step may have no incoming connection")
            )
    else:
        problems.extend(_reachability_problems(graph, candidates[0]))

    if require_trigger:
        triggers = definition.get("triggers", [])
        if not any(trigger.get("is_active", True) for trigger in triggers):
            problems.append(_problem(None, "add an active trigger so contacts can enter"))
        for trigger in triggers:
            for field, messages in trigger_config_errors(
                trigger["trigger_type"], trigger.get("configuration")
            ).items():
                problems.append(
                    _problem(
                        None, f"trigger {trigger['trigger_type']}: {field}: {'; '.join(messages)}"
                    )
                )
    return problems


def _edge_problems(graph: Graph, parsed: dict[str, Any]) -> list[dict]:
    problems = []
    used_ports: set[tuple[str, str]] = set()
    for edge in graph.edges:
        source, target = edge["source"], edge["target"]
        if source not in graph.nodes or target not in graph.nodes:
            problems.append(_problem(source, "a connection points to a step that does not exist"))
            continue
        if source == target:
            problems.append(_problem(source, "a step cannot connect to itself"))
        if source not in parsed:
            continue
        kind, config = parsed[source]
        ports = {port.key: port for port in kind.ports(config)}
        condition_type = edge.get("condition_type")
        variant = (edge.get("condition_config") or {}).get("variant")
        port_key = (
            f"variant:{variant}" if condition_type == "variant" else (condition_type or "next")
        )
        if port_key not in ports:
            expected = ", ".join(sorted(ports)) or "none"
            problems.append(
                _problem(
                    source,
                    f"connection of type {port_key!r} is not an output of this step (outputs: {expected})",
                )
            )
            continue
        if (source, port_key) in used_ports:
            problems.append(_problem(source, f"output {port_key!r} is connected twice"))
        used_ports.add((source, port_key))
    problems.extend(_unconnected_branches(parsed, used_ports))
    return problems


def _unconnected_branches(parsed: dict[str, Any], used_ports: set[tuple[str, str]]) -> list[dict]:
    """A step that branches (a condition, a split, a wait for a condition)
    needs an edge from at least one of its outputs: with none, it is a dead
    end that only looks like a decision. An output left unconnected ends
    the execution there, as a plain step with no edge does (the API's
    activate route documents it); the builder marks such an output "ends
    here"."""
    problems = []
    for key, (kind, config) in parsed.items():
        ports = kind.ports(config)
        if len(ports) < 2 or any((key, port.key) in used_ports for port in ports):
            continue
        names = ", ".join(f"{port.key!r} ({port.label or port.key})" for port in ports)
        problem = _problem(key, f"this step has no way out: connect its outputs {names}")
        problem["ports"] = [port.key for port in ports]
        problems.append(problem)
    return problems


def _reachability_problems(graph: Graph, entry: str) -> list[dict]:
    problems = []
    reachable = {entry}
    stack = [entry]
    while stack:
        for edge in graph.outgoing(stack.pop()):
            if edge["target"] in graph.nodes and edge["target"] not in reachable:
                reachable.add(edge["target"])
                stack.append(edge["target"])
    standalone_goals = {node["node_id"] for node in graph.goals_with_rules()}
    for key, node in graph.nodes.items():
        if key in reachable or key in standalone_goals:
            continue
        if has_flag(node["node_type"], "jump_target"):
            problems.append(
                _problem(key, "this goal is never reached: connect it or give it rules")
            )
        else:
            problems.append(_problem(key, "this step can never be reached from the first step"))
    problems.extend(_loops_without_wait(graph, reachable))
    return problems


def _loops_without_wait(graph: Graph, reachable: set[str]) -> list[dict]:
    """A cycle must pass through a wait, or a contact would spin forever."""
    # Depth-first search over the sub-graph of non-wait steps.
    colour: dict[str, int] = {}
    problems = []
    waits = keys_where("waits")

    def visit(key: str) -> None:
        colour[key] = 1
        for edge in graph.outgoing(key):
            target = edge["target"]
            if target not in graph.nodes or graph.nodes[target]["node_type"] in waits:
                continue
            if colour.get(target) == 1:
                problems.append(
                    _problem(target, "this loop has no wait step: contacts would repeat it forever")
                )
            elif target not in colour:
                visit(target)
        colour[key] = 2

    for key in reachable:
        if key not in colour and graph.nodes[key]["node_type"] not in waits:
            visit(key)
    return problems
