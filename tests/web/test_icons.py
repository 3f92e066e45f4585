"""Icons are Lucide SVG symbols from one sprite; no page shows an emoji
(servers and many desktops have no emoji font and draw empty boxes)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from app.web.icons import icon, icon_names

ROOT = Path(__file__).resolve().parents[2]
# Emoji and pictographs, the symbol blocks icons were once drawn from
# (clocks and hourglasses, geometric shapes, misc symbols, dingbats).
EMOJI = re.compile(
    "[\U0001f000-\U0001faff\u231a\u231b\u23e9-\u23fa\u25a0-\u25ff\u2600-\u27bf\u2b00-\u2bff\ufe0f]"
)
NAMED = re.compile(r"""icon\(\s*["']([a-z0-9-]+)["']""")


def _sources():
    for folder, pattern in (("templates", "*.html"), ("static", "*.js"), ("app", "*.py")):
        for path in (ROOT / folder).rglob(pattern):
            if "vendor" not in path.parts:
                yield path


def test_no_template_script_or_module_holds_an_emoji():
    found = {
        str(path.relative_to(ROOT)): EMOJI.findall(path.read_text(encoding="utf-8"))
        for path in _sources()
    }
    assert {path: chars for path, chars in found.items() if chars} == {}


def test_every_icon_a_template_names_is_in_the_sprite():
    named = {
        name
        for path in (ROOT / "templates").rglob("*.html")
        for name in NAMED.findall(path.read_text(encoding="utf-8"))
    }
    assert named and named <= icon_names(), named - icon_names()


def test_the_built_sprite_holds_every_icon_the_app_names():
    sprite = ROOT / "static" / "vendor" / "icons.svg"
    if not sprite.exists():
        pytest.skip("static/vendor not built (make assets)")
    symbols = set(re.findall(r'<symbol id="([a-z0-9-]+)"', sprite.read_text()))
    assert icon_names() <= symbols, icon_names() - symbols


def test_an_icon_is_decorative_unless_labelled(app):
    with app.test_request_context():
        plain, named = str(icon("mail")), str(icon("mail", label="E-mail"))
    assert 'aria-hidden="true"' in plain and "icons.svg#mail" in plain
    assert 'role="img" aria-label="E-mail"' in named and "aria-hidden" not in named
