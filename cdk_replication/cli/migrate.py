"""``migrate``: create a new replica from a native export to S3 and an import, then start replication.

Steps, each recorded in the state file when finished so a re-run continues where the last one stopped:

``stream``  the source stream on (NEW_AND_OLD_IMAGES) - before the copy, so every later change is kept;
            with ``--change-source KINESIS`` instead: the source streams to its Kinesis data stream (ACTIVE;
            ENABLING is waited for), and that stream's retention is recorded;
``pitr``    point-in-time recovery on the source (an export needs it);
``export``  ExportTableToPointInTime to ``s3://bucket/prefix`` (the bucket may belong to another account);
``import``  ImportTable of the export's data files into the new target table (key schema, GSIs, billing
            and provisioned capacity of the source);
``ttl``     the source's time-to-live setting on the target;
``target-stream`` (``--target-stream``) a NEW_AND_OLD_IMAGES stream on the target (multi-active);
``mapping`` (``--event-source-mapping-uuid``) enable the replicator's disabled event source mapping, which
            then applies the stream from TRIM_HORIZON over the imported copy.

Export and import requests carry a client token kept in the state file, so a crash between a request and
the state write cannot start a second export or import.

The change source decides how long the changes made after the export's start stay readable, and so the
deadline for enabling the mapping: 24 hours for a DynamoDB stream, the data stream's retention for Kinesis
(read with DescribeStreamSummary; 24 hours, Kinesis' minimum, when it cannot be read). The change source,
the data stream's ARN and its retention are kept in the state file, so ``--after-import`` uses the same.

Two modes drive the ``ReplicatedTable`` construct's import path instead, where CloudFormation creates the
replica from the export (``MigrationOptions(export_arn=...)``):

``--export-only``  ``stream``, ``pitr`` and ``export`` only, into the construct's migration bucket by default;
                   prints the export ARN and the next steps. TARGET must not exist (the stack creates it).
``--after-import`` TARGET exists (the stack created it): check it, then only the ``mapping`` step.
"""

from __future__ import annotations

import argparse
import datetime
import posixpath
import shlex
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from cdk_replication.physical_names import migration_bucket_name, migration_export_prefix, parse_kinesis_stream_arn
from cdk_replication.cli.arguments import positive_float, region
from cdk_replication.cli.connections import connections
from cdk_replication.cli.errors import (
    ACCESS_ERROR_CODES,
    EXIT_OK,
    BadInput,
    WorkFailed,
    error_code,
    error_message,
)
from cdk_replication.cli.output import numbered, print_json, say_unchecked
from cdk_replication.cli.progress import Progress, format_duration
from cdk_replication.cli.state import StateFile, default_state_path
from cdk_replication.cli.tables import Connection, TableHandle, TableRef, describe_table, key_schema_of

#: Seconds between status polls of the export, the import and table updates (``--poll-interval``).
DEFAULT_POLL_INTERVAL_S = 15.0
#: DynamoDB Streams keep records this long; a load that takes longer loses changes.
STREAM_RETENTION_S = 24 * 3600
#: ``--change-source`` values: the construct's ``ChangeSource`` names (``kinesis``, ``dynamodb-streams`` work too).
CHANGE_SOURCES = ("DYNAMODB_STREAMS", "KINESIS")
#: Kinesis streaming destination states: changes flow, or will once it is ACTIVE (``stream`` waits for it).
KINESIS_LIVE = ("ACTIVE", "ENABLING", "UPDATING")

STEPS = ("stream", "pitr", "export", "import", "ttl", "target-stream", "mapping")
#: The steps of ``--export-only`` and ``--after-import`` (the construct's stack imports in between).
EXPORT_ONLY_STEPS = ("stream", "pitr", "export")
AFTER_IMPORT_STEPS = ("mapping",)
#: Where the replicator's mapping UUID is shown (an output of the source stack).
MAPPING_OUTPUT = "ReplicatorEventSourceMappingUuid"


def add_migrate_parser(sub: Any, common: argparse.ArgumentParser, epilog: str) -> None:
    """Add the ``migrate`` subcommand to the subparsers ``sub``."""
    parser = sub.add_parser(
        "migrate", parents=[common], epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter,
        help="new replica via export to S3 + import, then enable the replicator's mapping",
        description="Turn on the source's stream and PITR, export it to S3, import the export into the new "
        "table TARGET (which must not exist), copy TTL, and optionally enable the replicator's disabled event "
        "source mapping. Re-run the same command to continue after an interruption. With the construct's "
        "MigrationOptions, CloudFormation creates TARGET instead: --export-only, deploy with export_arn, "
        "then --after-import.",
    )
    parser.add_argument("source", metavar="SOURCE")
    parser.add_argument("target", metavar="TARGET", help="the new table: NAME, REGION:NAME or ARN")
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
    mode = parser.add_argument_group("with the ReplicatedTable construct's import (two deploys, docs/cli.md)")
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
    parser.add_argument("--state-file", type=Path, help="default .cdk-replication/migrate-<source>-to-<target>.json")
    parser.add_argument("--restart", action="store_true", help="ignore an existing state file and start over")
    parser.add_argument(
        "--poll-interval", type=positive_float, default=DEFAULT_POLL_INTERVAL_S, metavar="SECONDS",
        help=f"seconds between status checks (default {DEFAULT_POLL_INTERVAL_S:g})",
    )


def _change_source(text: str) -> str:
    """``--change-source``: any case, ``-`` for ``_`` (``kinesis``, ``dynamodb-streams``)."""
    return text.strip().upper().replace("-", "_")


@dataclass
class _Context:
    args: argparse.Namespace
    source: TableHandle
    source_conn: Connection
    target_ref: TableRef
    target_conn: Connection
    target_region: str
    state: StateFile
    err: TextIO
    log: list[dict[str, Any]]
    #: ``--change-source KINESIS``: the source's streaming destination as DescribeKinesisStreamingDestination
    #: showed it in the precheck.
    destination: dict[str, Any] | None = None
    #: Lines said on stderr that the ``--json`` document carries too (e.g. an ARN's account not checked).
    notes: list[str] = field(default_factory=list)

    @property
    def kinesis(self) -> bool:
        return self.args.change_source == "KINESIS"

    def warn(self, text: str) -> None:
        self.err.write(f"warning: {text}\n")

    def note(self, step: str, status: str, detail: str = "") -> None:
        self.log.append({"step": step, "status": status, "detail": detail})
        if not self.args.quiet:
            self.err.write(f"[{step}] {status}{': ' + detail if detail else ''}\n")

    def source_s3(self) -> Any:
        """An S3 client with the source side's credentials (the side that wrote the export)."""
        return self.source_conn.client("s3", self.source.info.region)

    def done(self, step: str) -> bool:
        return step in self.state.data["done"]

    def finish(self, step: str, detail: str = "", **fields: Any) -> None:
        self.state.data["done"].append(step)
        self.state.data.update(fields)
        self.state.save()
        self.note(step, "done", detail)


