"""``--change-source KINESIS``: the source's Kinesis streaming destination, its data stream and retention."""

from __future__ import annotations

import shlex
from typing import Any

from cdk_replication.cli.errors import ACCESS_ERROR_CODES, BadInput, error_code, error_message
from cdk_replication.cli.migrate.context import STREAM_RETENTION_S, Context

#: Kinesis streaming destination states: changes flow, or will once it is ACTIVE (``stream`` waits for it).
KINESIS_LIVE = ("ACTIVE", "ENABLING", "UPDATING")


def check_kinesis(ctx: Context) -> None:
    """``--change-source KINESIS``: the source streams to one data stream, not off or failed (else exit 2).

    Chooses the destination (``--kinesis-stream-arn`` among several; ENABLING is left to the ``stream`` step
    to wait for), warns of millisecond timestamps, and reads the stream's retention unless the state file
    has it.
    """
    args, data = ctx.args, ctx.state.data
    destination = choose_destination(ctx, kinesis_destinations(ctx))
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


def kinesis_destinations(ctx: Context) -> list[dict[str, Any]]:
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


def choose_destination(ctx: Context, destinations: list[dict[str, Any]]) -> dict[str, Any]:
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


def _destination_command(ctx: Context, verb: str, stream_arn: str | None) -> str:
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


def _kinesis_retention_hours(ctx: Context, arn: str) -> int | None:
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
