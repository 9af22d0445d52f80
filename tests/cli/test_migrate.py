"""``migrate`` against a moto server, which implements DynamoDB export/import, S3 and Lambda mappings.

What moto does not do, so these tests do not cover it:

* DescribeExport has no ``ExportManifest``: the data folder is found by listing the bucket (the fallback
  path); the ``ExportManifest`` path that AWS takes is covered only by a unit test below.
* Exports and imports finish almost at once, so waiting and its progress line are only smoke-tested, and
  the FAILED/CANCELLED branches are not reached.
* Bucket ownership (``--s3-bucket-owner``) and cross-account bucket policies are not enforced.
* Client tokens are not deduplicated: test_migrate_construct.py checks that a re-run after a crash sends the
  same token (answering it as DynamoDB does), not that DynamoDB honours it.
* An enabled mapping does not run the function: the replay from TRIM_HORIZON after the import belongs to
  the replicator and local-runtime tests.
"""

from __future__ import annotations

import io
import json
import socket
import zipfile
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from cdk_replication.cli import main

REGION = "eu-west-1"
ACCOUNT = "123456789012"  # moto's default account


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture()
def aws(moto_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> dict[str, Any]:
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": REGION, "AWS_REGION": REGION}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.chdir(tmp_path)
    session = boto3.session.Session()
    clients = {name: session.client(name, endpoint_url=moto_url) for name in ("dynamodb", "s3", "lambda", "iam")}
    clients["url"] = moto_url
    return clients


def run(aws: dict[str, Any], *args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(["migrate", *args, "--endpoint-url", aws["url"], "--poll-interval", "0.05"], stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def _source(aws: dict[str, Any], name: str, *, stream: bool = False, lsi: bool = False) -> list[dict[str, Any]]:
    ddb = aws["dynamodb"]
    extra: dict[str, Any] = {}
    if stream:
        extra["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    if lsi:
        extra["LocalSecondaryIndexes"] = [{
            "IndexName": "by-n", "Projection": {"ProjectionType": "ALL"},
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "n", "KeyType": "RANGE"}],
        }]
    ddb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": a, "AttributeType": t} for a, t in
                              (("pk", "S"), ("sk", "N"), ("g", "S"), *((("n", "N"),) if lsi else ()))],
        BillingMode="PROVISIONED",
        ProvisionedThroughput={"ReadCapacityUnits": 7, "WriteCapacityUnits": 3},
        GlobalSecondaryIndexes=[{
            "IndexName": "by-g", "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}],
            "Projection": {"ProjectionType": "KEYS_ONLY"},
            "ProvisionedThroughput": {"ReadCapacityUnits": 2, "WriteCapacityUnits": 1},
        }],
        **extra,
    )
    ddb.update_time_to_live(TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires"})
    items = [
        {"pk": {"S": f"p{i}"}, "sk": {"N": str(i)}, "g": {"S": f"g{i % 3}"}, "n": {"N": "1" * 38},
         "bin": {"B": bytes([i, 0, 255])}, "ss": {"SS": ["a", "b"]}, "m": {"M": {"l": {"L": [{"S": ""}]}}}}
        for i in range(25)
    ]
    for item in items:
        ddb.put_item(TableName=name, Item=item)
    return items


def _bucket(aws: dict[str, Any], name: str) -> None:
    aws["s3"].create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION})


def _all_items(aws: dict[str, Any], table: str) -> dict[tuple[str, str], dict[str, Any]]:
    items = aws["dynamodb"].scan(TableName=table)["Items"]
    return {(it["pk"]["S"], it["sk"]["N"]): it for it in items}


