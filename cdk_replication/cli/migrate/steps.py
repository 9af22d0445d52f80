"""The steps of a migration, in order; each is recorded in the state file when finished (see the package
docstring), so a re-run skips what is done."""

from __future__ import annotations

import datetime
import posixpath
import time
import uuid
from typing import Any

from cdk_replication.cli.errors import WorkFailed
from cdk_replication.cli.migrate.context import Context, ddb_call, table_status, wait
from cdk_replication.cli.migrate.kinesis import choose_destination, kinesis_destinations

STEPS = ("stream", "pitr", "export", "import", "ttl", "target-stream", "mapping")
#: The steps of ``--export-only`` and ``--after-import`` (the construct's stack imports in between).
EXPORT_ONLY_STEPS = ("stream", "pitr", "export")
AFTER_IMPORT_STEPS = ("mapping",)


def _step_kinesis_stream(ctx: Context) -> None:
    """``stream`` with ``--change-source KINESIS``: the destination the precheck chose is ACTIVE."""
    arn = ctx.args.kinesis_stream_arn
    if (ctx.destination or {}).get("DestinationStatus") != "ACTIVE":

        def check() -> tuple[bool, Any, str]:
            status = str(choose_destination(ctx, kinesis_destinations(ctx)).get("DestinationStatus"))
            return status == "ACTIVE", None, status

        wait(ctx, "waiting for the Kinesis streaming destination", check)
    ctx.finish("stream", f"streams to {arn}, kept {ctx.retention_hours()} hours{ctx.retention_unread()}")


def _step_stream(ctx: Context) -> None:
    if ctx.kinesis:
        _step_kinesis_stream(ctx)
        return
    client, table = ctx.source.client, ctx.source.name
    if ctx.source.info.stream_view_type == "NEW_AND_OLD_IMAGES":
        ctx.finish("stream", "already on")
        return
    ddb_call(
        "dynamodb:UpdateTable (StreamSpecification) on the source",
        client.update_table,
        TableName=table,
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )

    def check() -> tuple[bool, Any, str]:
        desc = table_status(client, table)
        ready = desc.get("TableStatus") == "ACTIVE" and bool(desc.get("LatestStreamArn"))
        return ready, desc.get("LatestStreamArn"), str(desc.get("TableStatus"))

    stream_arn = wait(ctx, "turning the source stream on", check)
    ctx.finish("stream", f"on: {stream_arn}", streamArn=stream_arn, streamEnabledAt=time.time())


def _step_pitr(ctx: Context) -> None:
    client, table = ctx.source.client, ctx.source.name

    def status() -> str:
        d = client.describe_continuous_backups(TableName=table)["ContinuousBackupsDescription"]
        return str(d.get("PointInTimeRecoveryDescription", {}).get("PointInTimeRecoveryStatus", "DISABLED"))

    if status() == "ENABLED":
        ctx.finish("pitr", "already on")
        return
    ddb_call(
        "dynamodb:UpdateContinuousBackups on the source",
        client.update_continuous_backups,
        TableName=table,
        PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True},
    )
    wait(ctx, "turning point-in-time recovery on", lambda: (status() == "ENABLED", None, status()))
    ctx.finish("pitr", "on")


