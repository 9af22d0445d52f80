"""Records read from a real DynamoDB Local stream come out in the shape Lambda delivers on AWS."""

from __future__ import annotations

import base64
import json

from cdk_replication.local.stream_records import (
    aws_stream_arn,
    read_all_records,
    shards_in_lineage_order,
    to_lambda_record,
)

REGION, ACCOUNT = "us-west-2", "123456789012"


def _make_table(client, name: str) -> str:
    client.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "B"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )
    return client.describe_table(TableName=name)["Table"]["LatestStreamArn"]


def test_records_have_lambda_shape(ddb_local):
    client = ddb_local.client(region=REGION, account=ACCOUNT)
    streams = ddb_local.client("dynamodbstreams", region=REGION, account=ACCOUNT)
    local_arn = _make_table(client, "stream-shape")
    key = {"pk": {"B": b"\x00\xffkey"}}
    item = {
        **key,
        "empty": {"M": {}},
        "nested": {"M": {"inner": {"M": {}}, "list": {"L": [{"M": {}}, {"B": b"\x01"}]}}},
        "bs": {"BS": [b"\x02", b"\x03"]},
        "n": {"N": "12345678901234567890123456789012345678"},
        "s": {"S": ""},
    }
    client.put_item(TableName="stream-shape", Item=item)
    client.delete_item(TableName="stream-shape", Key=key)

    arn = aws_stream_arn(local_arn, REGION, ACCOUNT)
    records = [to_lambda_record(r, REGION, arn) for r in read_all_records(streams, local_arn)]

    assert [r["eventName"] for r in records] == ["INSERT", "REMOVE"]
    insert = records[0]
    assert insert["awsRegion"] == REGION
    assert insert["eventSourceARN"].startswith(f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/stream-shape/stream/")
    assert insert["eventSource"] == "aws:dynamodb"
    image = insert["dynamodb"]["NewImage"]
    assert image["empty"] == {"M": {}}  # DynamoDB Local writes {} here
    assert image["nested"]["M"]["inner"] == {"M": {}}
    assert image["nested"]["M"]["list"]["L"][0] == {"M": {}}
    assert base64.b64decode(image["pk"]["B"]) == b"\x00\xffkey"
    assert sorted(base64.b64decode(b) for b in image["bs"]["BS"]) == [b"\x02", b"\x03"]
    assert image["n"] == {"N": "12345678901234567890123456789012345678"}
    assert image["s"] == {"S": ""}
    assert isinstance(insert["dynamodb"]["ApproximateCreationDateTime"], float)
    assert records[1]["dynamodb"]["OldImage"] == image
    json.dumps(records)  # a Lambda event is JSON: nothing here may need a custom encoder


def test_parents_come_before_children():
    shards = [
        {"ShardId": "c", "ParentShardId": "b"},
        {"ShardId": "b", "ParentShardId": "a"},
        {"ShardId": "x", "ParentShardId": "trimmed"},
        {"ShardId": "a"},
    ]
    assert [s["ShardId"] for s in shards_in_lineage_order(shards)] == ["a", "b", "c", "x"]


def test_ttl_user_identity_is_in_the_event_shape(ddb_local):
    # A real REMOVE record gets the userIdentity that DynamoDB Streams adds to TTL deletions, as boto3 returns
    # it (PascalCase); Lambda's event says "type"/"principalId".
    client = ddb_local.client(region=REGION, account=ACCOUNT)
    arn = _make_table(client, "records-ttl")
    client.put_item(TableName="records-ttl", Item={"pk": {"B": b"k"}})
    client.delete_item(TableName="records-ttl", Key={"pk": {"B": b"k"}})
    streams = ddb_local.client("dynamodbstreams", region=REGION, account=ACCOUNT)
    remove = [r for r in read_all_records(streams, arn) if r["eventName"] == "REMOVE"][0]
    assert "userIdentity" not in to_lambda_record(remove, REGION, "arn")
    remove["userIdentity"] = {"PrincipalId": "dynamodb.amazonaws.com", "Type": "Service"}
    assert to_lambda_record(remove, REGION, "arn")["userIdentity"] == {
        "type": "Service", "principalId": "dynamodb.amazonaws.com"}


def test_dynamodb_local_ttl_deletes_are_delivered_as_aws_writes_them():
    """DynamoDB Local's TTL process does delete expired items (within seconds), but its record says
    ``UNKNOWN_TO_SDK_VERSION`` and carries no userIdentity (shape captured from DynamoDB Local 10.3.0). AWS
    writes a REMOVE by the DynamoDB service: the replicator must only ever see that."""
    raw = {
        "eventID": "d2e6f00c-484f-4313-8b5b-ca66c9476da0", "eventName": "UNKNOWN_TO_SDK_VERSION",
        "eventVersion": "1.1", "eventSource": "aws:dynamodb", "awsRegion": "ddblocal",
        "dynamodb": {
            "ApproximateCreationDateTime": 1764470000, "Keys": {"pk": {"S": "a"}},
            "OldImage": {"pk": {"S": "a"}, "exp": {"N": "1764469990"}},
            "SequenceNumber": "000000000000000000002", "SizeBytes": 20, "StreamViewType": "NEW_AND_OLD_IMAGES",
        },
    }
    record = to_lambda_record(raw, REGION, "arn")
    assert record["eventName"] == "REMOVE"
    assert record["userIdentity"] == {"type": "Service", "principalId": "dynamodb.amazonaws.com"}
    assert "NewImage" not in record["dynamodb"]