def test_migrate_exports_imports_and_resumes(aws) -> None:
    items = _source(aws, "orders")
    _bucket(aws, "exports-a")
    code, out, err = run(aws, "orders", f"{REGION}:orders-replica", "--s3-bucket", "exports-a", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert [s["step"] for s in doc["steps"] if s["status"] == "done"] == ["stream", "pitr", "export", "import", "ttl"]
    assert doc["importedItems"] == 25

    ddb = aws["dynamodb"]
    source = ddb.describe_table(TableName="orders")["Table"]
    target = ddb.describe_table(TableName="orders-replica")["Table"]
    assert source["StreamSpecification"] == {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    pitr = ddb.describe_continuous_backups(TableName="orders")["ContinuousBackupsDescription"]
    assert pitr["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] == "ENABLED"
    assert target["KeySchema"] == source["KeySchema"]
    assert target["ProvisionedThroughput"]["ReadCapacityUnits"] == 7
    assert [g["IndexName"] for g in target["GlobalSecondaryIndexes"]] == ["by-g"]
    ttl = ddb.describe_time_to_live(TableName="orders-replica")["TimeToLiveDescription"]
    assert (ttl["TimeToLiveStatus"], ttl["AttributeName"]) == ("ENABLED", "expires")
    expected = {(it["pk"]["S"], it["sk"]["N"]): it for it in items}
    assert _all_items(aws, "orders-replica") == expected

    # Finished: a re-run changes nothing and says so.
    code, out, err = run(aws, "orders", f"{REGION}:orders-replica", "--s3-bucket", "exports-a", "--json")
    assert code == 0, err
    assert {s["status"] for s in json.loads(out)["steps"]} == {"already done"}

    # Resume after the import: drop the import from the state (as if the run died while waiting for it) and
    # the table it made; the re-run imports again from the recorded export instead of exporting again.
    state_path = doc["stateFile"]
    state = json.load(open(state_path))
    state["done"] = ["stream", "pitr", "export"]
    del state["importArn"], state["importClientToken"]
    json.dump(state, open(state_path, "w"))
    ddb.delete_table(TableName="orders-replica")
    code, out, err = run(aws, "orders", f"{REGION}:orders-replica", "--s3-bucket", "exports-a", "--json")
    assert code == 0, err
    resumed = json.loads(out)
    assert resumed["exportArn"] == doc["exportArn"]
    assert resumed["importArn"] != doc["importArn"]
    assert [s["step"] for s in resumed["steps"] if s["status"] == "done"] == ["import", "ttl"]
    assert len(ddb.list_exports(TableArn=source["TableArn"])["ExportSummaries"]) == 1
    assert _all_items(aws, "orders-replica") == expected


def _function_with_mapping(aws: dict[str, Any], stream_arn: str, name: str = "replicator") -> str:
    """A function ``name`` (and its role) with a disabled TRIM_HORIZON mapping on ``stream_arn``; its UUID.

    moto's servers in one process share their state: each test module needs its own ``name``.
    """
    role = aws["iam"].create_role(
        RoleName=name, AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []})
    )["Role"]["Arn"]
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as zf:
        zf.writestr("handler.py", "def handler(event, context):\n    return {}\n")
    aws["lambda"].create_function(
        FunctionName=name, Runtime="python3.12", Role=role, Handler="handler.handler",
        Code={"ZipFile": code.getvalue()},
    )
    mapping = aws["lambda"].create_event_source_mapping(
        FunctionName=name, EventSourceArn=stream_arn, StartingPosition="TRIM_HORIZON", Enabled=False,
    )
    return mapping["UUID"]


def test_migrate_enables_the_disabled_mapping_last(aws) -> None:
    _source(aws, "carts", stream=True)
    _bucket(aws, "exports-b")
    stream_arn = aws["dynamodb"].describe_table(TableName="carts")["Table"]["LatestStreamArn"]
    mapping = _function_with_mapping(aws, stream_arn)
    assert aws["lambda"].get_event_source_mapping(UUID=mapping)["State"] == "Disabled"

    code, out, err = run(aws, "carts", "carts-copy", "--s3-bucket", "exports-b", "--s3-prefix", "mig/carts",
                         "--s3-bucket-owner", ACCOUNT, "--event-source-mapping-uuid", mapping, "--target-stream")
    assert code == 0, err
    assert "[stream] done: already on" in err and "[mapping] done" in err
    assert aws["lambda"].get_event_source_mapping(UUID=mapping)["State"] == "Enabled"
    target = aws["dynamodb"].describe_table(TableName="carts-copy")["Table"]
    assert target["StreamSpecification"]["StreamViewType"] == "NEW_AND_OLD_IMAGES"
    keys = [o["Key"] for o in aws["s3"].list_objects_v2(Bucket="exports-b")["Contents"]]
    assert keys and all(k.startswith("mig/carts/AWSDynamoDB/") for k in keys)


def test_bad_input_changes_nothing(aws) -> None:
    _source(aws, "indexed", lsi=True)
    _source(aws, "plain")
    _bucket(aws, "exports-c")
    aws["dynamodb"].create_table(
        TableName="already-there", KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}], BillingMode="PAY_PER_REQUEST",
    )

    code, _, err = run(aws, "indexed", "indexed-copy", "--s3-bucket", "exports-c")
    assert code == 2 and "local secondary indexes (by-n)" in err and "backfill" in err
    code, _, err = run(aws, "plain", "plain-copy", "--s3-bucket", "no-such-bucket")
    assert code == 2 and "S3 bucket 'no-such-bucket' does not exist" in err
    code, _, err = run(aws, "plain", "already-there", "--s3-bucket", "exports-c")
    assert code == 2 and "already exists" in err
    code, _, err = run(aws, "plain", "plain-copy", "--s3-bucket", "exports-c",
                       "--event-source-mapping-uuid", "00000000-0000-0000-0000-000000000000")
    assert code == 2 and "the source has no stream yet" in err
    code, _, err = run(aws, f"arn:aws:dynamodb:{REGION}:999999999999:table/plain", "plain-copy",
                       "--s3-bucket", "exports-c")
    # moto, like AWS without a resource-based policy, does not show another account's table.
    assert code == 2 and "of account 999999999999 cannot be read" in err

    code, _, err = run(aws, "plain", f"arn:aws:dynamodb:{REGION}:999999999999:table/plain-copy",
                       "--s3-bucket", "exports-c")
    assert code == 2 and "credentials belong to account 123456789012: pass --target-profile" in err

    for table in ("indexed", "plain"):
        desc = aws["dynamodb"].describe_table(TableName=table)["Table"]
        assert "StreamSpecification" not in desc or not desc["StreamSpecification"].get("StreamEnabled")
    assert "Contents" not in aws["s3"].list_objects_v2(Bucket="exports-c")
    assert "plain-copy" not in aws["dynamodb"].list_tables()["TableNames"]


