"""The ``cdk-replication`` command line: argument parsing, output, and exit codes."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from cdk_replication.cli import commands
from cdk_replication.cli.arguments import (
    HelpFormatter,
    OneLineParser,
    UsageError,
    attribute_name,
    endpoint_url,
    positive_float,
    positive_int,
    region,
    thread_count,
)
from cdk_replication.cli.conditions import CONFLICT_STRATEGIES
from cdk_replication.cli.errors import (
    EXIT_BAD_INPUT,
    EXIT_INCOMPLETE,
    EXIT_INTERRUPTED,
    LOCAL_CREDENTIALS_HINT,
    BadInput,
    WorkFailed,
    error_code,
    error_message,
)
from cdk_replication.cli.migrate import add_migrate_parser
from cdk_replication.cli.options import DEFAULT_METADATA_PREFIX, DEFAULT_SEGMENTS, DEFAULT_WORKERS
from cdk_replication.cli.output import print_error_json
from cdk_replication.cli.pacing import DEFAULT_MAX_ATTEMPTS
from cdk_replication.cli.state import pair_state_pattern
from cdk_replication.cli.topology import add_topology_parsers
from cdk_replication.cli.verify_exports import add_recheck_options

PROG = "cdk-replication"


class _ShowVersion(Exception):
    """Raised by ``--version`` so that ``main`` prints the version on its own ``stdout`` and returns 0."""


class _VersionAction(argparse.Action):
    """``--version``: the installed package's version (argparse's own action prints to ``sys.stdout``)."""

    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS, **kwargs: object) -> None:
        super().__init__(option_strings, dest=dest, nargs=0, help="print the version and exit")

    def __call__(self, *_: object, **__: object) -> None:
        raise _ShowVersion


def package_version() -> str:
    """The installed ``cdk-replication`` distribution's version, or ``unknown`` when it is not installed."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(PROG)
    except PackageNotFoundError:
        return "unknown"

EPILOG = """\
exit codes: 0 done (verify: tables identical), 1 incomplete (differences remain, items failed, an export or
import failed, a redrive range is lost), 2 bad input (nothing was written), 130 interrupted (re-run the same
command to resume).
Tables: NAME, REGION:NAME (us-west-2:orders) or a table ARN.
More: `cdk-replication COMMAND --help` lists each command's options with their defaults. The full guide
(walkthroughs, permissions, --repair's rules, the --json keys) is docs/cli.md in the cdk-replication source
repository; pip does not install it.
"""


def _common_parser() -> argparse.ArgumentParser:
    common = OneLineParser(add_help=False)
    aws = common.add_argument_group("connection")
    aws.add_argument(
        "--region", type=region,
        help="region for tables named without one (default: profile, AWS_DEFAULT_REGION, AWS_REGION)",
    )
    aws.add_argument("--profile", help="AWS profile for both tables (default: the standard credential chain)")
    aws.add_argument("--source-profile", help="AWS profile for the source side (default: --profile)")
    aws.add_argument("--target-profile", help="AWS profile for the target side (default: --profile)")
    aws.add_argument(
        "--endpoint-url", type=endpoint_url, metavar="URL",
        help="endpoint for every AWS service, e.g. http://127.0.0.1:8000 for DynamoDB Local, or moto",
    )
    out = common.add_argument_group("output")
    out.add_argument("--json", action="store_true", help="print one JSON document on stdout (for scripts)")
    out.add_argument("--quiet", action="store_true", help="no progress line on stderr")
    common.add_argument(
        "--max-retries",
        type=positive_int,
        default=DEFAULT_MAX_ATTEMPTS,
        metavar="N",
        help="attempts per request on throttling, with exponential backoff and jitter "
        f"(default {DEFAULT_MAX_ATTEMPTS})",
    )
    return common


def _add_scan_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--segments", type=thread_count, default=DEFAULT_SEGMENTS,
        help=f"parallel scan segments, one thread each (default {DEFAULT_SEGMENTS}, at most 1000)",
    )
    parser.add_argument(
        "--workers", type=thread_count, default=DEFAULT_WORKERS,
        help=f"write/read threads shared by all segments (default {DEFAULT_WORKERS}, at most 1000)",
    )
    parser.add_argument(
        "--rate", type=positive_float, metavar="ITEMS_PER_S", help="item rate limit per second (default: none)"
    )


