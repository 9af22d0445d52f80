"""Refusals before anything is changed (exit 2): option combinations first, before any AWS call, then the
source, the target, the bucket and the replicator's mapping as AWS describes them."""

from __future__ import annotations

import argparse
from typing import Any

from cdk_replication.cli.errors import ACCESS_ERROR_CODES, BadInput, error_code, error_message
from cdk_replication.cli.migrate.context import MAPPING_OUTPUT, Context, table_status
from cdk_replication.cli.migrate.kinesis import check_kinesis
from cdk_replication.cli.tables import Connection, TableRef, key_schema_of
from cdk_replication.physical_names import parse_kinesis_stream_arn


def check_options(args: argparse.Namespace) -> None:
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


def check_target_account(conn: Connection, ref: TableRef, region: str) -> None:
    """ImportTable creates the table in the credentials' own account: it must be the one the ARN names."""
    identity = conn.client("sts", region).get_caller_identity()
    if identity["Account"] != ref.account:
        raise BadInput(
            f"target {ref.arn} is in account {ref.account}, but the target credentials belong to account "
            f"{identity['Account']}: pass --target-profile for account {ref.account}"
        )


def precheck(ctx: Context, lambda_client: Any | None) -> None:
    """Refuse bad input before anything is changed (exit 2): the source's indexes and change source, the
    target (absent, or with ``--after-import`` imported), the bucket, and the replicator's mapping."""
    args = ctx.args
    _check_source(ctx)
    if args.after_import:
        _check_imported_target(ctx)
    elif "exportArn" not in ctx.state.data:
        _check_bucket(ctx)
    if _creates_target(ctx):
        _check_target_absent(ctx)
    if args.event_source_mapping_uuid and lambda_client is not None and not ctx.done("mapping"):
        _check_mapping(ctx, lambda_client)


def _check_source(ctx: Context) -> None:
    """The source can be imported from (no LSIs) and its change source suits the replicator."""
    source = ctx.source
    desc = source.info.description
    if desc.get("LocalSecondaryIndexes") and not ctx.args.after_import:
        names = ", ".join(i["IndexName"] for i in desc["LocalSecondaryIndexes"])
        raise BadInput(
            f"source {source.info.label()} has local secondary indexes ({names}), which ImportTable cannot "
            "create: create the target with its LSIs yourself (or deploy it with the replica stack) and use "
            "`cdk-replication backfill` instead"
        )
    view = source.info.stream_view_type
    if ctx.kinesis:
        check_kinesis(ctx)
    elif view is not None and view != "NEW_AND_OLD_IMAGES":
        raise BadInput(
            f"source {source.info.label()} has a {view} stream; the replicator needs NEW_AND_OLD_IMAGES. "
            "Changing the view type means turning the stream off and on, which starts a new stream: do it "
            "deliberately, then re-run"
        )


def _creates_target(ctx: Context) -> bool:
    """True while TARGET is still to be created (by the import, or by the replica stack from the export)."""
    if ctx.args.export_only:
        # The stack creates TARGET from the export: it must not exist before, and may exist after.
        return not ctx.done("export")
    return not ctx.args.after_import and not ctx.done("import") and "importArn" not in ctx.state.data


def _check_target_absent(ctx: Context) -> None:
    """TARGET does not exist yet: migrate (or the replica stack) creates it."""
    try:
        table_status(ctx.target_dynamodb(), ctx.target_ref.api_name)
    except Exception as exc:
        code = error_code(exc)
        if code in ACCESS_ERROR_CODES:
            raise BadInput(
                f"access denied: DescribeTable on target {ctx.target_ref.name!r} in {ctx.target_region} "
                f"({error_message(exc)}); check --target-profile"
            ) from None
        if code != "ResourceNotFoundException":
            raise
        return
    if ctx.args.export_only:
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


def _check_mapping(ctx: Context, lambda_client: Any) -> None:
    """The replicator's mapping reads the source's change source from TRIM_HORIZON (a warning when it is
    already enabled before the target exists)."""
    args = ctx.args
    uuid_ = args.event_source_mapping_uuid
    if ctx.source.info.stream_view_type is None and not ctx.kinesis:
        raise BadInput(
            "the source has no stream yet, so the mapping cannot be reading it: turn the stream on, deploy "
            "the replica stack (mapping disabled), then run migrate with its UUID"
        )
    mapping = _get_mapping(lambda_client, uuid_)
    stream_arn = args.kinesis_stream_arn if ctx.kinesis else ctx.source.info.description.get("LatestStreamArn")
    if ctx.kinesis and mapping.get("EventSourceArn") != stream_arn:
        raise BadInput(
            f"mapping {uuid_} reads {mapping.get('EventSourceArn')}, not the Kinesis "
            f"data stream the source streams to ({stream_arn}): check --kinesis-stream-arn and the app's "
            "KinesisOptions, and pass the UUID of the mapping on that stream"
        )
    if mapping.get("EventSourceArn") != stream_arn:
        raise BadInput(
            f"mapping {uuid_} reads {mapping.get('EventSourceArn')}, not the source's "
            f"current stream {stream_arn}: redeploy the replica stack so it uses the current stream"
        )
    if mapping.get("StartingPosition") not in (None, "TRIM_HORIZON"):
        raise BadInput(
            f"mapping {uuid_} starts at {mapping.get('StartingPosition')}; it must "
            "start at TRIM_HORIZON so the changes made during the copy are applied"
        )
    if mapping.get("State") not in ("Disabled", "Disabling") and not args.after_import:
        ctx.err.write(
            f"warning: mapping {uuid_} is {mapping.get('State')}: it may already "
            "fail writes to the target that does not exist yet (they go to its on-failure destination)\n"
        )


def _get_mapping(lambda_client: Any, uuid_: str) -> dict[str, Any]:
    """GetEventSourceMapping; a missing mapping or a refusal is bad input."""
    try:
        return lambda_client.get_event_source_mapping(UUID=uuid_)  # type: ignore[no-any-return]
    except Exception as exc:
        code = error_code(exc)
        if code == "ResourceNotFoundException":
            raise BadInput(
                f"event source mapping {uuid_} does not exist in "
                f"{lambda_client.meta.region_name}: check the UUID (`aws lambda list-event-source-mappings`) "
                "and --mapping-region"
            ) from None
        if code in ACCESS_ERROR_CODES:
            raise BadInput(
                f"access denied: lambda:GetEventSourceMapping ({error_message(exc)}); grant it or drop "
                "--event-source-mapping-uuid and enable the mapping yourself"
            ) from None
        raise


def _check_bucket(ctx: Context) -> None:
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


def _check_imported_target(ctx: Context) -> None:
    """``--after-import``: TARGET exists, is ACTIVE and has SOURCE's key schema (else exit 2)."""
    client = ctx.target_dynamodb()
    name, region = ctx.target_ref.name, ctx.target_region
    try:
        desc = table_status(client, ctx.target_ref.api_name)
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
