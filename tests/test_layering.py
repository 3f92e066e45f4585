"""The layers hold (docs/ARCHITECTURE.md): models import no domain code,
the domain (app/automation) imports neither the web pages nor the API,
web and API never import each other, no module-level import cycles, and
no ``except ImportError`` around our own code. Imports inside functions
count too: a function-level import is still a dependency.

The graph comes from scripts/code_stats.py (the figures of issue 15); each
rule is checked on a small made-up tree first, so it is known to fail."""

from __future__ import annotations

import ast
import importlib.util
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("code_stats", ROOT / "scripts" / "code_stats.py")
code_stats = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(code_stats)

FORBIDDEN = [
    ("app.models", ("app.automation", "app.web", "app.api", "app.auth")),
    ("app.automation", ("app.web", "app.api")),
    ("app.web", ("app.api",)),
    ("app.api", ("app.web",)),
]


def _inside(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def layer_violations(modules: dict) -> list[str]:
    found = []
    for name, edges in sorted(modules.items()):
        for layer, banned in FORBIDDEN:
            if not _inside(name, layer):
                continue
            for target, _in_function in edges:
                if target and any(_inside(target, b) for b in banned):
                    found.append(f"{name} imports {target}")
    return found


def module_cycles(modules: dict) -> list[list[str]]:
    return code_stats.tarjan(code_stats.import_graph(modules, with_functions=False))


def import_error_guards(root: Path) -> list[str]:
    found = []
    for path in sorted((root / "app").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ExceptHandler) and node.type is not None:
                types = node.type.elts if isinstance(node.type, ast.Tuple) else [node.type]
                names = {getattr(t, "id", None) or getattr(t, "attr", None) for t in types}
                if names & {"ImportError", "ModuleNotFoundError"}:
                    found.append(f"{path.relative_to(root)}:{node.lineno}")
    return found


@pytest.fixture(scope="module")
def modules():
    return code_stats.collect(ROOT)


def test_models_domain_web_and_api_keep_to_their_layers(modules):
    assert layer_violations(modules) == []


def test_no_module_level_import_cycles(modules):
    assert module_cycles(modules) == []


def test_no_except_import_error_in_app():
    assert import_error_guards(ROOT) == []


# The checks above fail when they should: the same functions on a made-up tree.


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return tmp_path


def test_the_checks_catch_what_they_forbid(tmp_path):
    root = _tree(
        tmp_path,
        {
            "app/__init__.py": "",
            "app/auth.py": "",
            "app/models/__init__.py": "",
            "app/models/workflow.py": """
                def activate(self):
                    from app.automation.lifecycle import publishing
            """,
            "app/models/audit.py": "from app.auth import current_actor\n",
            "app/automation/__init__.py": "",
            "app/automation/lifecycle/__init__.py": "",
            "app/automation/lifecycle/publishing.py": "from app.web import pages\n",
            "app/automation/engine/__init__.py": "",
            "app/automation/engine/a.py": "from app.automation.engine import b\n",
            "app/automation/engine/b.py": """
                from app.automation.engine.a import x
                try:
                    from app.automation.templating import render
                except ImportError:
                    render = None
            """,
            "app/web/__init__.py": "",
            "app/web/pages.py": "from app.api.core import endpoint\n",
            "app/api/__init__.py": "",
            "app/api/core.py": "",
        },
    )
    modules = code_stats.collect(root)
    assert layer_violations(modules) == [
        "app.automation.lifecycle.publishing imports app.web.pages",
        "app.models.audit imports app.auth",
        "app.models.workflow imports app.automation.lifecycle.publishing",
        "app.web.pages imports app.api.core",
    ]
    assert module_cycles(modules) == [["app.automation.engine.a", "app.automation.engine.b"]]
    assert import_error_guards(root) == ["app/automation/engine/b.py:5"]
