"""The ``migrate`` subcommand's arguments (argparse wiring only; combinations are checked in checks.py)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from cdk_replication.cli.arguments import HelpFormatter, positive_float, region
from cdk_replication.cli.state import pair_state_pattern

#: Seconds between status polls of the export, the import and table updates (``--poll-interval``).
DEFAULT_POLL_INTERVAL_S = 15.0
#: ``--change-source`` values: the construct's ``ChangeSource`` names (``kinesis``, ``dynamodb-streams`` work too).
CHANGE_SOURCES = ("DYNAMODB_STREAMS", "KINESIS")


def add_migrate_parser(sub: Any, common: argparse.ArgumentParser, epilog: str) -> None:
    """Add the ``migrate`` subcommand to the subparsers ``sub`` (options in the order ``--help`` lists them)."""
    parser = sub.add_parser(
        "migrate", parents=[common], epilog=epilog, formatter_class=HelpFormatter,
        help="new replica via export to S3 + import, then enable the replicator's mapping",
        description="Turn on the source's stream and PITR, export it to S3, import the export into the new "
        "table TARGET (which must not exist), copy TTL, and optionally enable the replicator's disabled event "
        "source mapping. Re-run the same command to continue after an interruption. With the construct's "
        "MigrationOptions, CloudFormation creates TARGET instead: --export-only, deploy with export_arn, "
        "then --after-import.",
    )
    parser.add_argument("source", metavar="SOURCE")
    parser.add_argument("target", metavar="TARGET", help="the new table: NAME, REGION:NAME or ARN")
    _add_bucket_options(parser)
    _add_mode_options(parser)
    _add_replication_options(parser)
    _add_run_options(parser)


def _add_bucket_options(parser: argparse.ArgumentParser) -> None:
    """Where the export goes: ``--s3-bucket``, ``--s3-prefix``, ``--s3-bucket-owner``."""
    parser.add_argument(
        "--s3-bucket",
        help="bucket for the export (read by the import); default: the construct's migration bucket "
        "<target name>-migration-<target account>-<target region>, owned by the target account",
    )
    parser.add_argument(
        "--s3-prefix", help="key prefix of the export (default cdk-replication/<source name>/<target name>)"
    )
    parser.add_argument(
        "--s3-bucket-owner", metavar="ACCOUNT",
        help="account that owns the bucket, when it is not yours (default with the default bucket: the target account)",
    )


def _add_mode_options(parser: argparse.ArgumentParser) -> None:
    """``--export-only`` and ``--after-import``: the two runs around the construct's import."""
    mode = parser.add_argument_group("with the ReplicatedTable construct's import (two deploys: README's 'Cross-account migration, step by step')")
    mode.add_argument(
        "--export-only", action="store_true",
        help="stop after the export: the replica stack then creates TARGET from it (MigrationOptions(export_arn=...)); "
        "TARGET must not exist",
    )
    mode.add_argument(
        "--after-import", action="store_true",
        help="TARGET was created from the export by the replica stack: check it and enable the mapping "
        "(--event-source-mapping-uuid); copies nothing",
    )


def _add_replication_options(parser: argparse.ArgumentParser) -> None:
    """How replication starts: the replicator's mapping, its change source, the target's own stream."""
    parser.add_argument(
        "--event-source-mapping-uuid", metavar="UUID",
        help="the replicator's (disabled) mapping on the source stream; enabled after the import",
    )
    parser.add_argument(
        "--mapping-region", type=region,
        help="region of that mapping's function (default: the source table's region)",
    )
    parser.add_argument(
        "--change-source", type=_change_source, choices=CHANGE_SOURCES, metavar="{DYNAMODB_STREAMS,KINESIS}",
        help="where the replicator reads the source's changes, as change_source= in the app (default "
        "DYNAMODB_STREAMS, or the state file's); KINESIS: the source must already stream to a Kinesis data "
        "stream, whose retention replaces the 24-hour deadline",
    )
    parser.add_argument(
        "--kinesis-stream-arn", metavar="ARN",
        help="with --change-source KINESIS: the data stream the replicator reads (KinesisOptions(stream_arn=...)); "
        "needed when the source streams to more than one",
    )
    parser.add_argument(
        "--target-stream", action="store_true",
        help="turn on a NEW_AND_OLD_IMAGES stream on the new table (multi-active, or a source of more replicas)",
    )


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    """The run itself: its state file and how often it polls."""
    parser.add_argument(
        "--state-file", type=Path, help=f"resume file (default {pair_state_pattern('migrate')}); kept when done"
    )
    parser.add_argument("--restart", action="store_true", help="ignore an existing state file and start over")
    parser.add_argument(
        "--poll-interval", type=positive_float, default=DEFAULT_POLL_INTERVAL_S, metavar="SECONDS",
        help=f"seconds between status checks (default {DEFAULT_POLL_INTERVAL_S:g})",
    )


def _change_source(text: str) -> str:
    """``--change-source``: any case, ``-`` for ``_`` (``kinesis``, ``dynamodb-streams``)."""
    return text.strip().upper().replace("-", "_")
