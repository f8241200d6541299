"""The import contract: layers run one way (cli -> repro -> kb -> paperkb) and no two modules import
each other, directly or round a loop. Every import statement counts, wherever it stands (module level,
inside a function, inside a try): a lazy import hides a circle from Python, not from this check. Only
imports under `if TYPE_CHECKING:` are left out of the circle check (they never run); they still count
for the layers."""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("cli", "repro", "kb", "paperkb")  # each may import only the ones after it
# Circles tolerated for a while, each with why (none today). An entry that no longer exists fails
# test_known_circles_are_still_there: delete it then.
KNOWN_CIRCLES: list[list[str]] = []


@functools.cache
def _parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST, module: str, is_package: bool) -> list[tuple[tuple[str, str], int, bool]]:
    """((module, module or name in it), line, runs at run time) for every import statement anywhere in `tree`."""
    found: list[tuple[tuple[str, str], int, bool]] = []

    def visit(node: ast.AST, runtime: bool) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.body:
                visit(child, False)
            for child in node.orelse:
                visit(child, runtime)
            return
        if isinstance(node, ast.Import):
            found.extend(((alias.name, alias.name), node.lineno, runtime) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this module's package
                package = module.split(".") if is_package else module.split(".")[:-1]
                package = package[: len(package) - node.level + 1]
                base = ".".join([*package, *([base] if base else [])])
            # `from pkg import name`: an edge to pkg.name where that is a module, else to pkg (as grimp reads it)
            found.extend(((base, f"{base}.{alias.name}"), node.lineno, runtime) for alias in node.names)
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.stmt, ast.excepthandler, ast.match_case)):  # imports are statements
                visit(child, runtime)

    visit(tree, True)
    return found


def import_graph(root: Path, packages: tuple[str, ...] = LAYERS) -> dict[str, dict[str, tuple[int, bool]]]:
    """module -> {imported module of ours: (line, runs at run time)}."""
    files = {_module_name(root, path): path for package in packages for path in sorted((root / package).rglob("*.py"))}
    graph: dict[str, dict[str, tuple[int, bool]]] = {}
    for module, path in files.items():
        tree = _parse(path)
        edges: dict[str, tuple[int, bool]] = {}
        for (base, dotted), line, runtime in _imports(tree, module, path.name == "__init__.py"):
            name = dotted if dotted in files else base
            if name in files and name != module:
                old = edges.get(name)
                if old is None or (runtime and not old[1]):
                    edges[name] = (line, runtime)
        graph[module] = edges
    return graph


def layer_breaches(graph: dict[str, dict[str, tuple[int, bool]]]) -> list[str]:
    rank = {name: i for i, name in enumerate(LAYERS)}
    return [
        f"{module} (line {line}) imports {target}: {target.split('.')[0]} is above {module.split('.')[0]}"
        for module, edges in graph.items()
        for target, (line, _) in edges.items()
        if rank[target.split(".")[0]] < rank[module.split(".")[0]]
    ]


def circles(graph: dict[str, dict[str, tuple[int, bool]]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), over run-time imports."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target, (_, runtime) in graph[node].items():
            if not runtime:
                continue
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return found


@functools.cache
def _project_graph() -> dict[str, dict[str, tuple[int, bool]]]:
    return import_graph(ROOT)


def test_layers_run_one_way() -> None:
    assert layer_breaches(_project_graph()) == []


def test_no_import_circles() -> None:
    assert [c for c in circles(_project_graph()) if c not in KNOWN_CIRCLES] == []


def test_known_circles_are_still_there() -> None:
    found = circles(_project_graph())
    assert [c for c in KNOWN_CIRCLES if c not in found] == [], "a known circle is gone: delete it from KNOWN_CIRCLES"


def _plant(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    for package in LAYERS:
        (root / package).mkdir(exist_ok=True)
        (root / package / "__init__.py").touch()
    return root


def test_a_lazy_circle_is_caught(tmp_path: Path) -> None:
    root = _plant(
        tmp_path,
        {
            "kb/a.py": "from kb.b import g\n",
            "kb/b.py": "def g():\n    from kb.a import f  # lazy: Python never sees this circle\n    return f\n",
            "kb/c.py": "from . import a\n",
        },
    )
    assert circles(import_graph(root)) == [["kb.a", "kb.b"]]


def test_a_three_module_circle_through_a_relative_import_is_caught(tmp_path: Path) -> None:
    root = _plant(
        tmp_path,
        {
            "kb/x/__init__.py": "",
            "kb/x/one.py": "from .two import t\n",
            "kb/x/two.py": "try:\n    from kb.three import z\nexcept ImportError:\n    pass\n",
            "kb/three.py": "def z():\n    import kb.x.one\n",
        },
    )
    assert circles(import_graph(root)) == [["kb.three", "kb.x.one", "kb.x.two"]]


def test_a_type_checking_import_is_no_circle_but_still_a_layer_breach(tmp_path: Path) -> None:
    root = _plant(
        tmp_path,
        {
            "kb/a.py": "from kb.b import g\n",
            "kb/b.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from kb.a import f\n",
            "paperkb/p.py": "def f():\n    from repro.r import x\n",
            "repro/r.py": "x = 1\n",
        },
    )
    graph = import_graph(root)
    assert circles(graph) == []
    assert layer_breaches(graph) == ["paperkb.p (line 2) imports repro.r: repro is above paperkb"]


@pytest.mark.parametrize("layer", LAYERS)
def test_every_layer_is_seen(layer: str) -> None:
    assert any(module.split(".")[0] == layer for module in _project_graph())


def test_nothing_outside_the_vault_reaches_into_it() -> None:
    """Other modules read a vault through its public API (``ensure_index``, ``notes``, ``note`` ...),
    never through its private methods."""
    reaching = []
    for package in LAYERS:
        for path in sorted((ROOT / package).rglob("*.py")):
            if path == ROOT / "kb" / "vault.py":
                continue
            for node in ast.walk(_parse(path)):
                if (
                    isinstance(node, ast.Attribute)
                    and isinstance(node.value, ast.Name)
                    and node.value.id in ("vault", "v")
                    and node.attr.startswith("_")
                    and not node.attr.startswith("__")
                ):
                    reaching.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.value.id}.{node.attr}")
    assert reaching == []