def _add_conflict_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--conflict-attribute", metavar="NAME", type=attribute_name,
        help="multi-active: last-writer-wins on this timestamp/version attribute (default: off)",
    )
    # No default here: given without --conflict-attribute it is refused (commands.conflict_of), not ignored.
    parser.add_argument(
        "--conflict-strategy", choices=CONFLICT_STRATEGIES,
        help="with --conflict-attribute: how it orders writes (default TIMESTAMP)",
    )


def _add_metadata_prefix(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--metadata-prefix", default=DEFAULT_METADATA_PREFIX,
        help="the replicator's metadata prefix: attributes whose names start with it are left out of "
        f"comparisons (default {DEFAULT_METADATA_PREFIX!r}; '' for none)",
    )


def _add_transform_spec(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--transform-spec", type=Path, metavar="FILE",
        help="the replica transform's spec (JSON) for a table outside a ReplicatedTable (default: the source's "
        "published /cdk-replication/<source>/replicator parameter)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    common = _common_parser()
    parser = OneLineParser(
        prog=PROG,
        description="Initial load, verification, migration and redrive of replicated DynamoDB tables.",
        epilog=EPILOG,
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action=_VersionAction)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    backfill = sub.add_parser(
        "backfill", parents=[common], epilog=EPILOG, formatter_class=HelpFormatter,
        help="copy every item with writes that never overwrite newer data",
        description="Scan SOURCE in parallel and write each item to TARGET unless TARGET already has it "
        "(or, with --conflict-attribute, has a newer or equal version). Resumable.",
    )
    backfill.add_argument("source", metavar="SOURCE")
    backfill.add_argument("target", metavar="TARGET")
    _add_scan_options(backfill)
    backfill.add_argument(
        "--page-size", type=positive_int, metavar="N",
        help="items per scan page, i.e. resume granularity (default: DynamoDB's 1 MB pages)",
    )
    _add_conflict_options(backfill)
    _add_metadata_prefix(backfill)
    backfill.add_argument(
        "--state-file", type=Path,
        help=f"resume file (default {pair_state_pattern('backfill')}); removed when done",
    )
    backfill.add_argument("--restart", action="store_true", help="ignore an existing state file and start over")
    _add_transform_spec(backfill)

    verify = sub.add_parser(
        "verify", parents=[common], epilog=EPILOG, formatter_class=HelpFormatter,
        help="compare two tables item by item; --repair fixes the differences",
        description="Report items missing from TARGET, extra in TARGET and different, ignoring metadata "
        "attributes. With --repair, bring TARGET to SOURCE's state without clobbering concurrent "
        "replication: each key is re-read and written only on the condition that TARGET still holds what was "
        "read, and multi-active keys follow the replicator's conflict rules.",
    )
    verify.add_argument("source", metavar="SOURCE")
    verify.add_argument("target", metavar="TARGET")
    _add_scan_options(verify)
    _add_metadata_prefix(verify)
    _add_conflict_options(verify)
    verify.add_argument("--repair", action="store_true", help="write the source's state for each difference")
    verify.add_argument("--dry-run", action="store_true", help="with --repair: only show what would change")
    _add_transform_spec(verify)
    verify.add_argument(
        "--show", type=int, default=20, metavar="N", help="keys listed per kind of difference (default 20)"
    )
    add_recheck_options(verify)

    add_migrate_parser(sub, common, EPILOG)
    _add_redrive_parser(sub, common)
    add_topology_parsers(sub, common, EPILOG, _add_scan_options)
    return parser


def _add_redrive_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    """The ``redrive`` subcommand (docs/cli.md, "redrive")."""
    redrive = sub.add_parser(
        "redrive", parents=[common], epilog=EPILOG, formatter_class=HelpFormatter,
        help="bring the items of failed stream batches right, from the source's current state",
        description="Read the replicator's failure records (S3 bucket, folder or SQS queue), find the keys they "
        "name (re-reading the stream when a record has no payload), and resync each key from SOURCE's CURRENT "
        "state into every TARGET under verify --repair's rules (or, with --conflict-attribute, the conflict "
        "rules); never replays an old image. Marks what it redrove, so a second run does nothing.",
    )
    redrive.add_argument("source", metavar="SOURCE")
    redrive.add_argument("targets", metavar="TARGET", nargs="+")
    where = redrive.add_mutually_exclusive_group(required=True)
    where.add_argument("--from", dest="from_s3", metavar="s3://BUCKET[/PREFIX]",
                       help="the S3 failure destination (records with payload)")
    where.add_argument("--from-dir", metavar="DIR", help="a folder laid out like that bucket (object key K = DIR/K)")
    where.add_argument("--queue-url", metavar="URL", help="an SQS failure destination (records without payload; "
                       "messages are deleted once redriven)")
    _add_conflict_options(redrive)
    _add_metadata_prefix(redrive)
    redrive.add_argument("--dry-run", action="store_true", help="read and report; write no item and no marker")
    _add_transform_spec(redrive)
    redrive.add_argument(
        "--workers", type=thread_count, default=DEFAULT_WORKERS,
        help=f"keys resynced in parallel, one thread each (default {DEFAULT_WORKERS}, at most 1000)",
    )


def main(argv: Sequence[str] | None = None, *, stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    """Run the command line; returns the exit code (see :mod:`cdk_replication.cli.errors`).

    Args:
        argv: arguments without the program name; default ``sys.argv[1:]``.
        stdout: where results go; default ``sys.stdout``.
        stderr: where progress, warnings and errors go; default ``sys.stderr``.
    """
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except _ShowVersion:
        out.write(f"{PROG} {package_version()}\n")
        return 0
    except SystemExit as exc:  # --help exits 0; report the code instead of exiting
        return int(exc.code or 0)
    except UsageError as exc:
        # One line, like every other refusal (argparse would print the whole usage text first).
        err.write(f"{PROG}: error: {exc}\n")
        arguments = list(sys.argv[1:] if argv is None else argv)
        if "--json" in arguments:
            command = next((a for a in arguments if not a.startswith("-")), None)
            print_error_json(out, command, str(exc), EXIT_BAD_INPUT)
        return EXIT_BAD_INPUT
    code, kind, message = _run_and_classify(args, out, err)
    if message is not None:
        err.write(f"{PROG}: {kind}: {message}\n")
        if getattr(args, "json", False):
            print_error_json(out, args.command, message, code)
    return code


def _run_and_classify(args: argparse.Namespace, out: TextIO, err: TextIO) -> tuple[int, str, str | None]:
    """Run the command; returns ``(exit code, "error"/"failed"/"interrupted", message or None)``."""
    from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

    try:
        return commands.run(args, out, err), "", None
    except BadInput as exc:
        return EXIT_BAD_INPUT, "error", str(exc)
    except WorkFailed as exc:
        return EXIT_INCOMPLETE, "failed", str(exc)
    except NoCredentialsError:
        return (
            EXIT_BAD_INPUT,
            "error",
            "no AWS credentials found: pass --profile, set AWS_PROFILE, or configure credentials"
            + (LOCAL_CREDENTIALS_HINT if getattr(args, "endpoint_url", None) else ""),
        )
    except EndpointConnectionError as exc:
        return (
            EXIT_BAD_INPUT,
            "error",
            f"cannot reach {exc.kwargs.get('endpoint_url')}: check --endpoint-url, the region and the network",
        )
    except ClientError as exc:
        # An AWS refusal that no check anticipated: one line naming the call, not a traceback.
        operation = getattr(exc, "operation_name", "request")
        return EXIT_INCOMPLETE, "failed", f"{operation}: {error_code(exc)}: {error_message(exc)}"
    except OSError as exc:
        # A local file (state file, output) that cannot be written after work started: one line, not a
        # traceback; the state file, where it could be written, keeps the progress.
        return EXIT_INCOMPLETE, "failed", f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": ")
    except KeyboardInterrupt:
        return (
            EXIT_INTERRUPTED,
            "interrupted",
            "re-run the same command to continue (state files keep the progress)",
        )
