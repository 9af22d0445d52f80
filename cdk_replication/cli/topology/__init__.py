"""Growing and shrinking a running topology: ``join``, ``status`` and ``leave`` (docs/cli.md; README, "Adding or
removing a region, step by step")."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from cdk_replication.cli.arguments import HelpFormatter

COMMANDS = ("join", "status", "leave")


def add_topology_parsers(sub: Any, common: argparse.ArgumentParser, epilog: str,
                         scan_options: Callable[[argparse.ArgumentParser], None]) -> None:
    """Add ``join``, ``status`` and ``leave`` to the subparsers ``sub``; ``scan_options`` adds ``--segments``,
    ``--workers`` and ``--rate`` as the other commands have them."""
    join = sub.add_parser(
        "join", parents=[common], epilog=epilog, formatter_class=HelpFormatter,
        help="copy a running topology's data into a JOINING replica or region, then verify",
        description="Check that NEW is deployed with status JOINING and that every writer's deployed replicator "
        "sends to it (the published SSM parameters), then copy: one-way, a backfill from the source; "
        "multi-active, every item and tombstone of EVERY existing region, as its replicator sends it. Then verify "
        "NEW against each writer. Refuses a step whose predecessor is not done. Resumable: re-run to continue.",
    )
    join.add_argument("tables", metavar="TABLE", nargs="+",
                      help="the writers (one-way: the source; multi-active: every existing region), then NEW")
    scan_options(join)
    join.add_argument("--state-file", type=Path,
                      help="resume file (default .cdk-replication/join-<new-region>-<new>.json); kept when done, "
                      "for `status`")
    join.add_argument("--restart", action="store_true", help="copy again from the start")

    status = sub.add_parser(
        "status", parents=[common], epilog=epilog, formatter_class=HelpFormatter,
        help="where each location of a topology stands in a join or removal, and its next step",
        description="For each TABLE: its published status, whether every writer's replicator sends to it, the "
        "join's copy and verification (from the join state file in this folder), and the next step. Reads only.",
    )
    status.add_argument("tables", metavar="TABLE", nargs="+", help="every location of the topology")

    leave = sub.add_parser(
        "leave", parents=[common], epilog=epilog, formatter_class=HelpFormatter,
        help="check that a LEAVING multi-active region has drained and may be removed",
        description="Refuse unless LEAVING's published status is LEAVING; then compare it with every other "
        "region (differences re-read with consistent reads): equal means every write made there has reached the "
        "others, and the location may be removed from the app. Writes nothing.",
    )
    leave.add_argument("tables", metavar="TABLE", nargs="+", help="every other region, then LEAVING")
    scan_options(leave)


def run_topology(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Run ``join``, ``status`` or ``leave``; returns the exit code."""
    from cdk_replication.cli.topology.join import cmd_join
    from cdk_replication.cli.topology.status import cmd_leave, cmd_status

    return {"join": cmd_join, "status": cmd_status, "leave": cmd_leave}[args.command](args, out, err)