def _ddb_call(what: str, fn: Any, **kwargs: Any) -> Any:
    """Call ``fn``; an access error becomes a :class:`WorkFailed` that names the permission to grant."""
    try:
        return fn(**kwargs)
    except Exception as exc:
        if error_code(exc) in ACCESS_ERROR_CODES:
            raise WorkFailed(f"access denied: {what} ({error_message(exc)}); grant it and re-run to continue") from exc
        raise


def _wait(ctx: _Context, label: str, check: Any) -> Any:
    """Poll ``check()`` (returning ``(finished, result, status_text)``) every ``--poll-interval`` seconds."""
    started = time.monotonic()
    status = ["starting"]

    def render() -> str:
        return f"{label}: {status[0]} ({format_duration(time.monotonic() - started)} elapsed)"

    with Progress(render, ctx.err, enabled=not ctx.args.quiet and not ctx.args.json):
        while True:
            finished, result, status[0] = check()
            if finished:
                return result
            time.sleep(ctx.args.poll_interval)


def _table_status(client: Any, table: str) -> dict[str, Any]:
    return client.describe_table(TableName=table)["Table"]


def _precheck(ctx: _Context, lambda_client: Any | None) -> None:
    """Refuse bad input before anything is changed (exit 2)."""
    args, source = ctx.args, ctx.source
    desc = source.info.description
    if desc.get("LocalSecondaryIndexes") and not args.after_import:
        names = ", ".join(i["IndexName"] for i in desc["LocalSecondaryIndexes"])
        raise BadInput(
            f"source {source.info.label()} has local secondary indexes ({names}), which ImportTable cannot "
            "create: create the target with its LSIs yourself (or deploy it with the replica stack) and use "
            "`cdk-replication backfill` instead"
        )
    view = source.info.stream_view_type
    if ctx.kinesis:
        _check_kinesis(ctx)
    elif view is not None and view != "NEW_AND_OLD_IMAGES":
        raise BadInput(
            f"source {source.info.label()} has a {view} stream; the replicator needs NEW_AND_OLD_IMAGES. "
            "Changing the view type means turning the stream off and on, which starts a new stream: do it "
            "deliberately, then re-run"
        )
    if args.after_import:
        _check_imported_target(ctx)
    elif "exportArn" not in ctx.state.data:
        _check_bucket(ctx)
    if args.export_only:
        # The stack creates TARGET from the export: it must not exist before, and may exist after.
        creates_target = not ctx.done("export")
    else:
        creates_target = not args.after_import and not ctx.done("import") and "importArn" not in ctx.state.data
    if creates_target:
        target_client = ctx.target_conn.client("dynamodb", ctx.target_region)
        try:
            _table_status(target_client, ctx.target_ref.api_name)
        except Exception as exc:
            code = error_code(exc)
            if code in ACCESS_ERROR_CODES:
                raise BadInput(
                    f"access denied: DescribeTable on target {ctx.target_ref.name!r} in {ctx.target_region} "
                    f"({error_message(exc)}); check --target-profile"
                ) from None
            if code != "ResourceNotFoundException":
                raise
        else:
            if args.export_only:
                raise BadInput(
                    f"target table {ctx.target_ref.name!r} already exists in {ctx.target_region}: with "
                    "--export-only the replica stack creates it from the export, so it must not exist yet. If the "
                    "stack already created it from an export, run with --after-import instead; otherwise pick "
                    "another name or delete the table"
                )
            raise BadInput(
                f"target table {ctx.target_ref.name!r} already exists in {ctx.target_region}: migrate creates "
                "a new table. Pick another name, delete it, or copy into it with `cdk-replication backfill` "
                "(if a replica stack created it from an export, run with --after-import)"
            )
    if args.event_source_mapping_uuid and lambda_client is not None and not ctx.done("mapping"):
        if view is None and not ctx.kinesis:
            raise BadInput(
                "the source has no stream yet, so the mapping cannot be reading it: turn the stream on, deploy "
                "the replica stack (mapping disabled), then run migrate with its UUID"
            )
        try:
            mapping = lambda_client.get_event_source_mapping(UUID=args.event_source_mapping_uuid)
        except Exception as exc:
            code = error_code(exc)
            if code == "ResourceNotFoundException":
                raise BadInput(
                    f"event source mapping {args.event_source_mapping_uuid} does not exist in "
                    f"{lambda_client.meta.region_name}: check the UUID (`aws lambda list-event-source-mappings`) "
                    "and --mapping-region"
                ) from None
            if code in ACCESS_ERROR_CODES:
                raise BadInput(
                    f"access denied: lambda:GetEventSourceMapping ({error_message(exc)}); grant it or drop "
                    "--event-source-mapping-uuid and enable the mapping yourself"
                ) from None
            raise
        stream_arn = args.kinesis_stream_arn if ctx.kinesis else desc.get("LatestStreamArn")
        if ctx.kinesis and mapping.get("EventSourceArn") != stream_arn:
            raise BadInput(
                f"mapping {args.event_source_mapping_uuid} reads {mapping.get('EventSourceArn')}, not the Kinesis "
                f"data stream the source streams to ({stream_arn}): check --kinesis-stream-arn and the app's "
                "KinesisOptions, and pass the UUID of the mapping on that stream"
            )
        if mapping.get("EventSourceArn") != stream_arn:
            raise BadInput(
                f"mapping {args.event_source_mapping_uuid} reads {mapping.get('EventSourceArn')}, not the source's "
                f"current stream {stream_arn}: redeploy the replica stack so it uses the current stream"
            )
        if mapping.get("StartingPosition") not in (None, "TRIM_HORIZON"):
            raise BadInput(
                f"mapping {args.event_source_mapping_uuid} starts at {mapping.get('StartingPosition')}; it must "
                "start at TRIM_HORIZON so the changes made during the copy are applied"
            )
        if mapping.get("State") not in ("Disabled", "Disabling") and not args.after_import:
            ctx.err.write(
                f"warning: mapping {args.event_source_mapping_uuid} is {mapping.get('State')}: it may already "
                "fail writes to the target that does not exist yet (they go to its on-failure destination)\n"
            )


