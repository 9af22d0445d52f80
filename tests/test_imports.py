"""Import hygiene (issue 11): every command-line module imports on its own, and no import circle joins modules.

The cycle check is a small static pass over ``ast``: it reads every ``import`` statement of every module of
``cdk_replication`` and of the replicator package (relative imports resolved), builds the graph "module A
imports module B" and reports its strongly connected components. It counts every import statement in a
module, not only those run at import time: an import deferred into a function or hidden under
``if TYPE_CHECKING`` keeps the interpreter from tripping over a circle, but not the reader, who still has to
know both modules to change either. ``from package import submodule`` is an edge to the submodule only;
the parent packages a module implicitly loads are not edges (Python runs them first, so they cannot close a
circle at import time).
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from collections import deque
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: Package name -> (its folder, the folder that must be on ``sys.path`` to import it by that name).
PACKAGES = {
    "cdk_replication": (ROOT / "cdk_replication", ROOT),
    "replicator": (ROOT / "lambda_src" / "replicator", ROOT / "lambda_src"),
}
CLI = "cdk_replication.cli"

#: Module name -> (file, whether it is a package's ``__init__``).
Modules = dict[str, tuple[Path, bool]]
Graph = dict[str, set[str]]


def discover(packages: dict[str, tuple[Path, Path]]) -> Modules:
    """Every module of ``packages`` by its dotted name."""
    found: Modules = {}
    for folder, path_entry in packages.values():
        for file in sorted(folder.rglob("*.py")):
            parts = list(file.relative_to(path_entry).with_suffix("").parts)
            is_package = parts[-1] == "__init__"
            found[".".join(parts[:-1] if is_package else parts)] = (file, is_package)
    return found


def _known(name: str, modules: Modules) -> str | None:
    """``name``, or its closest enclosing module among ``modules`` (``a.b.func`` -> ``a.b``); ``None`` if
    it is outside them (the standard library, boto3, aws_cdk)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(name: str, modules: Modules) -> set[str]:
    """The modules among ``modules`` that module ``name`` imports anywhere in its file."""
    file, is_package = modules[name]
    package = name if is_package else name.rpartition(".")[0]
    targets: set[str] = set()
    for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"), str(file))):
        if isinstance(node, ast.Import):
            targets.update(filter(None, (_known(alias.name, modules) for alias in node.names)))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module or ""
            submodules = [f"{origin}.{alias.name}" for alias in node.names if f"{origin}.{alias.name}" in modules]
            targets.update(submodules)
            if len(submodules) < len(node.names):  # names defined in ``origin`` itself
                known = _known(origin, modules)
                if known:
                    targets.add(known)
    targets.discard(name)
    return targets


def import_graph(modules: Modules) -> Graph:
    return {name: imports_of(name, modules) for name in modules}


def circles(graph: Graph) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, edges = work[-1]
            child = next(edges, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return sorted(found)


def one_circle(component: list[str], graph: Graph) -> str:
    """One concrete circle through the component's first module, e.g. ``a -> b -> a`` (shortest first)."""
    start, members = component[0], set(component)
    came_from: dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for child in sorted(graph[node] & members):
            if child == start:
                path = [node]
                while path[-1] != start:
                    path.append(came_from[path[-1]])
                return " -> ".join([*reversed(path), start])
            if child not in came_from:
                came_from[child] = node
                queue.append(child)
    raise AssertionError(f"{component} is not strongly connected")


def report(components: list[list[str]], graph: Graph) -> str:
    return "\n".join(f"{len(c)} modules {c}: e.g. {one_circle(c, graph)}" for c in components)


GRAPH = import_graph(discover(PACKAGES))
CLI_MODULES = sorted(name for name in GRAPH if name == CLI or name.startswith(CLI + "."))


def _touches_cli(component: list[str]) -> bool:
    return any(name in CLI_MODULES for name in component)


def test_the_cycle_finder_sees_deferred_relative_and_type_checking_imports(tmp_path: Path) -> None:
    """The pass itself: circles closed by a relative import, a deferred import and a ``TYPE_CHECKING``
    import are found; ``from package import submodule`` and a parent package are not circles."""
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    sources = {
        "__init__.py": "from pkg.a import A\n",
        "a.py": "from .b import B\nA = 1\n",
        "b.py": "def f():\n    from pkg import a\nB = 2\n",
        "c.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.sub.d import D\n",
        "sub/__init__.py": "",
        "sub/d.py": "from ..c import C\nfrom . import e\nD = 3\n",
        "sub/e.py": "from pkg import sub\nfrom pkg.sub import d as _d\n",
    }
    for name, text in sources.items():
        (package / name).write_text(text)
    graph = import_graph(discover({"pkg": (package, tmp_path)}))
    assert graph["pkg.sub.d"] == {"pkg.c", "pkg.sub.e"}
    found = circles(graph)
    assert found == [["pkg.a", "pkg.b"], ["pkg.c", "pkg.sub.d", "pkg.sub.e"]]
    assert one_circle(found[0], graph) == "pkg.a -> pkg.b -> pkg.a"


@pytest.mark.parametrize("module", CLI_MODULES)
def test_each_cli_module_imports_alone(module: str) -> None:
    """Imported first, in a fresh interpreter, each module loads (no order-dependent circle) and does not
    load ``aws_cdk`` (the command line needs only boto3, docs/architecture.md). ``__main__`` runs the
    program when imported, so it is run as ``python -m`` instead."""
    probe = f"import sys, {module}; sys.exit('aws_cdk' in sys.modules and 'loaded aws_cdk')"
    command = ["-m", module.removesuffix(".__main__"), "--version"] if module.endswith(".__main__") else ["-c", probe]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    run = subprocess.run([sys.executable, *command], cwd=ROOT, env=env, capture_output=True, text=True)
    assert run.returncode == 0, f"import {module} alone failed:\n{run.stdout}{run.stderr}"


def test_no_import_circles_in_the_cli() -> None:
    found = [c for c in circles(GRAPH) if _touches_cli(c)]
    assert not found, "import circles in the command line:\n" + report(found, GRAPH)


def test_no_import_circles_elsewhere() -> None:
    """``cdk_replication`` outside the command line, and the replicator."""
    found = [c for c in circles(GRAPH) if not _touches_cli(c)]
    assert not found, "import circles:\n" + report(found, GRAPH)
