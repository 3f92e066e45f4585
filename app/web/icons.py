"""SVG icons: Lucide (the npm package ``lucide-static``), as one sprite.

``scripts/build_assets.py`` copies the icons named here into
``static/vendor/icons.svg`` (one ``<symbol>`` each, no CDN); pages draw
them with ``icon("mail")``, an ``<svg><use href=...#mail>`` the browser
fetches once. Emoji are not used anywhere: servers and many desktops have
no emoji font and show empty boxes.
"""

from __future__ import annotations

from flask import Flask, url_for
from markupsafe import Markup, escape

from app.automation.nodes.registry import all_node_types

# Icons the pages and the canvas use besides the node types' own.
UI_ICONS = frozenset(
    {
        "arrow-left",
        "badge-check",
        "chevron-down",
        "circle-alert",
        "circle-check",
        "clipboard-paste",
        "copy",
        "hourglass",
        "link-2",
        "list-tree",
        "maximize",
        "message-square-text",
        "minus",
        "play",
        "plus",
        "redo-2",
        "search",
        "settings",
        "trash-2",
        "triangle-alert",
        "undo-2",
        "users",
        "workflow",
        "x",
        "zap",
        "zoom-in",
        "zoom-out",
    }
)

# Trigger types carry no icon of their own: one per family.
TRIGGER_FAMILY_ICONS = {
    "Forms": "clipboard-list",
    "Email": "mail-open",
    "Site": "globe",
    "CRM": "user-round",
    "Deals": "handshake",
    "Score": "gauge",
    "Date": "calendar-days",
    "Manual": "hand",
}
FALLBACK = "circle-help"


def trigger_icon(family: str) -> str:
    return TRIGGER_FAMILY_ICONS.get(family, "zap")


def icon_names() -> set[str]:
    """Every icon the app can draw: what the sprite must hold."""
    names = set(UI_ICONS) | set(TRIGGER_FAMILY_ICONS.values()) | {FALLBACK}
    names.update(kind.icon for kind in all_node_types())
    return names


def sprite_url() -> str:
    return url_for("static", filename="vendor/icons.svg")


def icon_use(name: str, href: str) -> str:
    """The ``<use>`` element alone, for SVG written by hand (the canvas)."""
    return f'<use href="{escape(href)}#{escape(name or FALLBACK)}"></use>'


def icon(name: str, label: str | None = None, cls: str = "") -> Markup:
    """An inline ``<svg>`` drawing sprite symbol ``name``; decorative unless
    ``label`` names it for screen readers."""
    a11y = f'role="img" aria-label="{escape(label)}"' if label else 'aria-hidden="true"'
    classes = f"icon {cls}".strip()
    return Markup(
        f'<svg class="{escape(classes)}" {a11y} focusable="false">'
        f"{icon_use(name, sprite_url())}</svg>"
    )


def register_icons(app: Flask) -> None:
    app.jinja_env.globals["icon"] = icon
    app.jinja_env.globals["trigger_icon"] = trigger_icon
