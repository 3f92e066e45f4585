"""The builder canvas's SVG (edges under nodes), written in Python.

The canvas of a 200-step workflow is ~400 elements with ~40 values each;
as a Jinja loop over ORM rows it cost ~30 ms per page (an attribute lookup
and an escape call per value), more than everything else on the page. The
same markup written here with f-strings costs ~2 ms. Every value that
comes from the database goes through :func:`markupsafe.escape`; numbers
are written with ``str()`` exactly as Jinja wrote them, so ``canvas.js``
reads the same attributes. Coordinates come from
:func:`app.web.builder_graph.drawing`.
"""

from __future__ import annotations

from typing import Any

from markupsafe import Markup, escape

_UNKNOWN_COLOR = "#94a3b8"
_TRUNCATE_AT = 20
_TRUNCATE_LEEWAY = 5  # Jinja's default "truncate.leeway" policy


def _truncate(text: str) -> str:
    """Jinja's ``truncate(20, True, "…")``."""
    if len(text) <= _TRUNCATE_AT + _TRUNCATE_LEEWAY:
        return text
    return text[: _TRUNCATE_AT - 1] + "…"


def _edge(edge: dict[str, Any]) -> str:
    row, src, dst = edge["row"], edge["source"], edge["target"]
    label = row.label
    path = escape(edge["path"])
    aria = f"Connection from {src.label or src.node_id}"
    if label:
        aria += f" ({label})"
    aria += f" to {dst.label or dst.node_id}"
    label_x, label_y = escape(edge["label_x"]), escape(edge["label_y"])
    text = (
        f'<text class="edge-label" x="{label_x}" y="{label_y}" text-anchor="middle">'
        f"{escape(label)}</text>"
        if label
        else ""
    )
    return (
        f'<g class="edge" id="edge-{row.id}" data-edge-id="{row.id}" '
        f'data-source="{escape(src.node_id)}" data-target="{escape(dst.node_id)}" '
        f'data-port="{escape(edge["port"])}" tabindex="0" role="button" '
        f'aria-label="{escape(aria)}">'
        f'<path class="edge-hit" d="{path}"></path>'
        f'<path class="edge-line" d="{path}" marker-end="url(#arrow)"></path>{text}'
        f'<text class="edge-count" x="{label_x}" y="{escape(edge["label_y"] + 14)}" '
        f'text-anchor="middle"></text></g>\n'
    )


def _port(port) -> str:
    label = escape(port.label) if port.label else ""
    text = f'<text class="port-label" y="21" text-anchor="middle">{label}</text>' if label else ""
    title = f"Drag to connect “{label}”" if label else "Drag to connect"
    x, y = escape(port.x), escape(port.y)
    return (
        f'<g class="port-out" data-port="{escape(port.key)}" data-px="{x}" data-py="{y}" '
        f'transform="translate({x},{y})"><circle class="port port-dot" r="7"></circle>'
        f"{text}<title>{title}</title></g>"
    )


def _node(item: dict[str, Any], width: float, height: float) -> str:
    node, kind, problems = item["row"], item["kind"], item["problems"]
    color = escape(kind.color) if kind else _UNKNOWN_COLOR
    name = node.label or node.node_id
    kind_label = kind.label if kind else node.node_type
    node_id = escape(node.node_id)
    x, y = escape(node.position_x), escape(node.position_y)
    aria = f"{kind_label}: {name}"
    if problems:
        aria += f" — {len(problems)} problem{'s' if len(problems) > 1 else ''}"
    title = f"{escape(name)} ({node_id})" + "".join(f"\n⚠ {escape(p)}" for p in problems)
    badge = (
        f'<g class="node-badge" transform="translate({width - 4},4)" aria-hidden="true">'
        f'<circle r="10"></circle><text y="4" text-anchor="middle">{len(problems)}</text></g>'
        if problems
        else ""
    )
    return (
        f'<g class="node{" has-problems" if problems else ""}" id="node-{node_id}" '
        f'data-node-id="{node_id}" data-node-type="{escape(node.node_type)}" '
        f'data-x="{x}" data-y="{y}" transform="translate({x},{y})" tabindex="0" role="button" '
        f'aria-label="{escape(aria)}"><title>{title}</title>'
        f'<rect class="node-box" width="{width}" height="{height}" rx="10"></rect>'
        f'<rect class="node-stripe" width="6" height="{height}" rx="3" fill="{color}"></rect>'
        f'<circle class="node-icon-bg" cx="30" cy="32" r="16" fill="{color}"></circle>'
        f'<text class="node-icon" x="30" y="37" text-anchor="middle">'
        f"{escape(kind.icon) if kind else '?'}</text>"
        f'<text class="node-label" x="54" y="28">{escape(_truncate(name))}</text>'
        f'<text class="node-type" x="54" y="47">{escape(kind_label)}</text>'
        f'<circle class="port port-in" cx="{width / 2}" cy="0" r="6"></circle>'
        f"{''.join(_port(port) for port in item['ports'])}{badge}"
        f'<g class="node-stats" transform="translate({width + 8},18)">'
        f'<text class="stat stat-live" data-live-for="{node_id}"></text>'
        f'<text class="stat stat-overlay" y="16" data-overlay-for="{node_id}"></text>'
        f"</g></g>\n"
    )


def graph_svg(drawing: dict[str, Any]) -> Markup:
    """``<g id="edges">`` then ``<g id="nodes">``, as the canvas expects."""
    width, height = drawing["width"], drawing["height"]
    edges = "".join(_edge(edge) for edge in drawing["edges"])
    nodes = "".join(_node(item, width, height) for item in drawing["nodes"])
    return Markup(f'<g id="edges">\n{edges}</g>\n<g id="nodes">\n{nodes}</g>\n')