def _check_bucket(ctx: _Context) -> None:
    """A missing bucket (or one owned by another account than ``--s3-bucket-owner``) is bad input.

    A refusal (403) is only a warning: a bucket in another account may let the export service write
    without letting this principal call HeadBucket.
    """
    args = ctx.args
    request: dict[str, Any] = {"Bucket": args.s3_bucket}
    if args.s3_bucket_owner:
        request["ExpectedBucketOwner"] = args.s3_bucket_owner
    try:
        ctx.source_s3().head_bucket(**request)
    except Exception as exc:
        code = error_code(exc)
        if code in ("404", "NoSuchBucket", "NotFound"):
            if ctx.state.data.get("s3BucketDerived"):
                raise BadInput(
                    f"S3 bucket {args.s3_bucket!r} (the construct's default migration bucket for "
                    f"{ctx.target_ref.name!r}) does not exist: deploy the replica stack with "
                    "migration=MigrationOptions() first (it creates the bucket), or pass --s3-bucket"
                ) from None
            raise BadInput(
                f"S3 bucket {args.s3_bucket!r} does not exist: create it (in the target account for a "
                "cross-account copy) or pass another --s3-bucket"
            ) from None
        if code in ("403", "AccessDenied"):
            ctx.err.write(
                f"warning: cannot check bucket {args.s3_bucket!r} (403); continuing - the export fails later if "
                "the bucket policy does not let this account write to it"
                + (" or it is not owned by account " + args.s3_bucket_owner if args.s3_bucket_owner else "")
                + (" (expected for the construct's bucket, which lets another account only write under the "
                   "prefix; a missing bucket fails the export: deploy the replica stack first)"
                   if ctx.state.data.get("s3BucketDerived") else "")
                + "\n"
            )
            return
        raise


def _check_imported_target(ctx: _Context) -> None:
    """``--after-import``: TARGET exists, is ACTIVE and has SOURCE's key schema (else exit 2)."""
    client = ctx.target_conn.client("dynamodb", ctx.target_region)
    name, region = ctx.target_ref.name, ctx.target_region
    try:
        desc = _table_status(client, ctx.target_ref.api_name)
    except Exception as exc:
        code = error_code(exc)
        if code == "ResourceNotFoundException":
            raise BadInput(
                f"target table {name!r} does not exist in {region}: set MigrationOptions(export_arn=...) on the "
                "replica and `cdk deploy` first (the replica stack creates the table from the export), then "
                "re-run with --after-import"
            ) from None
        if code in ACCESS_ERROR_CODES:
            raise BadInput(
                f"access denied: DescribeTable on target {name!r} in {region} ({error_message(exc)}); check "
                "--target-profile"
            ) from None
        raise
    if desc.get("TableStatus") != "ACTIVE":
        raise BadInput(
            f"target table {name!r} in {region} is {desc.get('TableStatus')}, not ACTIVE: wait until the "
            "deployment (and its import) has finished, then re-run"
        )
    if desc["TableArn"] == ctx.source.info.arn and ctx.source_conn.profile == ctx.target_conn.profile:
        raise BadInput(f"source and target are the same table ({desc['TableArn']}): name the replica")
    key = key_schema_of(desc)
    if key != ctx.source.info.key:
        raise BadInput(
            f"key schema mismatch: source {ctx.source.info.label()} has {ctx.source.info.key.describe()}, target "
            f"{name} ({region}) has {key.describe()}: TARGET is not a replica of SOURCE; check both names"
        )
    ctx.note("target", "checked", f"ACTIVE, {key.describe()}")


def _check_target_account(conn: Connection, ref: TableRef, region: str) -> None:
    """ImportTable creates the table in the credentials' own account: it must be the one the ARN names."""
    identity = conn.client("sts", region).get_caller_identity()
    if identity["Account"] != ref.account:
        raise BadInput(
            f"target {ref.arn} is in account {ref.account}, but the target credentials belong to account "
            f"{identity['Account']}: pass --target-profile for account {ref.account}"
        )


def _check_kinesis(ctx: _Context) -> None:
    """``--change-source KINESIS``: the source streams to one data stream, not off or failed (else exit 2).

    Chooses the destination (``--kinesis-stream-arn`` among several; ENABLING is left to the ``stream`` step
    to wait for), warns of millisecond timestamps, and reads the stream's retention unless the state file
    has it.
    """
    args, data = ctx.args, ctx.state.data
    destination = _choose_destination(ctx, _kinesis_destinations(ctx))
    ctx.destination = destination
    args.kinesis_stream_arn = data["kinesisStreamArn"] = arn = destination["StreamArn"]
    status = destination.get("DestinationStatus")
    if args.after_import and status == "ENABLING":  # after the export: it was off, or never on
        raise BadInput(
            f"the source's Kinesis streaming destination {arn} is {status}, not ACTIVE: wait until "
            "`aws dynamodb describe-kinesis-streaming-destination` shows it ACTIVE and re-run; if it was off at "
            "any time since the export started, the changes made meanwhile are missing, so run `cdk-replication "
            "verify SOURCE TARGET --repair` after the mapping catches up"
        )
    precision = destination.get("ApproximateCreationDateTimePrecision") or "unreported (by default MILLISECOND)"
    if precision != "MICROSECOND":
        ctx.warn(
            f"the source's Kinesis streaming destination {arn} has {precision} "
            "timestamps (ApproximateCreationDateTimePrecision): the replicator handles them, but two writes of one "
            "item within the same millisecond cannot be ordered, so the replica may keep the older one. Switch "
            f"with `{_destination_command(ctx, 'update', arn)}`"
        )
    if "streamRetentionHours" not in data:
        hours = _kinesis_retention_hours(ctx, arn)
        data["streamRetentionHours"] = hours or STREAM_RETENTION_S // 3600
        data["streamRetentionRead"] = hours is not None


def _kinesis_destinations(ctx: _Context) -> list[dict[str, Any]]:
    """The source's Kinesis streaming destinations (DescribeKinesisStreamingDestination)."""
    try:
        response = ctx.source.client.describe_kinesis_streaming_destination(TableName=ctx.source.name)
    except Exception as exc:
        if error_code(exc) in ACCESS_ERROR_CODES:
            raise BadInput(
                f"access denied: dynamodb:DescribeKinesisStreamingDestination on source {ctx.source.info.label()} "
                f"({error_message(exc)}); grant it to the source side: --change-source KINESIS checks that the table "
                "streams its changes to the data stream"
            ) from None
        raise
    return list(response.get("KinesisDataStreamDestinations") or [])


