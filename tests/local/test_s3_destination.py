"""The S3 on-failure destination of a stream event source mapping, emulated by a folder (:class:`LocalBucket`).

AWS's shape (Lambda developer guide, "Retain discarded records" for DynamoDB and Kinesis): one object per
discarded batch under ``aws/lambda/<mapping UUID>/<shard id>/YYYY/MM/DD/YYYY-MM-DDTHH.MM.SS-<random UUID>``,
holding the invocation record an SQS destination gets plus ``payload``, the invocation event as a JSON string.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re

import pytest

from cdk_replication.local import KinesisEventSourceMapping, LocalQueue, MappingSettings, StreamEventSourceMapping
from cdk_replication.local.bucket import LocalBucket, failure_object_key

from esm_helpers import ACCOUNT, REGION, FakeClock, ScriptedFunction, put, stream_table
from kinesis_helpers import kinesis_stream, put_raw

#: 2026-03-04T05:06:07.890Z, a fixed moment for the key's date and time.
MOMENT = dt.datetime(2026, 3, 4, 5, 6, 7, 890000, tzinfo=dt.timezone.utc).timestamp()
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def _poison(key: str):
    def behaviour(event):
        if any(r["dynamodb"]["Keys"]["pk"]["S"] == key for r in event["Records"]):
            raise RuntimeError(f"poison {key}")
    return behaviour


def _ddb_mapping(ddb_local, arn, fn, destination, clock):
    return StreamEventSourceMapping(
        fn, arn, streams_client=ddb_local.client("dynamodbstreams", region=REGION, account=ACCOUNT),
        region=REGION, account=ACCOUNT, settings=MappingSettings(maximum_retry_attempts=1), destination=destination,
        uuid="0f0e0d0c-0b0a-4908-8706-050403020100", clock=clock)


def test_failure_object_key_is_lambdas_layout():
    key = failure_object_key("esm-uuid", "shardId-000000000000", MOMENT, "11111111-2222-3333-4444-555555555555")
    assert key == ("aws/lambda/esm-uuid/shardId-000000000000/2026/03/04/"
                   "2026-03-04T05.06.07-11111111-2222-3333-4444-555555555555")


def test_dynamodb_discarded_batch_lands_in_the_bucket_with_its_payload(ddb_local, tmp_path):
    client, table, arn = stream_table(ddb_local)
    put(client, table, "a", "b")
    fn = ScriptedFunction(_poison("a"))
    bucket = LocalBucket("failures", tmp_path, region=REGION, account=ACCOUNT)
    mapping = _ddb_mapping(ddb_local, arn, fn, bucket, FakeClock(MOMENT))
    stats = mapping.run_until_idle()
    assert stats.on_failure_records == 1 and stats.records_discarded == 2
    (key,) = bucket.keys()
    shard_id = key.split("/")[3]
    assert re.fullmatch(rf"aws/lambda/{mapping.uuid}/shardId-[^/]+/2026/03/04/2026-03-04T05\.06\.07-{UUID}", key)
    assert (tmp_path / "failures" / key).read_bytes() == bucket.get(key)  # the folder is the bucket
    body = json.loads(bucket.get(key))
    assert list(body) == ["requestContext", "responseContext", "version", "timestamp", "DDBStreamBatchInfo",
                          "payload"]
    assert isinstance(body["payload"], str)
    assert json.loads(body["payload"]) == fn.events[-1]  # exactly the event the function received last
    assert body["timestamp"] == "2026-03-04T05:06:07.890Z"
    assert body["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert body["requestContext"]["approximateInvokeCount"] == 2
    info = body["DDBStreamBatchInfo"]
    assert info["shardId"] == shard_id and info["batchSize"] == 2
    assert info["streamArn"] == mapping.event_source_arn


def test_the_bucket_object_is_the_queue_message_plus_payload(ddb_local, tmp_path):
    # SQS and SNS get the same document without the records (AWS: "For Amazon S3 destinations, Lambda also
    # sends the entire invocation record along with the metadata").
    client, table, arn = stream_table(ddb_local)
    put(client, table, "a")
    queue, bucket = LocalQueue("dlq"), LocalBucket("failures", tmp_path)
    for destination in (queue, bucket):
        _ddb_mapping(ddb_local, arn, ScriptedFunction(_poison("a")), destination, FakeClock(MOMENT)).run_until_idle()
    (message,) = queue.bodies()
    (stored,) = bucket.objects()
    body = stored.json()
    payload = json.loads(body.pop("payload"))
    assert [r["dynamodb"]["Keys"]["pk"]["S"] for r in payload["Records"]] == ["a"]
    for document in (message, body):  # request ids are per invocation
        document["requestContext"].pop("requestId")
    assert body == message


def test_kinesis_discarded_batch_lands_in_the_bucket_with_base64_data(local_kinesis, tmp_path):
    client, name, arn = kinesis_stream(local_kinesis)
    put_raw(client, name, "good", "poison", "after")

    def poison(event):
        if any(base64.b64decode(r["kinesis"]["data"]) == b"poison" for r in event["Records"]):
            raise RuntimeError("poison")

    fn = ScriptedFunction(poison)
    bucket = LocalBucket("kfailures", tmp_path, region=REGION, account=ACCOUNT)
    mapping = KinesisEventSourceMapping(
        fn, arn, kinesis_client=client, destination=bucket, clock=FakeClock(MOMENT), uuid="kinesis-esm",
        settings=MappingSettings(maximum_retry_attempts=0, bisect_batch_on_function_error=True))
    stats = mapping.run_until_idle()
    assert stats.records_discarded == 1 and stats.records_processed == 2
    (stored,) = bucket.objects()
    assert re.fullmatch(rf"aws/lambda/kinesis-esm/shardId-000000000000/2026/03/04/2026-03-04T05\.06\.07-{UUID}",
                        stored.key)
    body = stored.json()
    assert "KinesisBatchInfo" in body and "DDBStreamBatchInfo" not in body
    payload = json.loads(body["payload"])
    (record,) = payload["Records"]
    assert payload in fn.events  # exactly an event the function received: the poison record after bisect
    assert base64.b64decode(record["kinesis"]["data"]) == b"poison"
    assert record["eventSource"] == "aws:kinesis"


def test_a_write_the_authorizer_refuses_is_a_delivery_failure(ddb_local, tmp_path):
    client, table, arn = stream_table(ddb_local)
    put(client, table, "a")
    seen = []

    def deny(principal, action, resource):
        seen.append((principal, action, resource))
        return "not allowed"

    bucket = LocalBucket("failures", tmp_path, authorizer=deny)
    mapping = _ddb_mapping(ddb_local, arn, ScriptedFunction(_poison("a")), bucket, FakeClock(MOMENT))
    mapping.role_arn = f"arn:aws:iam::{ACCOUNT}:role/replicator"
    stats = mapping.run_until_idle()
    assert stats.records_discarded == 1  # discarded all the same, as the stream moves on
    assert stats.on_failure_records == 0 and stats.destination_delivery_failures == 1
    assert bucket.keys() == []
    ((principal, action, resource),) = seen
    assert (principal, action) == (mapping.role_arn, "s3:PutObject")
    assert resource.startswith(f"arn:aws:s3:::failures/aws/lambda/{mapping.uuid}/")


@pytest.mark.parametrize("key", ["", "/abs", "a/../b", "dir/"])
def test_keys_that_cannot_be_files_are_refused(tmp_path, key):
    with pytest.raises(ValueError):
        LocalBucket("b", tmp_path).put_object(key, b"x")


def test_bucket_reads_back_what_it_stores(tmp_path):
    bucket = LocalBucket("b", tmp_path)
    bucket.put_object("x/y/z.json", '{"a": 1}')
    bucket.put_object("cdk-replication/redriven/x/y/z.json", b"{}")
    assert bucket.arn == "arn:aws:s3:::b" and bucket.directory == tmp_path / "b"
    assert bucket.keys() == ["cdk-replication/redriven/x/y/z.json", "x/y/z.json"]
    assert bucket.keys("x/") == ["x/y/z.json"]
    assert bucket.objects("x/")[0].json() == {"a": 1}
    assert bucket.failure_records() == []  # only Lambda's aws/lambda/ objects are failure records
    bucket.put_object("aws/lambda/u/shardId-1/2026/01/01/2026-01-01T00.00.00-x", '{"version": "1.0"}')
    assert bucket.failure_records() == [{"version": "1.0"}]
    with pytest.raises(KeyError):
        bucket.get("nope")
