"""The tour of every page: URLs from ``app.url_map`` (as the security sweeps
walk it), filled with the ids of seeded objects, and the checks each page
must pass in Chromium: axe-core (from npm, node_modules/axe-core) finds no
serious or critical violation, nothing logs a console error, and below the
builder nothing scrolls sideways at 390 px.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.security.routes import Route, routes

ROOT = Path(__file__).resolve().parent.parent.parent
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"

# Not pages: redirects, files, JSON, the e-mail body a page frames, the
# tracking endpoints, and fragments that only answer HTMX.
NOT_PAGES = frozenset(
    {
        "index",
        "static",
        "healthz",
        "operations.metrics",
        "lifecycle.export",
        "contact_import.errors_csv",
        "contact_import.progress",
        "suppressions.import_progress",
        "outbox.rendered",
        "public_tracking.click",
        "public_tracking.decoy",
        "public_tracking.open_pixel",
        "public_site.track_js",
        "workflows.row",
        # Builder fragments answer a full page of the builder as it is.
        "builder.live_counts",
        "builder.graph_fragment",
        "builder.lifecycle_fragment",
        "builder.overlay",
        "builder.problems_fragment",
        "builder.unpublished_fragment",
    }
)
# Files to download, not pages to look at.
DOWNLOADS = (".csv", ".json")
# The canvas is its own world on a phone (it opens read-only there).
WIDE_OK = ("/automation/builder/",)


def page_urls(app, ids: dict) -> list[str]:
    """Every GET page of the app (the API aside), each once."""
    urls = []
    for route in routes(app):
        if route.method != "GET" or route.is_api or route.endpoint in NOT_PAGES:
            continue
        if route.rule.startswith("/api/") or route.rule.endswith(DOWNLOADS):
            continue
        urls.append(Route.url(route, ids))
    return list(dict.fromkeys(urls))


def axe_source() -> str:
    return AXE.read_text(encoding="utf-8")


def axe_violations(page, source: str) -> list[dict]:
    """Serious and critical axe violations of the page as it is now."""
    if not page.evaluate("() => !!window.axe"):
        page.evaluate(source)
    result = page.evaluate(
        """async () => {
            const r = await window.axe.run(document, {resultTypes: ["violations"]});
            return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                nodes: v.nodes.slice(0, 3).map(n => n.target.join(" "))}));
        }"""
    )
    return [v for v in result if v["impact"] in ("serious", "critical")]


def sideways_scroll(page) -> int:
    """How many pixels the document is wider than the viewport."""
    return page.evaluate(
        "() => Math.max(document.documentElement.scrollWidth, document.body.scrollWidth)"
        " - window.innerWidth"
    )


def describe(violations: list[dict]) -> str:
    return json.dumps(violations, indent=1)[:3000]