def _choose_destination(ctx: _Context, destinations: list[dict[str, Any]]) -> dict[str, Any]:
    """The destination of ``--kinesis-stream-arn``, else the only live one; refused when off or failed."""
    wanted, label = ctx.args.kinesis_stream_arn, ctx.source.info.label()
    listing = ", ".join(f"{d.get('StreamArn')} ({d.get('DestinationStatus')})" for d in destinations)
    live = [d for d in destinations if d.get("DestinationStatus") in KINESIS_LIVE]
    enable = "enable it with `{}`, wait until `aws dynamodb describe-kinesis-streaming-destination` shows it " \
        "ACTIVE, then re-run"
    if wanted:
        chosen = [d for d in destinations if d.get("StreamArn") == wanted]
        if not chosen:
            raise BadInput(
                f"source {label} does not stream its changes to {wanted}"
                + (f" (its Kinesis streaming destinations: {listing})" if destinations else "")
                + ": " + enable.format(_destination_command(ctx, "enable", wanted))
                + ", or pass the --kinesis-stream-arn of the stream the replicator reads"
            )
        destination = chosen[0]
    elif len(live) > 1:
        raise BadInput(
            f"source {label} streams its changes to {len(live)} Kinesis data streams ({listing}): pass "
            "--kinesis-stream-arn with the one the replicator reads (the app's KinesisOptions(stream_arn=...), or "
            "the source stack's data stream)"
        )
    elif live or len(destinations) == 1:
        destination = (live or destinations)[0]
    elif not destinations:
        raise BadInput(
            f"source {label} streams its changes to no Kinesis data stream, so the replicator would miss every "
            "change made during the copy: " + enable.format(_destination_command(ctx, "enable", None))
            + " (STREAM_ARN: the data stream the replicator reads, the app's KinesisOptions(stream_arn=...))"
        )
    else:
        raise BadInput(
            f"source {label} streams its changes to no Kinesis data stream now ({listing}): pass "
            "--kinesis-stream-arn with the one the replicator reads and "
            + enable.format(_destination_command(ctx, "enable", None))
        )
    status, arn = destination.get("DestinationStatus"), destination["StreamArn"]
    if status not in KINESIS_LIVE:
        reason = destination.get("DestinationStatusDescription")
        raise BadInput(
            f"the source's Kinesis streaming destination {arn} is {status}{f' ({reason})' if reason else ''}, so "
            f"the replicator would miss changes: " + enable.format(_destination_command(ctx, "enable", arn))
        )
    return destination


def _destination_command(ctx: _Context, verb: str, stream_arn: str | None) -> str:
    """``aws dynamodb {verb}-kinesis-streaming-destination`` for the source with microsecond timestamps."""
    args = ctx.args
    words = ["aws", "dynamodb", f"{verb}-kinesis-streaming-destination"]
    profile = args.source_profile or args.profile
    if profile:
        words += ["--profile", profile]
    words += ["--region", ctx.source.info.region, "--table-name", ctx.source.name]
    return (
        " ".join(shlex.quote(w) for w in words)
        + f" --stream-arn {shlex.quote(stream_arn) if stream_arn else 'STREAM_ARN'}"
        + f" --{verb}-kinesis-streaming-configuration ApproximateCreationDateTimePrecision=MICROSECOND"
    )


def _kinesis_retention_hours(ctx: _Context, arn: str) -> int | None:
    """RetentionPeriodHours of the data stream (DescribeStreamSummary, source credentials and region);
    ``None``, with a warning, when access is denied."""
    region = ctx.source.info.region
    try:
        summary = ctx.source_conn.client("kinesis", region).describe_stream_summary(StreamARN=arn)
    except Exception as exc:
        code = error_code(exc)
        if code in ACCESS_ERROR_CODES:
            ctx.warn(
                f"cannot read the retention of Kinesis data stream {arn} (kinesis:DescribeStreamSummary: "
                f"{error_message(exc)}): the deadline assumes 24 hours, Kinesis' minimum; grant "
                "kinesis:DescribeStreamSummary to the source side for the stream's own retention"
            )
            return None
        if code == "ResourceNotFoundException":
            raise BadInput(
                f"Kinesis data stream {arn} does not exist in {region} (kinesis:DescribeStreamSummary), but the "
                "source streams to it: check the ARN and the source credentials (--source-profile)"
            ) from None
        raise
    return int(summary["StreamDescriptionSummary"]["RetentionPeriodHours"])


def _retention_hours(ctx: _Context) -> int:
    """How long the change source keeps changes: 24 hours for a DynamoDB stream, else the recorded retention."""
    hours = ctx.state.data.get("streamRetentionHours") if ctx.kinesis else None
    return int(hours or STREAM_RETENTION_S // 3600)


def _retention_unread(ctx: _Context) -> str:
    """A note for texts that use :func:`_retention_hours` when a Kinesis retention had to be assumed."""
    if ctx.kinesis and ctx.state.data.get("streamRetentionRead") is False:
        return " (the data stream's retention could not be read: 24 hours is Kinesis' minimum)"
    return ""


def _step_kinesis_stream(ctx: _Context) -> None:
    """``stream`` with ``--change-source KINESIS``: the destination the precheck chose is ACTIVE."""
    arn = ctx.args.kinesis_stream_arn
    if (ctx.destination or {}).get("DestinationStatus") != "ACTIVE":

        def check() -> tuple[bool, Any, str]:
            status = str(_choose_destination(ctx, _kinesis_destinations(ctx)).get("DestinationStatus"))
            return status == "ACTIVE", None, status

        _wait(ctx, "waiting for the Kinesis streaming destination", check)
    ctx.finish("stream", f"streams to {arn}, kept {_retention_hours(ctx)} hours{_retention_unread(ctx)}")


def _step_stream(ctx: _Context) -> None:
    if ctx.kinesis:
        _step_kinesis_stream(ctx)
        return
    client, table = ctx.source.client, ctx.source.name
    if ctx.source.info.stream_view_type == "NEW_AND_OLD_IMAGES":
        ctx.finish("stream", "already on")
        return
    _ddb_call(
        "dynamodb:UpdateTable (StreamSpecification) on the source",
        client.update_table,
        TableName=table,
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )

    def check() -> tuple[bool, Any, str]:
        desc = _table_status(client, table)
        ready = desc.get("TableStatus") == "ACTIVE" and bool(desc.get("LatestStreamArn"))
        return ready, desc.get("LatestStreamArn"), str(desc.get("TableStatus"))

    stream_arn = _wait(ctx, "turning the source stream on", check)
    ctx.finish("stream", f"on: {stream_arn}", streamArn=stream_arn, streamEnabledAt=time.time())


def _step_pitr(ctx: _Context) -> None:
    client, table = ctx.source.client, ctx.source.name

    def status() -> str:
        d = client.describe_continuous_backups(TableName=table)["ContinuousBackupsDescription"]
        return str(d.get("PointInTimeRecoveryDescription", {}).get("PointInTimeRecoveryStatus", "DISABLED"))

    if status() == "ENABLED":
        ctx.finish("pitr", "already on")
        return
    _ddb_call(
        "dynamodb:UpdateContinuousBackups on the source",
        client.update_continuous_backups,
        TableName=table,
        PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True},
    )
    _wait(ctx, "turning point-in-time recovery on", lambda: (status() == "ENABLED", None, status()))
    ctx.finish("pitr", "on")


