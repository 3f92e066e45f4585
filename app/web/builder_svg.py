"""The builder canvas's SVG (edges under nodes), written in Python.

The canvas of a 200-step workflow is ~400 elements with ~40 values each;
as a Jinja loop over ORM rows it cost ~30 ms per page (an attribute lookup
and an escape call per value), more than everything else on the page. The
same markup written here with f-strings costs a few ms. Every text that
comes from the database goes through :func:`markupsafe.escape`, once (the
pure-Python escape costs microseconds a call); numbers are written as they
are. Coordinates come from :func:`app.web.builder_geometry.drawing`.

A card's text sits in a ``<foreignObject>`` so CSS can cut it with an
ellipsis at the card's edge (SVG text cannot); the full text is in the
card's ``<title>`` tooltip.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from markupsafe import Markup, escape

from app.web.builder_geometry import TRIGGER_HEIGHT, TRIGGER_WIDTH
from app.web.icons import icon_use, sprite_url, trigger_icon

_UNKNOWN_COLOR = "#94a3b8"
_XHTML = "http://www.w3.org/1999/xhtml"


def _name(node) -> str:
    return node.label or node.node_id


@lru_cache(maxsize=256)
def _use(name: str, sprite: str) -> str:
    return icon_use(name, sprite)


def _glyph(name: str, sprite: str, x: float, y: float, size: int, cls: str) -> str:
    return (
        f'<svg class="{cls}" x="{x}" y="{y}" width="{size}" height="{size}" viewBox="0 0 24 24" '
        f'aria-hidden="true">{_use(name, sprite)}</svg>'
    )


def _edge(edge: dict[str, Any]) -> str:
    row, src, dst = edge["row"], edge["source"], edge["target"]
    path = edge["path"]  # numbers only (builder_geometry.edge_path)
    aria = f"Connection from {_name(src)}"
    if row.label:
        aria += f" ({row.label})"
    aria += f" to {_name(dst)}"
    mid_x = round(edge["mid_x"], 1)
    return (
        f'<g class="edge" id="edge-{row.id}" data-edge-id="{row.id}" '
        f'data-source="{escape(src.node_id)}" data-target="{escape(dst.node_id)}" '
        f'data-port="{escape(edge["port"])}" tabindex="0" role="button" '
        f'aria-label="{escape(aria)}">'
        f'<path class="edge-hit" d="{path}"></path>'
        f'<path class="edge-line" d="{path}" marker-end="url(#arrow)"></path>'
        f'<text class="edge-count" x="{mid_x}" y="{round(edge["mid_y"] - 16, 1)}" '
        f'text-anchor="middle" aria-hidden="true"></text></g>\n'
    )


def _edge_tool(edge: dict[str, Any], sprite: str) -> str:
    row, src, dst = edge["row"], edge["source"], edge["target"]
    mid_x, mid_y = round(edge["mid_x"], 1), round(edge["mid_y"], 1)
    aria = escape(f"Insert a step between {_name(src)} and {_name(dst)}")
    return (
        f'<g class="edge-add" data-edge-id="{row.id}" transform="translate({mid_x},{mid_y})" '
        f'tabindex="0" role="button" aria-label="{aria}"><title>{aria}</title>'
        f'<circle r="11"></circle>{_glyph("plus", sprite, -8, -8, 16, "edge-add-icon")}</g>\n'
    )


def _port(port) -> str:
    label = escape(port.label) if port.label else ""
    text = f'<text class="port-label" y="21" text-anchor="middle">{label}</text>' if label else ""
    title = f"Drag to connect “{label}”" if label else "Drag to connect"
    ends = ""
    if port.ends:
        # Unconnected: the contacts who take this output end here.
        ends = ' port-ends" data-ends="true'
        # The space keeps "B" and "ends here" two words for tools that read
        # the card's text in order (axe's label-content-name-mismatch).
        text += ' <text class="port-ends-label" y="33" text-anchor="middle">ends here</text>'
        title = f"“{label}” is not connected: contacts who take it end here. {title}"
    x, y = port.x, port.y
    return (
        f'<g class="port-out{ends}" data-port="{escape(port.key)}" data-px="{x}" data-py="{y}" '
        f'data-label="{label}" transform="translate({x},{y})" aria-hidden="true">'
        f'<circle class="port port-dot" r="7"></circle>{text}<title>{title}</title></g>'
    )


def _node(item: dict[str, Any], width: float, height: float, sprite: str, entry: str) -> str:
    node, kind, problems = item["row"], item["kind"], item["problems"]
    color = escape(kind.color) if kind else _UNKNOWN_COLOR
    name = _name(node)
    kind_label = kind.label if kind else node.node_type
    summary = item["summary"] or kind_label
    node_id = escape(node.node_id)
    x, y = node.position_x, node.position_y
    # The name holds the card's visible text in order (label, summary,
    # output names), as assistive tools that match speech to labels expect
    # (no parentheses: axe's label-content-name-mismatch drops their words).
    aria = f"{kind_label}: {name}, {summary}"
    outputs = [
        f"{port.label} ends here" if port.label and port.ends else port.label or "ends here"
        for port in item["ports"]
        if port.label or port.ends
    ]
    if outputs:
        aria += f", {', '.join(outputs)}"
    if problems:
        aria += f" — {len(problems)} problem{'s' if len(problems) > 1 else ''}"
    name, summary = escape(name), escape(summary)
    title = f"{name}\n{summary}\n({escape(kind_label)}, {node_id})" + "".join(
        f"\nProblem: {escape(p)}" for p in problems
    )
    badge = (
        f'<g class="node-badge" transform="translate({width - 4},4)" aria-hidden="true">'
        f'<circle r="10"></circle><text y="4" text-anchor="middle">{len(problems)}</text></g>'
        if problems
        else ""
    )
    text_w, text_h = width - 68, height - 12
    entry_attr = ' data-entry="true"' if node.node_id == entry else ""
    return (
        f'<g class="node{" has-problems" if problems else ""}" id="node-{node_id}" '
        f'data-node-id="{node_id}" data-node-type="{escape(node.node_type)}"{entry_attr} '
        f'data-x="{x}" data-y="{y}" transform="translate({x},{y})" tabindex="0" role="button" '
        # The tooltip hangs on the box, out of the accessible name.
        f'aria-label="{escape(aria)}">'
        f'<rect class="node-box" width="{width}" height="{height}" rx="12" aria-hidden="true">'
        f"<title>{title}</title></rect>"
        f'<circle class="node-icon-bg" cx="32" cy="{height / 2}" r="18" fill="{color}"></circle>'
        f"{_glyph(kind.icon if kind else 'circle-help', sprite, 22, height / 2 - 10, 20, 'node-icon')}"
        f'<foreignObject x="60" y="6" width="{text_w}" height="{text_h}">'
        f'<div xmlns="{_XHTML}" class="node-text">'
        f'<div class="node-label">{name}</div> '
        f'<div class="node-summary">{summary}</div> '
        # Screen readers hear the counts from the hidden #live-counts list.
        f'<div class="node-stats" aria-hidden="true">'
        f'<span class="stat stat-live" data-live-for="{node_id}"></span> '
        f'<span class="stat stat-overlay" data-overlay-for="{node_id}"></span> '
        f'<span class="stat stat-forecast" data-forecast-for="{node_id}"></span></div>'
        f"</div></foreignObject>"
        f'<circle class="port port-in" cx="{width / 2}" cy="0" r="6"></circle>'
        f" {' '.join(_port(port) for port in item['ports'])}{badge}</g>\n"
    )


def _trigger(item: dict[str, Any], sprite: str) -> str:
    trigger, kind = item["row"], item["kind"]
    x, y = round(item["x"], 1), round(item["y"], 1)
    if trigger is None:
        label, summary, glyph = "Add a trigger", "How contacts enter", "plus"
        attrs = 'class="trigger trigger-add" data-trigger-id=""'
        # Holds the card's visible words in order (label, then summary).
        aria = "Add a trigger: how contacts enter this workflow"
    else:
        label = kind.label if kind else trigger.trigger_type
        summary = item["summary"] or ("Any contact" if trigger.is_active else "")
        if not trigger.is_active:
            summary = "Disabled" + (f" · {item['summary']}" if item["summary"] else "")
        glyph = trigger_icon(kind.family if kind else "")
        state = "" if trigger.is_active else " trigger-off"
        attrs = (
            f'class="trigger{state}" id="trigger-node-{trigger.id}" data-trigger-id="{trigger.id}"'
        )
        aria = f"Trigger: {label}" + (f", {summary}" if summary else "") + ". Open to edit"
    return (
        f'<g {attrs} transform="translate({x},{y})" tabindex="0" role="button" '
        f'aria-label="{escape(aria)}"><rect class="trigger-box" width="{TRIGGER_WIDTH}" '
        f'height="{TRIGGER_HEIGHT}" rx="24" aria-hidden="true">'
        f"<title>{escape(label)}\n{escape(summary)}</title></rect>"
        f'<circle class="trigger-icon-bg" cx="24" cy="{TRIGGER_HEIGHT / 2}" r="15"></circle>'
        f"{_glyph(glyph, sprite, 15, TRIGGER_HEIGHT / 2 - 9, 18, 'trigger-icon')}"
        f'<foreignObject x="46" y="5" width="{TRIGGER_WIDTH - 58}" height="{TRIGGER_HEIGHT - 10}">'
        f'<div xmlns="{_XHTML}" class="trigger-text"><div class="trigger-label">{escape(label)}</div> '
        f'<div class="trigger-summary">{escape(summary)}</div></div></foreignObject></g>\n'
    )


def _trigger_edge(item: dict[str, Any]) -> str:
    if not item["path"]:
        return ""
    return f'<path class="trigger-edge" d="{item["path"]}" marker-end="url(#arrow)"></path>\n'


def graph_svg(drawing: dict[str, Any]) -> Markup:
    """Edges, steps, triggers, then the "+" on each connection (on top)."""
    width, height = drawing["width"], drawing["height"]
    sprite = sprite_url()
    triggers = drawing["triggers"]
    edges = "".join(_edge(edge) for edge in drawing["edges"])
    trigger_edges = "".join(_trigger_edge(item) for item in triggers)
    nodes = "".join(
        _node(item, width, height, sprite, drawing["entry"]) for item in drawing["nodes"]
    )
    trigger_cards = "".join(_trigger(item, sprite) for item in triggers)
    tools = "".join(_edge_tool(edge, sprite) for edge in drawing["edges"])
    return Markup(
        f'<g id="edges">\n{trigger_edges}{edges}</g>\n<g id="nodes">\n{nodes}</g>\n'
        f'<g id="triggers" data-entry="{escape(drawing["entry"])}">\n{trigger_cards}</g>\n'
        f'<g id="edge-tools">\n{tools}</g>\n'
    )
