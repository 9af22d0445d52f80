"""``migrate --export-only`` / ``--after-import``: the two runs around the construct's import, against moto.

The replica stack's import (CloudFormation ``ImportSourceSpecification``) is stood in for by an ImportTable
call of the export's data folder, which is what CloudFormation asks DynamoDB to do.

Besides what test_migrate.py lists as beyond moto: moto's DescribeExport has no ``ExportTime`` and its
export ARNs do not end in the export's folder id, and bucket owners are not checked, so the default
``--s3-bucket-owner`` is only seen in the output here.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from botocore.exceptions import ClientError

from cdk_replication.cli.migrate import choices as migrate  # where the command line names the bucket
from cdk_replication.cli.tables import Connection

from .test_migrate import ACCOUNT, REGION, _all_items, _bucket, _function_with_mapping, _source, aws, moto_url, run

__all__ = ["aws", "moto_url"]  # fixtures, imported for pytest

DEFAULT_BUCKET = f"invoices-replica-migration-{ACCOUNT}-{REGION}"
BOOKS_BUCKET = f"books-replica-migration-{ACCOUNT}-{REGION}"


def _hook(monkeypatch: pytest.MonkeyPatch, event: str, handler: Any) -> None:
    """Register ``handler`` for the botocore ``event`` on every client the command creates."""
    original = Connection.client

    def client(self: Connection, service: str, region: str | None, **kwargs: Any) -> Any:
        made = original(self, service, region, **kwargs)
        made.meta.events.register(event, handler)
        return made

    monkeypatch.setattr(Connection, "client", client)


def _stack_import(aws: dict[str, Any], table: str, bucket: str, data_location: str, source: str = "invoices") -> None:
    """What the replica stack's deploy does with ``export_arn`` set: create ``table`` from the export of ``source``."""
    prefix = data_location.removeprefix(f"s3://{bucket}/")
    ddb = aws["dynamodb"]
    description = ddb.describe_table(TableName=source)["Table"]
    keys = {k["AttributeName"] for k in description["KeySchema"]}
    definitions = [a for a in description["AttributeDefinitions"] if a["AttributeName"] in keys]
    arn = ddb.import_table(
        S3BucketSource={"S3Bucket": bucket, "S3KeyPrefix": prefix}, InputFormat="DYNAMODB_JSON",
        InputCompressionType="GZIP",
        TableCreationParameters={"TableName": table, "AttributeDefinitions": definitions,
                                 "KeySchema": description["KeySchema"], "BillingMode": "PAY_PER_REQUEST"},
    )["ImportTableDescription"]["ImportArn"]
    for _ in range(200):
        if ddb.describe_import(ImportArn=arn)["ImportTableDescription"]["ImportStatus"] == "COMPLETED":
            return
        time.sleep(0.05)
    raise AssertionError("moto's import did not complete")


def _exports(aws: dict[str, Any]) -> int:
    arn = aws["dynamodb"].describe_table(TableName="invoices")["Table"]["TableArn"]
    return len(aws["dynamodb"].list_exports(TableArn=arn)["ExportSummaries"])