def _step_export(ctx: Context) -> None:
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
        response = ddb_call("dynamodb:ExportTableToPointInTime (and s3:PutObject on the bucket)",
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

    description = wait(ctx, "exporting the source", check)
    data_prefix = _export_data_prefix(ctx, description)
    export_time = description.get("ExportTime")
    ctx.finish("export", f"{description.get('ItemCount', 0):,} items to s3://{args.s3_bucket}/{data_prefix}",
               exportDataPrefix=data_prefix, exportItemCount=description.get("ItemCount", 0),
               exportBytes=description.get("BilledSizeBytes"),
               exportTime=export_time.isoformat() if isinstance(export_time, datetime.datetime) else None)


def _export_data_prefix(ctx: Context, description: dict[str, Any]) -> str:
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


def _creation_parameters(ctx: Context) -> dict[str, Any]:
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


def _step_import(ctx: Context) -> None:
    args, data = ctx.args, ctx.state.data
    client = ctx.target_dynamodb()
    if "importArn" not in data:
        data.setdefault("importClientToken", str(uuid.uuid4()))
        ctx.state.save()
        source: dict[str, Any] = {"S3Bucket": args.s3_bucket, "S3KeyPrefix": data["exportDataPrefix"]}
        if args.s3_bucket_owner:
            source["S3BucketOwner"] = args.s3_bucket_owner
        response = ddb_call(
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

    description = wait(ctx, "importing into the target", check)
    # The table created by the import may still be CREATING for a moment after the import completes.
    wait(ctx, "waiting for the target table",
          lambda: (table_status(client, ctx.target_ref.api_name).get("TableStatus") == "ACTIVE", None, "CREATING"))
    imported = int(description.get("ImportedItemCount") or 0)
    errors = int(description.get("ErrorCount") or 0)
    ctx.finish("import", f"{imported:,} items imported, {errors} errors", importedItemCount=imported)
    if errors:
        raise WorkFailed(f"import {data['importArn']} skipped {errors} items; see its CloudWatch log")


def _step_ttl(ctx: Context) -> None:
    source_ttl = ctx.source.client.describe_time_to_live(TableName=ctx.source.name)["TimeToLiveDescription"]
    if source_ttl.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING"):
        ctx.finish("ttl", "source has no TTL")
        return
    attribute = source_ttl["AttributeName"]
    client = ctx.target_dynamodb()
    current = client.describe_time_to_live(TableName=ctx.target_ref.api_name)["TimeToLiveDescription"]
    if current.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING"):
        ddb_call("dynamodb:UpdateTimeToLive on the target", client.update_time_to_live,
                  TableName=ctx.target_ref.api_name,
                  TimeToLiveSpecification={"Enabled": True, "AttributeName": attribute})
    ctx.finish("ttl", f"on {attribute!r}")


def _step_target_stream(ctx: Context) -> None:
    client = ctx.target_dynamodb()
    table = ctx.target_ref.api_name
    spec = table_status(client, table).get("StreamSpecification") or {}
    if not spec.get("StreamEnabled"):
        ddb_call("dynamodb:UpdateTable (StreamSpecification) on the target", client.update_table,
                  TableName=table,
                  StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"})
    arn = wait(ctx, "turning the target stream on", lambda: _stream_ready(client, table))
    ctx.finish("target-stream", f"on: {arn}", targetStreamArn=arn)


def _stream_ready(client: Any, table: str) -> tuple[bool, Any, str]:
    desc = table_status(client, table)
    return desc.get("TableStatus") == "ACTIVE" and bool(desc.get("LatestStreamArn")), desc.get("LatestStreamArn"), \
        str(desc.get("TableStatus"))


def _step_mapping(ctx: Context, lambda_client: Any) -> None:
    uuid_ = ctx.args.event_source_mapping_uuid
    # The export holds every change up to its start; the stream must still hold every change after it.
    exported_at = ctx.state.data.get("exportStartedAt")
    hours, unread = ctx.retention_hours(), ctx.retention_unread()
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
    ddb_call("lambda:UpdateEventSourceMapping", lambda_client.update_event_source_mapping, UUID=uuid_, Enabled=True)

    def check() -> tuple[bool, Any, str]:
        state = lambda_client.get_event_source_mapping(UUID=uuid_).get("State", "")
        return state == "Enabled", state, state

    wait(ctx, "enabling the event source mapping", check)
    ctx.finish("mapping", f"{uuid_} enabled; it applies the stream from TRIM_HORIZON")


def run_steps(ctx: Context, lambda_client: Any | None) -> None:
    """Take each step of this run that the state file does not record as done, in order.

    ``target-stream`` runs only with ``--target-stream``, ``mapping`` only with a ``lambda_client``
    (``--event-source-mapping-uuid``); skipped, they are not recorded.
    """
    args = ctx.args
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