def test_mapping_and_stream_that_would_lose_changes_are_refused(aws) -> None:
    _source(aws, "events")
    _bucket(aws, "exports-d")
    ddb = aws["dynamodb"]
    ddb.update_table(TableName="events", StreamSpecification={"StreamEnabled": True, "StreamViewType": "KEYS_ONLY"})
    code, _, err = run(aws, "events", "events-copy", "--s3-bucket", "exports-d")
    assert code == 2 and "KEYS_ONLY stream" in err and "NEW_AND_OLD_IMAGES" in err

    _source(aws, "clicks", stream=True)
    stream_arn = ddb.describe_table(TableName="clicks")["Table"]["LatestStreamArn"]
    role = aws["iam"].create_role(RoleName="late", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    code_zip = io.BytesIO()
    with zipfile.ZipFile(code_zip, "w") as zf:
        zf.writestr("handler.py", "def handler(event, context):\n    return {}\n")
    aws["lambda"].create_function(FunctionName="late", Runtime="python3.12", Role=role, Handler="handler.handler",
                                  Code={"ZipFile": code_zip.getvalue()})
    latest = aws["lambda"].create_event_source_mapping(
        FunctionName="late", EventSourceArn=stream_arn, StartingPosition="LATEST", Enabled=False)["UUID"]
    code, _, err = run(aws, "clicks", "clicks-copy", "--s3-bucket", "exports-d", "--event-source-mapping-uuid", latest)
    assert code == 2 and "starts at LATEST" in err and "TRIM_HORIZON" in err
    pitr = ddb.describe_continuous_backups(TableName="clicks")["ContinuousBackupsDescription"]
    assert pitr["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] == "DISABLED"
    assert "Contents" not in aws["s3"].list_objects_v2(Bucket="exports-d")


def test_data_prefix_and_creation_parameters_as_aws_reports_them() -> None:
    from types import SimpleNamespace

    from cdk_replication.cli.migrate.steps import _creation_parameters, _export_data_prefix

    folder = "mig/orders/AWSDynamoDB/01700000000000-abcdef12"
    manifest = {"ExportManifest": f"{folder}/manifest-summary.json"}
    assert _export_data_prefix(None, manifest) == f"{folder}/data/"  # type: ignore[arg-type]

    on_demand = {
        "AttributeDefinitions": [
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "g", "AttributeType": "N"},
        ],
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
        "BillingModeSummary": {"BillingMode": "PAY_PER_REQUEST"},
        "ProvisionedThroughput": {"ReadCapacityUnits": 0, "WriteCapacityUnits": 0},
        "GlobalSecondaryIndexes": [{
            "IndexName": "by-g", "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}],
            "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["x"]},
            "IndexStatus": "ACTIVE", "ItemCount": 3,
            "ProvisionedThroughput": {"ReadCapacityUnits": 0, "WriteCapacityUnits": 0},
        }],
    }
    ctx = SimpleNamespace(source=SimpleNamespace(info=SimpleNamespace(description=on_demand)),
                          target_ref=SimpleNamespace(name="copy"))
    params = _creation_parameters(ctx)  # type: ignore[arg-type]
    assert params == {
        "TableName": "copy",
        "AttributeDefinitions": on_demand["AttributeDefinitions"],
        "KeySchema": on_demand["KeySchema"],
        "BillingMode": "PAY_PER_REQUEST",
        "GlobalSecondaryIndexes": [{
            "IndexName": "by-g", "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}],
            "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["x"]},
        }],
    }