def test_export_only_then_after_import(aws, monkeypatch) -> None:
    items = _source(aws, "invoices")
    _bucket(aws, DEFAULT_BUCKET)
    target = f"{REGION}:invoices-replica"

    # An interruption right after the export request, before its ARN reached the state file.
    tokens: list[str] = []
    answers: dict[str, Any] = {}

    def record(params: dict[str, Any], **_: Any) -> None:
        tokens.append(params["ClientToken"])

    def interrupt(http_response: Any, parsed: Any, **_: Any) -> None:
        answers[tokens[-1]] = (http_response, parsed)
        raise KeyboardInterrupt

    def idempotent(**_: Any) -> Any:
        # What DynamoDB does with a repeated ClientToken (moto does not): the first export's answer.
        return answers.get(tokens[-1])

    _hook(monkeypatch, "provide-client-params.dynamodb.ExportTableToPointInTime", record)
    with monkeypatch.context() as crash:
        _hook(crash, "after-call.dynamodb.ExportTableToPointInTime", interrupt)
        code, _, first_err = run(aws, "invoices", target, "--export-only")
    assert code == 130, first_err
    assert f"s3://{DEFAULT_BUCKET}/cdk-replication/invoices/invoices-replica/ (the construct's migration bucket of " \
        f"account {ACCOUNT} in {REGION}, owner {ACCOUNT})" in first_err
    assert _exports(aws) == 1
    _hook(monkeypatch, "before-call.dynamodb.ExportTableToPointInTime", idempotent)
    code, out, err = run(aws, "invoices", target, "--export-only", "--json")
    assert code == 0, err
    assert len(tokens) == 2 and tokens[0] == tokens[1]

    doc = json.loads(out)
    assert doc["mode"] == "export-only"
    assert [s["step"] for s in doc["steps"] if s["status"] == "done"] == ["export"]
    assert (doc["s3Bucket"], doc["s3Prefix"]) == (DEFAULT_BUCKET, "cdk-replication/invoices/invoices-replica")
    assert "(from the state file, owner 123456789012)" in err
    assert doc["exportedItems"] == 25
    assert doc["migrationOptions"] == f'MigrationOptions(export_arn="{doc["exportArn"]}")'
    assert "--after-import --event-source-mapping-uuid" in doc["nextSteps"][1]
    assert "invoices-replica" not in aws["dynamodb"].list_tables()["TableNames"]
    keys = [o["Key"] for o in aws["s3"].list_objects_v2(Bucket=DEFAULT_BUCKET)["Contents"]]
    assert keys and all(k.startswith("cdk-replication/invoices/invoices-replica/AWSDynamoDB/") for k in keys)
    exports = _exports(aws)

    # Done: the same command prints the result again (human form) and starts nothing.
    code, out, err = run(aws, "invoices", target, "--export-only")
    assert code == 0, err
    assert f"export ARN:  {doc['exportArn']}" in out and "25 items" in out
    assert f'migration=MigrationOptions(export_arn="{doc["exportArn"]}")' in out
    assert "cdk-replication migrate invoices eu-west-1:invoices-replica --endpoint-url" in out
    assert "--after-import --event-source-mapping-uuid <ReplicatorEventSourceMappingUuid>" in out
    assert "finish both before" in out
    assert _exports(aws) == exports

    # The second deploy creates the table from the export; the replicator's mapping waits, disabled.
    _stack_import(aws, "invoices-replica", DEFAULT_BUCKET, doc["exportDataLocation"])
    stream_arn = aws["dynamodb"].describe_table(TableName="invoices")["Table"]["LatestStreamArn"]
    mapping = _function_with_mapping(aws, stream_arn, "invoices-replicator")

    code, out, err = run(aws, "invoices", target, "--after-import", "--event-source-mapping-uuid", mapping, "--json")
    assert code == 0, err
    after = json.loads(out)
    assert [(s["step"], s["status"]) for s in after["steps"]] == [("target", "checked"), ("mapping", "done")]
    assert after["exportArn"] == doc["exportArn"] and "ReplicatorOptions(enabled=True)" in after["nextSteps"][0]
    assert "warning" not in err
    assert aws["lambda"].get_event_source_mapping(UUID=mapping)["State"] == "Enabled"
    assert _exports(aws) == exports
    assert _all_items(aws, "invoices-replica") == {(it["pk"]["S"], it["sk"]["N"]): it for it in items}

    # Enabled more than a day after the export: changes are lost, and the command says what to do.
    state_path = doc["stateFile"]
    state = json.load(open(state_path))
    state["done"].remove("mapping")
    state["exportStartedAt"] -= 25 * 3600
    json.dump(state, open(state_path, "w"))
    aws["lambda"].update_event_source_mapping(UUID=mapping, Enabled=False)
    code, out, err = run(aws, "invoices", target, "--after-import", "--event-source-mapping-uuid", mapping)
    assert code == 0, err
    assert "export started 25 hours ago, more than 24 hours" in err and "verify SOURCE TARGET --repair" in err
    assert "ReplicatorOptions(enabled=True)" in out

    # No state file from the export (exported elsewhere): the command cannot tell, and says so.
    code, out, err = run(aws, "invoices", target, "--after-import", "--event-source-mapping-uuid", mapping,
                         "--state-file", "elsewhere.json")
    assert code == 0, err
    assert "no record of when the export started" in err


