"""Function length (issue 11): no function in ``cdk_replication/`` or ``lambda_src/`` is longer than 60 lines.

A function's length is ``end_lineno - lineno + 1`` of its ``ast`` node: signature, docstring, comments and
blank lines inside it all count, decorators do not. Nested functions are measured on their own and also count
toward the function that holds them. The limit holds the rule of issue 11 ("the ten longest functions are
each under ~60 lines") from now on: a function that grows past it is split by concern, not added to the list
below.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: Folders scanned, relative to the repository root.
SCANNED = ("cdk_replication", "lambda_src")
#: Longest allowed function, in lines (signature included).
MAX_LINES = 60

#: (file relative to the root, qualified function name) -> why it may be longer for now. Every entry is a
#: debt with an owner, not an exemption: remove it when the function is split.
ALLOWED: dict[tuple[str, str], str] = {}

FunctionNode = ast.FunctionDef | ast.AsyncFunctionDef


def _functions(tree: ast.AST, prefix: str = "") -> list[tuple[str, FunctionNode]]:
    """Every function under ``tree`` with its qualified name (``Class.method``, ``outer.inner``)."""
    found: list[tuple[str, FunctionNode]] = []
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            name = f"{prefix}{node.name}"
            found.append((name, node))
            found.extend(_functions(node, f"{name}."))
        elif isinstance(node, ast.ClassDef):
            found.extend(_functions(node, f"{prefix}{node.name}."))
        else:
            found.extend(_functions(node, prefix))
    return found


def measure() -> list[tuple[int, str, str]]:
    """(length in lines, file relative to the root, qualified name) of every scanned function, longest first."""
    rows: list[tuple[int, str, str]] = []
    for folder in SCANNED:
        for path in sorted((ROOT / folder).rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=relative)
            for name, node in _functions(tree):
                assert node.end_lineno is not None  # always set by ast.parse on Python 3.8+
                rows.append((node.end_lineno - node.lineno + 1, relative, name))
    return sorted(rows, reverse=True)


def test_no_function_is_longer_than_the_limit() -> None:
    too_long = [
        f"{length:4d} lines  {relative}  {name}"
        for length, relative, name in measure()
        if length > MAX_LINES and (relative, name) not in ALLOWED
    ]
    assert not too_long, (
        f"functions longer than {MAX_LINES} lines (split them by concern):\n" + "\n".join(too_long)
    )


def test_every_allowed_function_still_exists() -> None:
    """An entry outlives its function only by mistake: a stale one would silently exempt a new function."""
    present = {(relative, name) for _, relative, name in measure()}
    stale = sorted(set(ALLOWED) - present)
    assert not stale, f"allow-list entries naming no function (remove them): {stale}"