def _step_export(ctx: _Context) -> None:
    args, data = ctx.args, ctx.state.data
    client = ctx.source.client
    if "exportArn" not in data:
        data.setdefault("exportClientToken", str(uuid.uuid4()))
        data.setdefault("exportStartedAt", time.time())
        ctx.state.save()
        request: dict[str, Any] = {
            "TableArn": ctx.source.info.arn,
            "S3Bucket": args.s3_bucket,
            "S3Prefix": data["s3Prefix"],
            "ExportFormat": "DYNAMODB_JSON",
            "ClientToken": data["exportClientToken"],
        }
        if args.s3_bucket_owner:
            request["S3BucketOwner"] = args.s3_bucket_owner
        response = _ddb_call("dynamodb:ExportTableToPointInTime (and s3:PutObject on the bucket)",
                             client.export_table_to_point_in_time, **request)
        data["exportArn"] = response["ExportDescription"]["ExportArn"]
        ctx.state.save()
        ctx.note("export", "started", data["exportArn"])

    def check() -> tuple[bool, Any, str]:
        d = client.describe_export(ExportArn=data["exportArn"])["ExportDescription"]
        status = d["ExportStatus"]
        if status == "FAILED":
            raise WorkFailed(
                f"export {data['exportArn']} failed: {d.get('FailureCode')}: {d.get('FailureMessage')}; fix the "
                "cause (bucket policy, KMS key) and re-run with --restart"
            )
        return status == "COMPLETED", d, f"{status}, {d.get('ItemCount', 0):,} items so far"

    description = _wait(ctx, "exporting the source", check)
    data_prefix = _export_data_prefix(ctx, description)
    export_time = description.get("ExportTime")
    ctx.finish("export", f"{description.get('ItemCount', 0):,} items to s3://{args.s3_bucket}/{data_prefix}",
               exportDataPrefix=data_prefix, exportItemCount=description.get("ItemCount", 0),
               exportBytes=description.get("BilledSizeBytes"),
               exportTime=export_time.isoformat() if isinstance(export_time, datetime.datetime) else None)


def _export_data_prefix(ctx: _Context, description: dict[str, Any]) -> str:
    """The S3 prefix of the export's data files (``.../AWSDynamoDB/<export id>/data/``).

    AWS names the manifest in ``ExportManifest``; its folder holds ``data/``. Where that field is absent
    (emulators), the export's folder is found by listing ``<prefix>/AWSDynamoDB/``.
    """
    manifest = description.get("ExportManifest")
    if manifest:
        return posixpath.dirname(manifest) + "/data/"
    args = ctx.args
    s3 = ctx.source_s3()
    base = ctx.state.data["s3Prefix"].rstrip("/") + "/AWSDynamoDB/"
    request: dict[str, Any] = {"Bucket": args.s3_bucket, "Prefix": base}
    if args.s3_bucket_owner:
        request["ExpectedBucketOwner"] = args.s3_bucket_owner
    folders: set[str] = set()
    for page in s3.get_paginator("list_objects_v2").paginate(**request):
        for obj in page.get("Contents", []):
            head, sep, _ = obj["Key"].partition("/data/")
            if sep:
                folders.add(head + "/data/")
    export_id = ctx.state.data["exportArn"].rsplit("/", 1)[-1]
    named = [f for f in folders if f.endswith(f"/{export_id}/data/")]
    if named:
        return named[0]
    if len(folders) == 1:
        return folders.pop()
    raise WorkFailed(
        f"cannot tell which data folder under s3://{args.s3_bucket}/{base} belongs to export "
        f"{ctx.state.data['exportArn']} (found {sorted(folders) or 'none'}); use an empty --s3-prefix"
    )


def _creation_parameters(ctx: _Context) -> dict[str, Any]:
    """ImportTable's TableCreationParameters: the source's keys, GSIs, billing and capacity."""
    desc = ctx.source.info.description
    billing = (desc.get("BillingModeSummary") or {}).get("BillingMode", "PROVISIONED")
    params: dict[str, Any] = {
        "TableName": ctx.target_ref.name,
        "AttributeDefinitions": desc["AttributeDefinitions"],
        "KeySchema": desc["KeySchema"],
        "BillingMode": billing,
    }

    def capacity(section: dict[str, Any]) -> dict[str, int]:
        pt = section.get("ProvisionedThroughput") or {}
        return {"ReadCapacityUnits": int(pt["ReadCapacityUnits"]), "WriteCapacityUnits": int(pt["WriteCapacityUnits"])}

    if billing == "PROVISIONED":
        params["ProvisionedThroughput"] = capacity(desc)
    gsis = []
    for index in desc.get("GlobalSecondaryIndexes") or []:
        gsi: dict[str, Any] = {
            "IndexName": index["IndexName"],
            "KeySchema": index["KeySchema"],
            "Projection": index["Projection"],
        }
        if billing == "PROVISIONED":
            gsi["ProvisionedThroughput"] = capacity(index)
        gsis.append(gsi)
    if gsis:
        params["GlobalSecondaryIndexes"] = gsis
    return params