def test_default_bucket_follows_the_target_account_and_must_exist(aws, monkeypatch) -> None:
    _source(aws, "shop")
    arn_target = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/shop-copy"
    code, _, err = run(aws, "shop", arn_target, "--export-only")
    assert code == 2
    assert f"S3 bucket 'shop-copy-migration-{ACCOUNT}-{REGION}' (the construct's default migration bucket" in err
    assert "deploy the replica stack with migration=MigrationOptions() first" in err

    def refuse(**_: Any) -> None:
        raise ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, "GetCallerIdentity")

    _hook(monkeypatch, "before-call.sts.GetCallerIdentity", refuse)
    code, _, err = run(aws, "shop", "shop-copy", "--export-only")
    assert code == 2
    assert "cannot tell the target account" in err and "pass --s3-bucket, or name TARGET by its ARN" in err
    # An explicit bucket needs no account.
    _bucket(aws, "explicit-construct-test")
    code, out, err = run(aws, "shop", "shop-copy", "--export-only", "--s3-bucket", "explicit-construct-test",
                         "--s3-prefix", "x/y", "--json")
    assert code == 0, err
    assert json.loads(out)["migrationOptions"].endswith('bucket_name="explicit-construct-test", export_prefix="x/y")')

    desc = aws["dynamodb"].describe_table(TableName="shop")["Table"]
    assert desc["StreamSpecification"]["StreamViewType"] == "NEW_AND_OLD_IMAGES"


def test_bad_input_for_the_two_runs_changes_nothing(aws) -> None:
    _source(aws, "books")
    _source(aws, "books-replica")  # "already there": for --export-only it must not be
    _bucket(aws, BOOKS_BUCKET)
    ddb = aws["dynamodb"]
    ddb.create_table(
        TableName="other-keys", KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}], BillingMode="PAY_PER_REQUEST",
    )
    uuid_ = "00000000-0000-0000-0000-000000000000"
    cases = [
        (["books-replica", "--export-only"], "with --export-only the replica stack creates it"),
        (["books-new", "--export-only", "--after-import"], "--export-only and --after-import are two runs"),
        (["books-new", "--export-only", "--event-source-mapping-uuid", uuid_], "pass it to the --after-import run"),
        (["books-new", "--export-only", "--target-stream"], "declare its stream in the construct"),
        (["books-replica", "--after-import"], "pass --event-source-mapping-uuid UUID"),
        (["books-replica", "--after-import", "--event-source-mapping-uuid", uuid_, "--s3-bucket", "b"],
         "drop --s3-bucket"),
        (["books-new", "--after-import", "--event-source-mapping-uuid", uuid_],
         "'books-new' does not exist in eu-west-1: set MigrationOptions(export_arn=...)"),
        (["other-keys", "--after-import", "--event-source-mapping-uuid", uuid_], "key schema mismatch"),
        (["books", "--after-import", "--event-source-mapping-uuid", uuid_], "the same table"),
        # The tables are right, but the source has no stream for a mapping to read.
        (["books-replica", "--after-import", "--event-source-mapping-uuid", uuid_], "the source has no stream yet"),
    ]
    for extra, message in cases:
        code, out, err = run(aws, "books", *extra)
        assert (code, message in err) == (2, True), (extra, err)

    desc = ddb.describe_table(TableName="books")["Table"]
    assert not (desc.get("StreamSpecification") or {}).get("StreamEnabled")
    pitr = ddb.describe_continuous_backups(TableName="books")["ContinuousBackupsDescription"]
    assert pitr["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] == "DISABLED"
    assert "Contents" not in aws["s3"].list_objects_v2(Bucket=BOOKS_BUCKET)
    assert "books-new" not in ddb.list_tables()["TableNames"]


def test_bucket_name_is_the_constructs() -> None:
    """The command line derives the bucket with the constructs' own function (no aws_cdk import needed)."""
    import subprocess
    import sys

    from cdk_replication.naming import migration_bucket_name

    assert migrate.migration_bucket_name is migration_bucket_name
    assert migrate.migration_bucket_name("Orders_V2.prod", "222222222222", "eu-west-1") == (
        "orders-v2-prod-migration-222222222222-eu-west-1"
    )
    long_name = migrate.migration_bucket_name("a-very-long-table-name-that-pushes-the-bucket-name-over-the-limit",
                                              "444444444444", "us-gov-west-1")
    assert len(long_name) == 63 and long_name[-9] == "-"
    # The command line itself must not load aws_cdk (and its Node.js runtime) to name the bucket.
    probe = "import sys, cdk_replication.cli.migrate; sys.exit('aws_cdk' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", probe], check=False).returncode == 0


