"""``cdk-replication migrate``: check, settle the choices, take the steps, report (see the package docstring)."""

from __future__ import annotations

import argparse
from typing import TextIO

from cdk_replication.cli.connections import connections
from cdk_replication.cli.errors import EXIT_OK
from cdk_replication.cli.migrate.checks import check_options, check_target_account, precheck
from cdk_replication.cli.migrate.choices import choose_bucket, choose_change_source
from cdk_replication.cli.migrate.context import Context
from cdk_replication.cli.migrate.report import report
from cdk_replication.cli.migrate.steps import run_steps
from cdk_replication.cli.output import say_unchecked
from cdk_replication.cli.state import StateFile, pair_state_path
from cdk_replication.cli.tables import TableHandle, TableRef, describe_table
from cdk_replication.cli.transforms import TargetId, refuse_transformed_migration


def cmd_migrate(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Run (or continue) a migration; returns the exit code (0: every step of this run is done)."""
    check_options(args)
    ctx = _open(args, err)
    # Before any step (the export too): a transformed replica cannot come from an export (cli/transforms.py).
    refuse_transformed_migration(ctx.source_conn, ctx.source, TargetId(ctx.target_ref.name, ctx.target_region,
                                                                          ctx.target_ref.account))
    lambda_client = None
    if args.event_source_mapping_uuid:
        lambda_client = ctx.source_conn.client("lambda", args.mapping_region or ctx.source.info.region)
    choose_change_source(ctx)
    if not args.after_import:
        choose_bucket(ctx)
    precheck(ctx, lambda_client)
    run_steps(ctx, lambda_client)
    report(ctx, out)
    return EXIT_OK


def _open(args: argparse.Namespace, err: TextIO) -> Context:
    """Describe the source, settle the target's region (and account, when named by ARN), open the state file."""
    source_conn, target_conn = connections(args)
    described = describe_table(source_conn, TableRef.parse(args.source, "source"), "source")
    notes = say_unchecked(err, described)
    # Control-plane calls (and status polls) use botocore's own retries, unlike the data-plane client.
    source = TableHandle(described.info, source_conn.client("dynamodb", described.info.region))
    target_ref = TableRef.parse(args.target, "target")
    target_region = target_ref.region or target_conn.client("dynamodb", None).meta.region_name
    if target_ref.account:
        check_target_account(target_conn, target_ref, target_region)
    state = _open_state(args, source, target_ref, target_region)
    return Context(args, source, source_conn, target_ref, target_conn, target_region, state, err, [], notes=notes)


def _open_state(args: argparse.Namespace, source: TableHandle, target_ref: TableRef, target_region: str) -> StateFile:
    """The state file of these tables (``--state-file``, or one named after both), loaded; ``--restart``
    deletes it first."""
    state = StateFile(
        args.state_file
        or pair_state_path("migrate", source.info.region, source.info.ref.name, target_region, target_ref.name),
        {"command": "migrate", "source": source.info.arn, "target": target_ref.name, "targetRegion": target_region},
    )
    if args.restart:
        state.delete()
    state.load().setdefault("done", [])
    return state
