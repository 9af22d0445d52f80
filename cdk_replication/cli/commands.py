"""The subcommands: check the input (before anything is written), run, print the result, pick the exit code."""

from __future__ import annotations

import argparse
from typing import TextIO

from cdk_replication.cli.backfill import BackfillOptions, backfill_text, run_backfill
from cdk_replication.cli.conditions import LastWriterWins
from cdk_replication.cli.connections import connections
from cdk_replication.cli.errors import EXIT_INCOMPLETE, EXIT_INTERRUPTED, EXIT_OK, BadInput
from cdk_replication.cli.migrate import cmd_migrate
from cdk_replication.cli.output import print_json, say_unchecked
from cdk_replication.cli.redrive.command import cmd_redrive
from cdk_replication.cli.topology import COMMANDS as TOPOLOGY_COMMANDS, run_topology
from cdk_replication.cli.tables import (
    TableHandle,
    TableRef,
    check_distinct,
    check_same_key,
    describe_table,
    probe_batch_get,
    probe_read,
    probe_write,
)
from cdk_replication.cli.transforms import ReplicaView, refuse_multi_active, replica_view
from cdk_replication.cli.verify import VerifyOptions, run_verify, verify_json, verify_text
from cdk_replication.cli.verify_exports import check_export_args, run_verify_from_exports


def open_pair(args: argparse.Namespace, pool: int) -> tuple[TableHandle, TableHandle]:
    """Describe SOURCE and TARGET and check they can be copied between (same key schema, not one table)."""
    source_conn, target_conn = connections(args)
    source_ref = TableRef.parse(args.source, "source")
    target_ref = TableRef.parse(args.target, "target")
    source = describe_table(source_conn, source_ref, "source", pool=pool)
    target = describe_table(target_conn, target_ref, "target", pool=pool)
    check_distinct(source.info, target.info, source_conn.profile == target_conn.profile)
    check_same_key(source.info, target.info)
    return source, target


def view_of(args: argparse.Namespace, source: TableHandle, target: TableHandle, notes: list[str],
            conflict: LastWriterWins | None) -> ReplicaView:
    """How TARGET holds SOURCE's items (its replica transform, found and checked before anything is written:
    :mod:`cdk_replication.cli.transforms`); notes for the user go to ``notes``."""
    source_conn, _ = connections(args)
    view = replica_view(source_conn, source, target, spec_file=getattr(args, "transform_spec", None), notes=notes)
    refuse_multi_active(view, conflict, target)
    return view


def conflict_of(args: argparse.Namespace) -> LastWriterWins | None:
    """The last-writer-wins rule from ``--conflict-attribute``/``--conflict-strategy``, if any.

    A strategy without an attribute is refused: the command would otherwise run one-way, silently. So is an
    attribute that starts with ``--metadata-prefix``: every comparison leaves such attributes out.
    """
    prefix = args.metadata_prefix
    if args.conflict_attribute and prefix and args.conflict_attribute.startswith(prefix):
        raise BadInput(
            f"--conflict-attribute {args.conflict_attribute!r} starts with the metadata prefix {prefix!r}, so it "
            "would be ignored in every comparison: name the application's attribute, or change --metadata-prefix"
        )
    if args.conflict_attribute is None:
        if args.conflict_strategy is not None:
            raise BadInput(
                f"--conflict-strategy {args.conflict_strategy} needs --conflict-attribute NAME, the attribute that "
                f"holds each item's {'version' if args.conflict_strategy == 'VERSION' else 'timestamp'} "
                "(multi-active); without both the command is one-way: drop --conflict-strategy"
            )
        return None
    return LastWriterWins(args.conflict_attribute, args.conflict_strategy or "TIMESTAMP")


