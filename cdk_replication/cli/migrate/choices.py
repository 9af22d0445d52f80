"""What a run uses where the options leave a choice: the change source and the export's bucket, taken from
the options, the state file (a re-run keeps the first run's choice) or the construct's defaults."""

from __future__ import annotations

from cdk_replication.cli.errors import BadInput, error_code, error_message
from cdk_replication.cli.migrate.context import Context
from cdk_replication.physical_names import migration_bucket_name, migration_export_prefix


def choose_change_source(ctx: Context) -> None:
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


def choose_bucket(ctx: Context) -> None:
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


def _target_account(ctx: Context) -> str:
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