def _step_import(ctx: _Context) -> None:
    args, data = ctx.args, ctx.state.data
    client = ctx.target_conn.client("dynamodb", ctx.target_region)
    if "importArn" not in data:
        data.setdefault("importClientToken", str(uuid.uuid4()))
        ctx.state.save()
        source: dict[str, Any] = {"S3Bucket": args.s3_bucket, "S3KeyPrefix": data["exportDataPrefix"]}
        if args.s3_bucket_owner:
            source["S3BucketOwner"] = args.s3_bucket_owner
        response = _ddb_call(
            "dynamodb:ImportTable (and s3:GetObject/ListBucket on the bucket) in the target account",
            client.import_table,
            ClientToken=data["importClientToken"],
            S3BucketSource=source,
            InputFormat="DYNAMODB_JSON",
            InputCompressionType="GZIP",
            TableCreationParameters=_creation_parameters(ctx),
        )
        data["importArn"] = response["ImportTableDescription"]["ImportArn"]
        ctx.state.save()
        ctx.note("import", "started", data["importArn"])
    expected = int(data.get("exportItemCount") or 0)

    def check() -> tuple[bool, Any, str]:
        d = client.describe_import(ImportArn=data["importArn"])["ImportTableDescription"]
        status = d["ImportStatus"]
        if status in ("FAILED", "CANCELLED"):
            raise WorkFailed(
                f"import {data['importArn']} {status.lower()}: {d.get('FailureCode')}: {d.get('FailureMessage')} "
                f"({d.get('ErrorCount', 0)} bad items, see the import's CloudWatch log); delete the target table "
                "if it was created and re-run with --restart"
            )
        done = int(d.get("ImportedItemCount") or 0)
        return status == "COMPLETED", d, f"{status}, {done:,}/{expected:,} items imported"

    description = _wait(ctx, "importing into the target", check)
    # The table created by the import may still be CREATING for a moment after the import completes.
    _wait(ctx, "waiting for the target table",
          lambda: (_table_status(client, ctx.target_ref.api_name).get("TableStatus") == "ACTIVE", None, "CREATING"))
    imported = int(description.get("ImportedItemCount") or 0)
    errors = int(description.get("ErrorCount") or 0)
    ctx.finish("import", f"{imported:,} items imported, {errors} errors", importedItemCount=imported)
    if errors:
        raise WorkFailed(f"import {data['importArn']} skipped {errors} items; see its CloudWatch log")


def _step_ttl(ctx: _Context) -> None:
    source_ttl = ctx.source.client.describe_time_to_live(TableName=ctx.source.name)["TimeToLiveDescription"]
    if source_ttl.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING"):
        ctx.finish("ttl", "source has no TTL")
        return
    attribute = source_ttl["AttributeName"]
    client = ctx.target_conn.client("dynamodb", ctx.target_region)
    current = client.describe_time_to_live(TableName=ctx.target_ref.api_name)["TimeToLiveDescription"]
    if current.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING"):
        _ddb_call("dynamodb:UpdateTimeToLive on the target", client.update_time_to_live,
                  TableName=ctx.target_ref.api_name,
                  TimeToLiveSpecification={"Enabled": True, "AttributeName": attribute})
    ctx.finish("ttl", f"on {attribute!r}")


