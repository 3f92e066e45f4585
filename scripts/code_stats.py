"""Figures about the shape of the code (docs/ARCHITECTURE.md, issue 15).

    python scripts/code_stats.py [root]

Prints: the modules at the top of ``app/automation/`` (files and packages),
the import cycles among ``app`` modules (strongly connected groups of the
import graph, once with module-level imports only and once counting
imports inside functions too), and how many imports sit inside functions.
Imports under ``if TYPE_CHECKING:`` are not counted (they never run).
Only the standard library is used, so it runs on any checkout.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports_of(tree: ast.Module, name: str, is_package: bool):
    """Yield ``(target, in_function)`` for each import statement's target."""

    def targets(node):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, [alias.name]
            return
        base = node.module or ""
        if node.level:
            package = name.split(".") if is_package else name.split(".")[:-1]
            package = package[: len(package) - (node.level - 1)]
            base = ".".join(package + ([node.module] if node.module else []))
        yield base, [f"{base}.{alias.name}" for alias in node.names] + [base]

    def walk(node, in_function):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for sub in child.orelse:
                    yield from walk_one(sub, in_function)
                continue
            yield from walk_one(child, in_function)

    def walk_one(child, in_function):
        if isinstance(child, ast.Import | ast.ImportFrom):
            for stmt_target, candidates in targets(child):
                yield stmt_target, candidates, in_function
            return
        inner = in_function or isinstance(
            child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda
        )
        yield from walk(child, inner)

    yield from walk(tree, False)


def tarjan(graph: dict[str, set[str]]) -> list[list[str]]:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []
    counter = [0]

    def visit(start):
        work = [(start, iter(sorted(graph.get(start, ()))))]
        index[start] = low[start] = counter[0]
        counter[0] += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter[0]
                    counter[0] += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return groups


def collect(root: Path, package: str = "app"):
    """The app's modules and their import edges: ``{module: [(target, in_function)]}``."""
    modules: dict[str, list[tuple[str, bool]]] = {}
    files = sorted((root / package).rglob("*.py"))
    names = {module_name(path, root) for path in files}
    for path in files:
        name = module_name(path, root)
        tree = ast.parse(path.read_text(), str(path))
        edges = []
        for _stmt, candidates, in_function in imports_of(tree, name, path.name == "__init__.py"):
            # ``from pkg import sub, other`` imports the modules pkg.sub and
            # pkg.other (each an edge); ``from mod import func`` imports mod.
            # Importing a.b.c runs a and a.b first, which is left out: a
            # package's __init__ importing its own submodules would
            # otherwise count as a cycle.
            submodules = [c for c in candidates[:-1] if c in names]
            if submodules:
                edges.extend((target, in_function) for target in submodules)
            else:
                target = next((c for c in candidates if c in names), None)
                edges.append((target, in_function))
        modules[name] = edges
    return modules


def import_graph(modules, with_functions: bool) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, edges in modules.items():
        for target, in_function in edges:
            if target and target != name and (with_functions or not in_function):
                graph[name].add(target)
    return graph


def stats(root: Path) -> dict:
    modules = collect(root)
    automation = root / "app" / "automation"
    top_files = sorted(p.name for p in automation.glob("*.py") if p.name != "__init__.py")
    top_packages = sorted(p.name for p in automation.iterdir() if (p / "__init__.py").exists())
    total = sum(len(edges) for edges in modules.values())
    inside = sum(1 for edges in modules.values() for _t, in_f in edges if in_f)
    return {
        "top_files": top_files,
        "top_packages": top_packages,
        "cycles_module_level": tarjan(import_graph(modules, with_functions=False)),
        "cycles_with_functions": tarjan(import_graph(modules, with_functions=True)),
        "imports_total": total,
        "imports_in_functions": inside,
        "own_imports_total": sum(1 for edges in modules.values() for t, _f in edges if t),
        "own_imports_in_functions": sum(
            1 for edges in modules.values() for t, in_f in edges if t and in_f
        ),
    }


def main(argv: list[str]) -> int:
    root = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parent.parent
    figures = stats(root)
    files, packages = figures["top_files"], figures["top_packages"]
    print(f"app/automation/ top level: {len(files)} modules, {len(packages)} packages")
    if files:
        print("  modules: " + ", ".join(files))
    for key, label in (
        ("cycles_module_level", "module-level imports"),
        ("cycles_with_functions", "incl. function-level imports"),
    ):
        groups = figures[key]
        members = sum(len(g) for g in groups)
        print(f"import cycles ({label}): {len(groups)} groups, {members} modules")
        for group in groups:
            shown = ", ".join(group[:8]) + (f", ... (+{len(group) - 8})" if len(group) > 8 else "")
            print(f"  {shown}")
    total, inside = figures["imports_total"], figures["imports_in_functions"]
    share = 100.0 * inside / total if total else 0.0
    print(f"imports in app/: {total}, inside functions: {inside} ({share:.1f}%)")
    own, own_inside = figures["own_imports_total"], figures["own_imports_in_functions"]
    own_share = 100.0 * own_inside / own if own else 0.0
    print(f"  of app modules: {own}, inside functions: {own_inside} ({own_share:.1f}%)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
