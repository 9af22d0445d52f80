"""``cdk-replication redrive``: check the input (before anything is written), run, print, pick the exit code."""

from __future__ import annotations

import argparse
import dataclasses
import os
from pathlib import Path
from typing import Any, TextIO

from cdk_replication.cli.conditions import LastWriterWins
from cdk_replication.cli.connections import connections
from cdk_replication.cli.errors import EXIT_INCOMPLETE, EXIT_INTERRUPTED, EXIT_OK, BadInput
from cdk_replication.cli.output import print_json, say_unchecked
from cdk_replication.cli.pacing import Retrier
from cdk_replication.cli.redrive.failure_records import DYNAMODB
from cdk_replication.cli.redrive.locations import (
    FolderLocation,
    Location,
    QueueLocation,
    S3Location,
    parse_s3_url,
    sqs_region,
)
from cdk_replication.cli.redrive.report import redrive_json, redrive_text
from cdk_replication.cli.redrive.resync import KeyResyncer, ResyncOptions
from cdk_replication.cli.redrive.run import run_redrive
from cdk_replication.cli.redrive.stream_ranges import RangeReader
from cdk_replication.cli.tables import (
    Connection,
    TableHandle,
    TableRef,
    check_distinct,
    check_same_key,
    describe_table,
    probe_read,
    probe_write,
)
from cdk_replication.cli.transforms import refuse_multi_active, replica_view

#: boto3's per-service endpoint variables (``AWS_ENDPOINT_URL_<SERVICE>``) that redrive honours before
#: ``--endpoint-url``: the records' and streams' services may be elsewhere than DynamoDB (moto, a local S3).
SERVICE_ENDPOINT_VARIABLES = {"s3": "AWS_ENDPOINT_URL_S3", "sqs": "AWS_ENDPOINT_URL_SQS",
                              "kinesis": "AWS_ENDPOINT_URL_KINESIS",
                              "dynamodbstreams": "AWS_ENDPOINT_URL_DYNAMODB_STREAMS"}


def service_client(conn: Connection, service: str, region: str | None) -> Any:
    """A client for ``service``: at ``AWS_ENDPOINT_URL_<SERVICE>`` when that is set, else as ``conn`` says."""
    own = os.environ.get(SERVICE_ENDPOINT_VARIABLES[service])
    if own:
        conn = dataclasses.replace(conn, endpoint_url=own)
    return conn.client(service, region)


def open_tables(args: argparse.Namespace, pool: int) -> tuple[Connection, TableHandle, list[TableHandle]]:
    """SOURCE and every TARGET, described and checked (same key schema, none of them SOURCE, no repeats)."""
    source_conn, target_conn = connections(args)
    source = describe_table(source_conn, TableRef.parse(args.source, "source"), "source", pool=pool)
    targets: list[TableHandle] = []
    for text in args.targets:
        target = describe_table(target_conn, TableRef.parse(text, "target"), "target", pool=pool)
        check_distinct(source.info, target.info, source_conn.profile == target_conn.profile)
        check_same_key(source.info, target.info)
        if any(t.info.arn == target.info.arn and t.info.region == target.info.region for t in targets):
            raise BadInput(f"target {text!r} is named twice: name each TARGET once")
        targets.append(target)
    return source_conn, source, targets


def open_location(args: argparse.Namespace, conn: Connection) -> Location:
    """The location ``--from`` / ``--from-dir`` / ``--queue-url`` names."""
    if args.from_dir is not None:
        return FolderLocation(Path(args.from_dir))
    if args.queue_url is not None:
        return QueueLocation(service_client(conn, "sqs", sqs_region(args.queue_url)), args.queue_url)
    bucket, prefix = parse_s3_url(args.from_s3)
    return S3Location(service_client(conn, "s3", None), bucket, prefix)


def stream_reader(conn: Connection, source: TableHandle, retrier: Retrier) -> RangeReader:
    """Re-reads batch ranges with SOURCE's credentials; SOURCE's current stream is called by the name the
    endpoint gives it (DynamoDB Local's ARNs differ from the ones Lambda writes)."""
    latest = source.info.description.get("LatestStreamArn")

    def endpoint_arn(arn: str) -> str:
        if latest and arn.rpartition("/stream/")[2] == latest.rpartition("/stream/")[2] and \
                arn.split(":table/")[-1].split("/")[0] == source.info.ref.name:
            return str(latest)
        return arn

    def client_for(kind: str, region: str) -> Any:
        return service_client(conn, "dynamodbstreams" if kind == DYNAMODB else "kinesis", region)

    return RangeReader(client_for, retrier, endpoint_arn)


def cmd_redrive(args: argparse.Namespace, out: TextIO, err: TextIO, conflict: LastWriterWins | None) -> int:
    """``redrive``: check the tables, the permissions and every record, resync, mark, report; returns the
    exit code."""
    conn, source, targets = open_tables(args, pool=args.workers + 2)
    notes = say_unchecked(err, source, *targets)
    # Each TARGET's replica transform, checked before anything is written (cli/transforms.py).
    views = [replica_view(conn, source, target, spec_file=args.transform_spec, notes=notes) for target in targets]
    for view, target in zip(views, targets):
        refuse_multi_active(view, conflict, target)
    probe_read(source, "source")
    for target in targets:
        probe_read(target, "target")
        if not args.dry_run:
            probe_write(target, "target", delete=conflict is None)
    retrier = Retrier(args.max_retries)
    options = ResyncOptions(args.metadata_prefix, conflict, args.dry_run, source.info.region)
    resyncer = KeyResyncer(source, targets, options, retrier, views)
    location = open_location(args, conn)
    if not args.dry_run:
        location.check_marking()  # before the first item write: a run that cannot mark would redo it all
    result = run_redrive(location, source, resyncer, stream_reader(conn, source, retrier), workers=args.workers,
                         dry_run=args.dry_run, progress_stream=err, show_progress=not args.quiet)
    if args.json:
        print_json(out, {**redrive_json(result, source.info.key), "notes": notes + result.notes})
    else:
        out.write("\n".join(redrive_text(result, source.info.key, args.source)) + "\n")
    if result.interrupted:
        err.write("interrupted: records redriven so far are marked; run the same command again to redrive the rest\n")
        return EXIT_INTERRUPTED
    return EXIT_OK if result.complete else EXIT_INCOMPLETE