def cmd_backfill(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """``backfill``: check both tables and the permissions the copy needs, copy, report; returns the exit code."""
    conflict = conflict_of(args)
    source, target = open_pair(args, pool=args.segments + args.workers)
    notes = say_unchecked(err, source, target)
    view = view_of(args, source, target, notes, conflict)
    probe_read(source, "source")
    probe_batch_get(target, "target")
    if conflict is None:
        # One-way: every write is confirmed by a consistent BatchGetItem of the source, and a key whose
        # source changed meanwhile is resynced, which may delete from the target (docs/cli.md).
        probe_batch_get(source, "source")
    probe_write(target, "target", delete=conflict is None)
    if source.info.stream_view_type is None:
        err.write(
            f"warning: source {source.info.label()} has no stream: changes made during and after this copy "
            "will not reach the target. Turn the stream on (NEW_AND_OLD_IMAGES) and deploy the replicator "
            "with its mapping disabled before a backfill (docs/cli.md).\n"
        )
    options = BackfillOptions(
        segments=args.segments,
        workers=args.workers,
        rate=args.rate,
        page_size=args.page_size,
        conflict=conflict,
        max_attempts=args.max_retries,
        state_path=args.state_file,
        restart=args.restart,
        metadata_prefix=args.metadata_prefix,
        view=view,
    )
    result = run_backfill(source, target, options, progress_stream=err, show_progress=not args.quiet)
    if args.json:
        print_json(out, {**result.as_json(), "notes": notes})
    else:
        out.write(backfill_text(result))
    if result.interrupted:
        err.write(f"interrupted: progress is saved in {result.state_path}; run the same command again to resume\n")
        return EXIT_INTERRUPTED
    return EXIT_INCOMPLETE if result.counts["failed"] else EXIT_OK


def cmd_verify(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """``verify [--repair]``: check the options and both tables, compare (and repair), report; returns the
    exit code."""
    if args.dry_run and not args.repair:
        raise BadInput("--dry-run only applies to --repair: add --repair (nothing is written with --dry-run)")
    if args.show < 0:
        raise BadInput(f"--show must be 0 or more, got {args.show}")
    check_export_args(args)
    conflict = conflict_of(args)
    source, target = open_pair(args, pool=2 * args.segments + args.workers)
    notes = say_unchecked(err, source, target)
    view = view_of(args, source, target, notes, conflict)
    probe_read(source, "source")
    probe_read(target, "target")
    if args.repair and not args.dry_run:
        # A multi-active repair never deletes (see repair.py), so it needs no DeleteItem permission.
        probe_write(target, "target", delete=not args.conflict_attribute)
    options = VerifyOptions(
        segments=args.segments,
        workers=args.workers,
        rate=args.rate,
        metadata_prefix=args.metadata_prefix,
        conflict=conflict,
        repair=args.repair,
        dry_run=args.dry_run,
        max_attempts=args.max_retries,
        recheck_rounds=args.recheck_rounds,
        recheck_pause=args.recheck_pause,
    )
    report = None
    if args.from_exports:
        if not view.identity:
            # The export comparison digests items as they are; a transformed replica would differ everywhere.
            raise BadInput(
                f"--from-exports compares exports as they are, and {target.info.label()} is a transformed "
                "replica: run verify without --from-exports (it applies the transform)"
            )
        result, report = run_verify_from_exports(source, target, options, args, err, not args.quiet)
    else:
        result = run_verify(source, target, options, progress_stream=err, show_progress=not args.quiet, view=view)
    if args.json:
        print_json(out, {**verify_json(result, source.info.key), "notes": notes})
    else:
        out.write("\n".join(verify_text(result, source.info.key, args.show)) + "\n")
    if report is not None:
        err.write(f"the exports' comparison (before the re-reads): {report}\n")
    return EXIT_INCOMPLETE if result.differences_remain else EXIT_OK


def run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Dispatch to the subcommand named in ``args.command``."""
    if args.command == "backfill":
        return cmd_backfill(args, out, err)
    if args.command == "verify":
        return cmd_verify(args, out, err)
    if args.command == "migrate":
        return cmd_migrate(args, out, err)
    if args.command == "redrive":
        return cmd_redrive(args, out, err, conflict_of(args))
    if args.command in TOPOLOGY_COMMANDS:
        return run_topology(args, out, err)
    raise BadInput(f"unknown command {args.command!r}")