def _step_target_stream(ctx: _Context) -> None:
    client = ctx.target_conn.client("dynamodb", ctx.target_region)
    table = ctx.target_ref.api_name
    spec = _table_status(client, table).get("StreamSpecification") or {}
    if not spec.get("StreamEnabled"):
        _ddb_call("dynamodb:UpdateTable (StreamSpecification) on the target", client.update_table,
                  TableName=table,
                  StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"})
    arn = _wait(ctx, "turning the target stream on", lambda: _stream_ready(client, table))
    ctx.finish("target-stream", f"on: {arn}", targetStreamArn=arn)


def _stream_ready(client: Any, table: str) -> tuple[bool, Any, str]:
    desc = _table_status(client, table)
    return desc.get("TableStatus") == "ACTIVE" and bool(desc.get("LatestStreamArn")), desc.get("LatestStreamArn"), \
        str(desc.get("TableStatus"))


def _step_mapping(ctx: _Context, lambda_client: Any) -> None:
    uuid_ = ctx.args.event_source_mapping_uuid
    # The export holds every change up to its start; the stream must still hold every change after it.
    exported_at = ctx.state.data.get("exportStartedAt")
    hours, unread = _retention_hours(ctx), _retention_unread(ctx)
    if exported_at is None:
        ctx.err.write(
            "warning: no record of when the export started (no state file of a `migrate --export-only` run for "
            f"these tables here): if it started more than {hours} hours ago{unread}, the stream no longer holds the "
            "oldest changes, so run `cdk-replication verify SOURCE TARGET --repair` after the mapping catches up\n"
        )
    elif time.time() - exported_at > hours * 3600:
        ctx.err.write(
            f"warning: the export started {(time.time() - exported_at) / 3600:.0f} hours ago, more than {hours} "
            f"hours ago{unread}; stream records older than {hours} hours are gone, so run `cdk-replication verify "
            "SOURCE TARGET --repair` after the mapping catches up\n"
        )
    _ddb_call("lambda:UpdateEventSourceMapping", lambda_client.update_event_source_mapping, UUID=uuid_, Enabled=True)

    def check() -> tuple[bool, Any, str]:
        state = lambda_client.get_event_source_mapping(UUID=uuid_).get("State", "")
        return state == "Enabled", state, state

    _wait(ctx, "enabling the event source mapping", check)
    ctx.finish("mapping", f"{uuid_} enabled; it applies the stream from TRIM_HORIZON")


def _check_options(args: argparse.Namespace) -> None:
    """Refuse combinations of options that cannot work, before any AWS call (exit 2)."""
    if args.poll_interval <= 0:
        raise BadInput(f"--poll-interval must be greater than 0, got {args.poll_interval}")
    if args.export_only and args.after_import:
        raise BadInput(
            "--export-only and --after-import are two runs with a deploy in between: run --export-only, set "
            "MigrationOptions(export_arn=...) and `cdk deploy`, then run --after-import"
        )
    mode = "--export-only" if args.export_only else "--after-import" if args.after_import else None
    if mode and args.target_stream:
        raise BadInput(
            f"--target-stream does not go with {mode}: the replica stack owns the table's settings, so declare "
            "its stream in the construct instead"
        )
    if args.export_only and args.event_source_mapping_uuid:
        raise BadInput(
            "--export-only stops before the replica table exists, so the mapping cannot be enabled yet: drop "
            "--event-source-mapping-uuid here and pass it to the --after-import run after the deploy"
        )
    if args.after_import and not args.event_source_mapping_uuid:
        raise BadInput(
            "--after-import enables the replicator's mapping: pass --event-source-mapping-uuid UUID (the source "
            f"stack's output {MAPPING_OUTPUT})"
        )
    if args.after_import and (args.s3_bucket or args.s3_prefix or args.s3_bucket_owner):
        raise BadInput(
            "--after-import copies nothing and reads no bucket: drop --s3-bucket/--s3-prefix/--s3-bucket-owner"
        )
    if args.kinesis_stream_arn is not None and parse_kinesis_stream_arn(args.kinesis_stream_arn) is None:
        raise BadInput(
            f"--kinesis-stream-arn {args.kinesis_stream_arn!r} is not a Kinesis data stream ARN: use "
            "arn:aws:kinesis:<region>:<account>:stream/<name> (`aws kinesis describe-stream-summary --stream-name "
            "<name> --query StreamDescriptionSummary.StreamARN`)"
        )
    if args.kinesis_stream_arn and args.change_source == "DYNAMODB_STREAMS":
        raise BadInput(
            "--kinesis-stream-arn goes with --change-source KINESIS: drop one of them (a DynamoDB stream needs no ARN)"
        )


def _choose_change_source(ctx: _Context) -> None:
    """Settle ``--change-source``/``--kinesis-stream-arn``: given, kept in the state file, or the default."""
    args, data, path = ctx.args, ctx.state.data, ctx.state.path
    # A state file from before the option was recorded was written by a DynamoDB stream run.
    recorded = data.get("changeSource") or ("DYNAMODB_STREAMS" if data["done"] else None)
    if args.change_source and recorded and args.change_source != recorded:
        raise BadInput(
            f"state file {path} is for --change-source {recorded}, not {args.change_source}: use the app's "
            "change source, as the run that wrote it did, or --restart (or another --state-file)"
        )
    args.change_source = data["changeSource"] = args.change_source or recorded or "DYNAMODB_STREAMS"
    if args.kinesis_stream_arn and args.change_source != "KINESIS":
        raise BadInput(
            "--kinesis-stream-arn goes with --change-source KINESIS: "
            + (f"state file {path} is for {recorded}: drop --kinesis-stream-arn, or --restart" if recorded else
               "add it, or drop the ARN for a DynamoDB stream")
        )
    recorded_arn = data.get("kinesisStreamArn")
    if args.kinesis_stream_arn and recorded_arn and args.kinesis_stream_arn != recorded_arn:
        raise BadInput(
            f"state file {path} is for Kinesis data stream {recorded_arn}, not {args.kinesis_stream_arn}: use the "
            "same stream, or --restart"
        )
    args.kinesis_stream_arn = args.kinesis_stream_arn or recorded_arn


def _choose_bucket(ctx: _Context) -> None:
    """Settle ``--s3-bucket``/``--s3-prefix``/``--s3-bucket-owner`` (given, kept in the state file, or the
    construct's defaults) and say which were chosen."""
    args, data = ctx.args, ctx.state.data
    default_prefix = migration_export_prefix(ctx.source.info.ref.name, ctx.target_ref.name)
    data.setdefault("s3Prefix", (args.s3_prefix or default_prefix).strip("/"))
    if args.s3_bucket:
        how = "--s3-bucket"
    elif data.get("s3Bucket"):
        args.s3_bucket, how = data["s3Bucket"], "from the state file"
    else:
        account = ctx.target_ref.account or _target_account(ctx)
        args.s3_bucket = migration_bucket_name(ctx.target_ref.name, account, ctx.target_region)
        # The name is predictable, so anyone could create it first: write only into the target account's.
        args.s3_bucket_owner = args.s3_bucket_owner or account
        data["s3BucketDerived"] = True
        how = f"the construct's migration bucket of account {account} in {ctx.target_region}"
    data.setdefault("s3Bucket", args.s3_bucket)
    if data["s3Bucket"] != args.s3_bucket:
        raise BadInput(
            f"state file {ctx.state.path} is for bucket {data['s3Bucket']!r}, not {args.s3_bucket!r}: use the same "
            "bucket, or --restart"
        )
    args.s3_bucket_owner = args.s3_bucket_owner or data.get("s3BucketOwner")
    if args.s3_bucket_owner:
        data.setdefault("s3BucketOwner", args.s3_bucket_owner)
    owner = f", owner {args.s3_bucket_owner}" if args.s3_bucket_owner else ""
    if not args.quiet:  # not a step: the JSON document has s3Bucket and s3Prefix
        ctx.err.write(f"[bucket] chosen: s3://{args.s3_bucket}/{data['s3Prefix']}/ ({how}{owner})\n")


def _target_account(ctx: _Context) -> str:
    """The target credentials' account (sts:GetCallerIdentity), for the default bucket name."""
    try:
        return str(ctx.target_conn.client("sts", ctx.target_region).get_caller_identity()["Account"])
    except BadInput:
        raise
    except Exception as exc:
        raise BadInput(
            "cannot tell the target account for the default bucket name (sts:GetCallerIdentity with the target "
            f"credentials failed: {error_code(exc) or type(exc).__name__}: {error_message(exc)}): pass --s3-bucket, "
            "or name TARGET by its ARN (arn:aws:dynamodb:<region>:<account>:table/<name>)"
        ) from None


def cmd_migrate(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Run (or continue) a migration; see the module docstring for the steps."""
    _check_options(args)
    source_conn, target_conn = connections(args)
    described = describe_table(source_conn, TableRef.parse(args.source, "source"), "source")
    notes = say_unchecked(err, described)
    # Control-plane calls (and status polls) use botocore's own retries, unlike the data-plane client.
    source = TableHandle(described.info, source_conn.client("dynamodb", described.info.region))
    target_ref = TableRef.parse(args.target, "target")
    target_region = target_ref.region or target_conn.client("dynamodb", None).meta.region_name
    if target_ref.account:
        _check_target_account(target_conn, target_ref, target_region)
    state = StateFile(
        args.state_file
        or default_state_path(
            "migrate", source.info.region, source.info.ref.name, "to", target_region, target_ref.name
        ),
        {"command": "migrate", "source": source.info.arn, "target": target_ref.name, "targetRegion": target_region},
    )
    if args.restart:
        state.delete()
    data = state.load()
    data.setdefault("done", [])
    lambda_client = None
    if args.event_source_mapping_uuid:
        lambda_client = source_conn.client("lambda", args.mapping_region or source.info.region)
    log: list[dict[str, Any]] = []
    ctx = _Context(args, source, source_conn, target_ref, target_conn, target_region, state, err, log, notes=notes)
    _choose_change_source(ctx)
    if not args.after_import:
        _choose_bucket(ctx)
    _precheck(ctx, lambda_client)

    runners = {
        "stream": lambda: _step_stream(ctx),
        "pitr": lambda: _step_pitr(ctx),
        "export": lambda: _step_export(ctx),
        "import": lambda: _step_import(ctx),
        "ttl": lambda: _step_ttl(ctx),
        "target-stream": lambda: _step_target_stream(ctx) if args.target_stream else None,
        "mapping": lambda: _step_mapping(ctx, lambda_client) if lambda_client is not None else None,
    }
    steps = EXPORT_ONLY_STEPS if args.export_only else AFTER_IMPORT_STEPS if args.after_import else STEPS
    for step in steps:
        if ctx.done(step):
            ctx.note(step, "already done")
            continue
        runners[step]()
    if args.export_only:
        _report_export(ctx, out)
    elif args.after_import:
        _report_after_import(ctx, out)
    else:
        _report_migration(ctx, out)
    return EXIT_OK


def _summary(ctx: _Context, mode: str, **fields: Any) -> dict[str, Any]:
    data = ctx.state.data
    return {
        "command": "migrate",
        "mode": mode,
        "complete": True,
        "steps": ctx.log,
        "exportArn": data.get("exportArn"),
        "stateFile": str(ctx.state.path),
        "notes": ctx.notes,
        "changeSource": ctx.args.change_source,
        "streamRetentionHours": _retention_hours(ctx),
        **({"kinesisStreamArn": data.get("kinesisStreamArn")} if ctx.kinesis else {}),
        **fields,
    }


def _report_migration(ctx: _Context, out: TextIO) -> None:
    data, args = ctx.state.data, ctx.args
    if args.json:
        print_json(out, _summary(
            ctx, "full", importArn=data.get("importArn"), exportedItems=data.get("exportItemCount"),
            importedItems=data.get("importedItemCount"), s3Bucket=args.s3_bucket, s3Prefix=data["s3Prefix"],
        ))
        return
    out.write(
        f"migrated {ctx.source.info.label()} -> {ctx.target_ref.name} ({ctx.target_region}): "
        f"{data.get('importedItemCount', 0):,} items imported from {data.get('exportArn')}\n"
    )
    if not args.event_source_mapping_uuid:
        out.write("next: enable the replicator's event source mapping, then run `cdk-replication verify`\n")


def _rerun_command(ctx: _Context, *extra: str) -> str:
    """The ``migrate`` command line for the same tables and connection options, plus ``extra``."""
    args = ctx.args
    words = ["cdk-replication", "migrate", args.source, args.target]
    for option in ("region", "profile", "source_profile", "target_profile", "endpoint_url", "mapping_region",
                   "state_file"):
        value = getattr(args, option, None)
        if value:
            words += ["--" + option.replace("_", "-"), str(value)]
    if args.change_source == "KINESIS":  # also in the state file, but the command must work without it
        words += ["--change-source", "KINESIS", "--kinesis-stream-arn", args.kinesis_stream_arn]
    return " ".join(shlex.quote(w) for w in words) + "".join(" " + e for e in extra)


def _report_export(ctx: _Context, out: TextIO) -> None:
    """``--export-only``: where the export is and what to do next."""
    data, args = ctx.state.data, ctx.args
    options = [f'export_arn="{data["exportArn"]}"']
    if not data.get("s3BucketDerived"):
        options.append(f'bucket_name="{args.s3_bucket}"')
    if data["s3Prefix"] != migration_export_prefix(ctx.source.info.ref.name, ctx.target_ref.name):
        options.append(f'export_prefix="{data["s3Prefix"]}"')
    migration_options = f"MigrationOptions({', '.join(options)})"
    hours = _retention_hours(ctx)
    deadline = datetime.datetime.fromtimestamp(data["exportStartedAt"] + hours * 3600, datetime.timezone.utc)
    deadline_text = deadline.strftime("%Y-%m-%d %H:%M UTC")
    next_steps = [
        f"set migration={migration_options} on the replica {ctx.target_ref.name!r} and run `cdk deploy`: the "
        "replica stack creates the table from the export",
        "then start replication: "
        + _rerun_command(ctx, "--after-import", f"--event-source-mapping-uuid <{MAPPING_OUTPUT}>")
        + " (the UUID is an output of the source stack)",
        f"finish both before {deadline_text}: the source's stream keeps changes for 24 hours after the export started"
        if not ctx.kinesis else
        f"finish both before {deadline_text}: the Kinesis data stream {data['kinesisStreamArn']} keeps changes for "
        f"{hours} hours after the export started{_retention_unread(ctx)}",
    ]
    location = f"s3://{args.s3_bucket}/{data['s3Prefix']}/"
    if args.json:
        print_json(out, _summary(
            ctx, "export-only", s3Bucket=args.s3_bucket, s3Prefix=data["s3Prefix"], s3Location=location,
            exportDataLocation=f"s3://{args.s3_bucket}/{data['exportDataPrefix']}",
            exportedItems=data.get("exportItemCount"), exportedBytes=data.get("exportBytes"),
            exportTime=data.get("exportTime"), migrationOptions=migration_options, deadline=deadline.isoformat(),
            nextSteps=next_steps,
        ))
        return
    size = f", {data['exportBytes']:,} bytes" if data.get("exportBytes") is not None else ""
    out.write(
        f"exported {ctx.source.info.label()}: {data.get('exportItemCount') or 0:,} items{size}\n"
        f"  export ARN:  {data['exportArn']}\n"
        f"  location:    {location}\n"
        f"  data files:  s3://{args.s3_bucket}/{data['exportDataPrefix']}\n"
        "next:\n" + numbered(next_steps)
    )


def _report_after_import(ctx: _Context, out: TextIO) -> None:
    """``--after-import``: replication runs; keep the app saying so."""
    uuid_ = ctx.args.event_source_mapping_uuid
    advice = [
        "set replicator=ReplicatorOptions(enabled=True) in the app before the next `cdk deploy`, or that deploy "
        "disables the mapping again",
        "run `cdk-replication verify SOURCE TARGET` once the replicator's IteratorAge is near zero",
    ]
    if ctx.args.json:
        print_json(out, _summary(ctx, "after-import", eventSourceMapping=uuid_, nextSteps=advice))
        return
    out.write(
        f"replication started: {ctx.source.info.label()} -> {ctx.target_ref.name} ({ctx.target_region}); mapping "
        f"{uuid_} applies the stream from TRIM_HORIZON over the imported copy\n"
        "next:\n" + numbered(advice)
    )
