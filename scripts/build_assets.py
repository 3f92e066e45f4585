"""Copy front-end vendor files from their packages into static/vendor/.

htmx comes from the npm package htmx.org (node_modules, installed by
``npm ci``); plotly.js from the installed Python ``plotly`` package. No CDN.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENDOR = ROOT / "static" / "vendor"


def main() -> int:
    import plotly

    VENDOR.mkdir(parents=True, exist_ok=True)
    htmx = ROOT / "node_modules" / "htmx.org" / "dist" / "htmx.min.js"
    if not htmx.exists():
        print("node_modules/htmx.org missing: run `npm ci` first", file=sys.stderr)
        return 1
    shutil.copyfile(htmx, VENDOR / "htmx.min.js")
    plotly_js = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    shutil.copyfile(plotly_js, VENDOR / "plotly.min.js")
    print(f"assets: {', '.join(sorted(p.name for p in VENDOR.iterdir()))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
