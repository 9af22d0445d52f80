"""What ``migrate`` prints when it finishes: a summary line and the next steps, or one ``--json`` document."""

from __future__ import annotations

import datetime
import shlex
from typing import Any, TextIO

from cdk_replication.cli.migrate.context import MAPPING_OUTPUT, Context
from cdk_replication.cli.output import numbered, print_json
from cdk_replication.physical_names import migration_export_prefix


def report(ctx: Context, out: TextIO) -> None:
    """The result of this run on ``out``: of ``--export-only``, of ``--after-import``, or of a full migration."""
    if ctx.args.export_only:
        _report_export(ctx, out)
    elif ctx.args.after_import:
        _report_after_import(ctx, out)
    else:
        _report_migration(ctx, out)


def _summary(ctx: Context, mode: str, **fields: Any) -> dict[str, Any]:
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
        "streamRetentionHours": ctx.retention_hours(),
        **({"kinesisStreamArn": data.get("kinesisStreamArn")} if ctx.kinesis else {}),
        **fields,
    }


def _report_migration(ctx: Context, out: TextIO) -> None:
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


def _rerun_command(ctx: Context, *extra: str) -> str:
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


def _report_export(ctx: Context, out: TextIO) -> None:
    """``--export-only``: where the export is and what to do next."""
    data, args = ctx.state.data, ctx.args
    options = [f'export_arn="{data["exportArn"]}"']
    if not data.get("s3BucketDerived"):
        options.append(f'bucket_name="{args.s3_bucket}"')
    if data["s3Prefix"] != migration_export_prefix(ctx.source.info.ref.name, ctx.target_ref.name):
        options.append(f'export_prefix="{data["s3Prefix"]}"')
    migration_options = f"MigrationOptions({', '.join(options)})"
    hours = ctx.retention_hours()
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
        f"{hours} hours after the export started{ctx.retention_unread()}",
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


def _report_after_import(ctx: Context, out: TextIO) -> None:
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
