"""What every command prints besides its progress line: JSON documents on stdout, notes on stderr.

Results go to ``out`` (stdout), everything else to ``err`` (stderr), so ``--json`` output stays one
document a script can parse. The live progress line is :mod:`cdk_replication.cli.progress`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, TextIO

from cdk_replication.cli.tables import TableHandle


def print_json(out: TextIO, document: dict[str, Any]) -> None:
    """Write ``document`` as indented JSON (keys sorted) and a newline."""
    out.write(json.dumps(document, indent=2, sort_keys=True) + "\n")


def print_error_json(out: TextIO, command: str | None, message: str, exit_code: int) -> None:
    """The ``--json`` document of a command that was refused or failed: scripts reading stdout get a
    document in every case, not an empty stream."""
    print_json(out, {"command": command, "error": message, "exitCode": exit_code})


def say_unchecked(err: TextIO, *handles: TableHandle) -> list[str]:
    """One line on ``err`` for each table whose ARN's account could not be checked (DynamoDB Local).

    Returns:
        the same lines, for the ``notes`` list of the ``--json`` document.
    """
    notes = [handle.info.account_note for handle in handles if handle.info.account_note]
    for note in notes:
        err.write(note + "\n")
    return notes


def numbered(steps: Sequence[str]) -> str:
    """``steps`` as an indented numbered list, one line each: ``  1. first\\n  2. second\\n``."""
    return "".join(f"  {i}. {step}\n" for i, step in enumerate(steps, 1))
