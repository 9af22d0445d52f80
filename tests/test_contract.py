"""The contract between the construct and the replicator (lambda_src/replicator/contract.py) is its only home.

Read from the sources (``ast``), not imported: every ``REPLICATION_*`` environment variable name and the default
metadata prefix are written as literals in contract.py only, and every other string that mentions a
``REPLICATION_*`` name (messages, docstrings) names one the contract defines. The construct's side of the
agreement (a synthesized environment parsed by the replicator's own ``load_config``) is
tests/constructs/test_construct_contract.py.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from cdk_replication._lambda.replicator import contract

ROOT = Path(__file__).resolve().parent.parent
CONTRACT = ROOT / "lambda_src" / "replicator" / "contract.py"
#: ``REPLICATION_X`` not preceded by a name character (so ``CDK_REPLICATION_DEBUG`` is not one of ours).
_NAME = re.compile(r"(?<![A-Za-z0-9_])REPLICATION_[A-Z0-9_]*[A-Z0-9]")
#: Literals that may appear only in contract.py: the variable names and the default metadata prefix.
_CONTRACT_LITERALS = frozenset(contract.ALL_VARIABLES) | {contract.DEFAULT_METADATA_PREFIX}


def sources(root: Path) -> list[Path]:
    """Every Python file of the construct library, the CLI, the local runtime and the replicator."""
    return sorted(p for folder in ("cdk_replication", "lambda_src") for p in (root / folder).rglob("*.py"))


def strings(tree: ast.AST) -> Iterator[ast.Constant]:
    """Every string constant of ``tree``, the pieces of f-strings and docstrings included."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            yield node


def misplaced_literals(root: Path, contract_file: Path) -> list[str]:
    """``file:line: 'literal'`` for each contract literal written outside ``contract_file``, and for each
    ``REPLICATION_*`` name mentioned anywhere that the contract does not define."""
    found = []
    for path in sources(root):
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        where = path.relative_to(root)
        for node in strings(tree):
            if node.value in _CONTRACT_LITERALS and path != contract_file:
                found.append(f"{where}:{node.lineno}: {node.value!r} (use contract.py's constant)")
            for name in _NAME.findall(node.value):
                if name not in contract.ALL_VARIABLES:
                    found.append(f"{where}:{node.lineno}: {name} is not a variable of contract.py")
    return found


def test_every_replication_literal_comes_from_the_contract() -> None:
    assert misplaced_literals(ROOT, CONTRACT) == []


def test_the_scan_sees_a_literal_in_an_fstring_and_an_unknown_name(tmp_path: Path) -> None:
    """The scan itself: a name used as a key, the default prefix, and misspelt names in an f-string and in a
    docstring are reported; contract.py's own literals, a known name in prose and ``CDK_REPLICATION_*`` are not."""
    package = tmp_path / "cdk_replication"
    package.mkdir()
    (tmp_path / "lambda_src").mkdir()
    (package / "a.py").write_text(
        'env = {"REPLICATION_MODE": "x"}\n'
        'msg = f"{1}REPLICATION_KEYS must be set, REPLICATION_KEY too"\n'
        'prefix = "_rep_"\n'
        'other = "CDK_REPLICATION_DEBUG"\n'
        'def f():\n    """Reads REPLICATION_MODES."""\n'
    )
    contract_file = package / "contract.py"
    contract_file.write_text('MODE = "REPLICATION_MODE"\n')
    assert sorted(line.split(":")[1] for line in misplaced_literals(tmp_path, contract_file)) == ["1", "2", "3", "6"]


def test_every_variable_the_replicator_reads_is_documented() -> None:
    """docs/architecture.md lists each variable of the contract."""
    table = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    assert [name for name in contract.ALL_VARIABLES if f"`{name}`" not in table] == []


@pytest.mark.parametrize(
    ("prefix", "keys", "problem"),
    [
        ("_rep_", ("pk", "sk"), None),
        ("p", ("pk",), "'p' is a prefix of key attribute 'pk'"),
        ("s", ("pk", "sk"), "'s' is a prefix of key attribute 'sk'"),
    ],
)
def test_metadata_prefix_rule(prefix: str, keys: tuple[str, ...], problem: str | None) -> None:
    assert contract.metadata_prefix_problem(prefix, keys) == problem


@pytest.mark.parametrize(
    ("attribute", "problem"),
    [
        ("updatedAt", None),
        ("_rep_ts", "'_rep_ts' starts with the metadata prefix '_rep_'"),
        ("pk", "'pk' is a key attribute"),
    ],
)
def test_conflict_attribute_rule(attribute: str, problem: str | None) -> None:
    assert contract.conflict_attribute_problem(attribute, "_rep_", ("pk",)) == problem


@pytest.mark.parametrize(
    ("attribute", "problem"),
    [
        ("_rep_expiresAt", None),
        ("pk", "'pk' is a key or the conflict attribute"),
        ("updatedAt", "'updatedAt' is a key or the conflict attribute"),
    ],
)
def test_ttl_attribute_rule(attribute: str, problem: str | None) -> None:
    assert contract.ttl_attribute_problem(attribute, ("pk",), "updatedAt") == problem


@pytest.mark.parametrize(
    ("max_record_age", "hours"),
    [(3600, 24 + 1 + 24), (60, None), (6 * 3600, 24 + 6 + 24), (7 * 86400, 24 + 24 + 24), (None, 24 + 24 + 24)],
)
def test_multi_active_tombstone_lifetime(max_record_age: int | None, hours: int | None) -> None:
    """Stream retention + the maximum record age (capped at the retention; unlimited counts as it) + a day."""
    expected = 2 * 86400 + 60 if hours is None else hours * 3600
    assert contract.multi_active_tombstone_ttl_seconds(max_record_age) == expected


def test_kinesis_tombstone_lifetime_and_the_lambda_defaults() -> None:
    assert contract.kinesis_tombstone_ttl_seconds(14 * 86400) == 15 * 86400
    assert contract.DEFAULT_KINESIS_TOMBSTONE_TTL_SECONDS == 8 * 86400
    # What the construct writes always passes the Lambda's lower bounds.
    assert contract.multi_active_tombstone_ttl_seconds(60) >= contract.MIN_TOMBSTONE_TTL_SECONDS
    assert contract.kinesis_tombstone_ttl_seconds(86400) >= contract.MIN_KINESIS_TOMBSTONE_TTL_SECONDS
