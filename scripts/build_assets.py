"""Build front-end vendor files from their packages into static/vendor/.

htmx (npm htmx.org), the graph layout library dagre (npm @dagrejs/dagre)
and the Lucide icons (npm lucide-static) come from node_modules, installed
by ``npm ci``; plotly.js from the installed Python ``plotly`` package. No
CDN. The icons become one sprite, ``icons.svg``, holding the symbols that
``app/web/icons.py`` names.
"""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENDOR = ROOT / "static" / "vendor"
MODULES = ROOT / "node_modules"
COPIES = {
    "htmx.min.js": MODULES / "htmx.org" / "dist" / "htmx.min.js",
    "dagre.min.js": MODULES / "@dagrejs" / "dagre" / "dist" / "dagre.min.js",
}
LUCIDE = MODULES / "lucide-static" / "icons"
_SVG_BODY = re.compile(r"<svg\b[^>]*>(?P<body>.*)</svg>", re.S)


def sprite(names: set[str]) -> str:
    """One ``<symbol id="name">`` per icon, drawn as Lucide draws them
    (stroke in the current text colour)."""
    symbols = []
    for name in sorted(names):
        source = LUCIDE / f"{name}.svg"
        if not source.exists():
            raise SystemExit(f"icon {name!r} is not in lucide-static")
        body = _SVG_BODY.search(source.read_text()).group("body").strip()
        body = re.sub(r"\s*\n\s*", "", body)
        symbols.append(
            f'<symbol id="{name}" viewBox="0 0 24 24"><g fill="none" stroke="currentColor" '
            f'stroke-width="2" stroke-linecap="round" stroke-linejoin="round">{body}</g></symbol>'
        )
    licence = "Lucide icons (lucide-static), ISC licence"
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg"><!-- {licence} -->\n'
        + "\n".join(symbols)
        + "\n</svg>\n"
    )


def main() -> int:
    import plotly

    sys.path.insert(0, str(ROOT))
    from app.web.icons import icon_names

    VENDOR.mkdir(parents=True, exist_ok=True)
    for name, source in COPIES.items():
        if not source.exists():
            print(f"{source.relative_to(ROOT)} missing: run `npm ci` first", file=sys.stderr)
            return 1
        shutil.copyfile(source, VENDOR / name)
    if not LUCIDE.is_dir():
        print("node_modules/lucide-static missing: run `npm ci` first", file=sys.stderr)
        return 1
    (VENDOR / "icons.svg").write_text(sprite(icon_names()))
    plotly_js = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    shutil.copyfile(plotly_js, VENDOR / "plotly.min.js")
    print(f"assets: {', '.join(sorted(p.name for p in VENDOR.iterdir()))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
