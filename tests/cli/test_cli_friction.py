"""The command line's rough edges a newcomer met (issue 13, item 7): help that points to what a pip user has,
the default state file named as it really is, no empty folder left behind, a true final progress line, and
state-file refusals that say how to start over."""

from __future__ import annotations

import contextlib
import io

import pytest

from cdk_replication.cli import main

COMMANDS = ("backfill", "verify", "migrate", "redrive")


def _help(*argv: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main([*argv, "--help"]) == 0
    return out.getvalue()


@pytest.mark.parametrize("argv", [(), *((c,) for c in COMMANDS)])
def test_help_points_to_what_a_pip_install_has(argv) -> None:
    text = " ".join(_help(*argv).split())  # argparse wraps lines; compare words
    # Per-command help is always installed; docs/cli.md only exists in the source repository, and help
    # that names it must say so rather than send a pip user looking for a file they do not have.
    assert "cdk-replication COMMAND --help" in text
    assert text.count("docs/cli.md") == 1
    assert "docs/cli.md in the cdk-replication source repository" in text
