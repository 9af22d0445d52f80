"""The event source mapping on a Kinesis stream (moto): Lambda's Kinesis event shape, batching, bisect,
partial batch responses with Kinesis sequence numbers, retries, record age and KinesisBatchInfo."""

from __future__ import annotations

import base64
import re
import time

import pytest

from cdk_replication.local import KinesisEventSourceMapping, LocalQueue, MappingSettings

from esm_helpers import ACCOUNT, REGION, FakeClock, ScriptedFunction
from kinesis_helpers import kinesis_stream, put_raw

MILLIS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def _mapping(client, arn, function, clock=None, destination=None, **settings):
    return KinesisEventSourceMapping(function, arn, kinesis_client=client, settings=MappingSettings(**settings),
                                     destination=destination, clock=clock or time.time)


def _payloads(event):
    return [base64.b64decode(r["kinesis"]["data"]).decode() for r in event["Records"]]


def _batches(fn):
    return [_payloads(e) for e in fn.events]


def _keys(n):
    return [f"k{i}" for i in range(n)]


def test_event_has_lambdas_kinesis_shape(local_kinesis):
    client, name, arn = kinesis_stream(local_kinesis)
    before = time.time()
    (seq,) = put_raw(client, name, '{"hello": "wörld"}', partition_key="pk-1")
    fn = ScriptedFunction()
    mapping = _mapping(client, arn, fn)
    mapping.run_until_idle()
    (event,) = fn.events
    assert set(event) == {"Records"}
    (record,) = event["Records"]
    assert list(record) == ["kinesis", "eventSource", "eventVersion", "eventID", "eventName", "invokeIdentityArn",
                            "awsRegion", "eventSourceARN"]
    kinesis = record["kinesis"]
    assert list(kinesis) == ["kinesisSchemaVersion", "partitionKey", "sequenceNumber", "data",
                             "approximateArrivalTimestamp"]
    assert kinesis["kinesisSchemaVersion"] == "1.0" and kinesis["partitionKey"] == "pk-1"
    assert kinesis["sequenceNumber"] == seq
    assert base64.b64decode(kinesis["data"]).decode("utf-8") == '{"hello": "wörld"}'
    assert isinstance(kinesis["approximateArrivalTimestamp"], float)
    assert before - 1 <= kinesis["approximateArrivalTimestamp"] <= time.time() + 1
    assert record["eventSource"] == "aws:kinesis" and record["eventVersion"] == "1.0"
    assert record["eventID"] == f"shardId-000000000000:{seq}"
    assert record["eventName"] == "aws:kinesis:record"
    assert record["invokeIdentityArn"] == f"arn:aws:iam::{ACCOUNT}:role/scripted-role"
    assert record["awsRegion"] == REGION
    assert record["eventSourceARN"] == mapping.event_source_arn == f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/{name}"


def test_batch_size_caps_records_per_invocation_in_shard_order(local_kinesis):
    client, name, arn = kinesis_stream(local_kinesis)
    put_raw(client, name, *_keys(25))
    fn = ScriptedFunction()
    stats = _mapping(client, arn, fn, batch_size=10).run_until_idle()
    assert [len(b) for b in _batches(fn)] == [10, 10, 5]
    assert sum(_batches(fn), []) == _keys(25)
    assert stats.records_processed == 25 and stats.batches_succeeded == 3


def test_every_shard_is_read(local_kinesis):
    client, name, arn = kinesis_stream(local_kinesis, shards=3)
    for i in range(12):
        put_raw(client, name, f"r{i}", partition_key=f"key-{i}")
    fn = ScriptedFunction()
    _mapping(client, arn, fn).run_until_idle()
    assert sorted(sum(_batches(fn), [])) == sorted(f"r{i}" for i in range(12))
    shards = {r["eventID"].split(":")[0] for e in fn.events for r in e["Records"]}
    assert len(shards) > 1


def test_bisect_then_retries_exhausted_send_kinesis_batch_info(local_kinesis):
    client, name, arn = kinesis_stream(local_kinesis)
    seqs = put_raw(client, name, *_keys(8))

    def poison(event):
        if "k5" in _payloads(event):
            raise RuntimeError("poison")

    fn = ScriptedFunction(poison)
    queue = LocalQueue("dlq")
    stats = _mapping(client, arn, fn, destination=queue, bisect_batch_on_function_error=True,
                     maximum_retry_attempts=1).run_until_idle()
    assert _batches(fn) == [_keys(8), _keys(4), ["k4", "k5", "k6", "k7"], ["k4", "k5"], ["k4"], ["k5"], ["k5"],
                            ["k6", "k7"]]
    assert stats.records_discarded == 1 and stats.records_processed == 7 and stats.bisections == 3
    (message,) = queue.bodies()
    assert message["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert message["requestContext"]["functionArn"] == fn.arn
    assert message["responseContext"]["functionError"] == "Unhandled"
    assert "DDBStreamBatchInfo" not in message
    info = message["KinesisBatchInfo"]
    assert list(info) == ["shardId", "startSequenceNumber", "endSequenceNumber", "approximateArrivalOfFirstRecord",
                          "approximateArrivalOfLastRecord", "batchSize", "streamArn"]
    assert info["shardId"] == "shardId-000000000000"
    assert info["startSequenceNumber"] == info["endSequenceNumber"] == seqs[5]
    assert info["batchSize"] == 1 and info["streamArn"] == arn
    assert MILLIS.match(info["approximateArrivalOfFirstRecord"]) and MILLIS.match(info["approximateArrivalOfLastRecord"])


def test_partial_batch_response_names_a_kinesis_sequence_number(local_kinesis):
    client, name, arn = kinesis_stream(local_kinesis)
    seqs = put_raw(client, name, *_keys(5))
    answers = [{"batchItemFailures": [{"itemIdentifier": seqs[3]}, {"itemIdentifier": "00" + seqs[2]}]}, None]
    fn = ScriptedFunction(lambda event: answers.pop(0))
    stats = _mapping(client, arn, fn, report_batch_item_failures=True).run_until_idle()
    # Sequence numbers compare as integers: "00<seq>" is record k2, the lowest failure.
    assert _batches(fn) == [_keys(5), ["k2", "k3", "k4"]]
    assert stats.partial_failures == 1 and stats.records_processed == 5


@pytest.mark.parametrize("identifier", ["", None, "not-a-number", "999999999"])
def test_identifier_that_is_not_a_sequence_number_of_the_batch_fails_the_batch(local_kinesis, identifier):
    client, name, arn = kinesis_stream(local_kinesis)
    put_raw(client, name, *_keys(3))
    answers = [{"batchItemFailures": [{"itemIdentifier": identifier}]}, None]
    fn = ScriptedFunction(lambda event: answers.pop(0))
    stats = _mapping(client, arn, fn, report_batch_item_failures=True).run_until_idle()
    assert _batches(fn) == [_keys(3), _keys(3)]
    assert stats.malformed_responses == 1


def test_records_older_than_maximum_record_age_are_discarded_without_an_invocation(local_kinesis):
    client, name, arn = kinesis_stream(local_kinesis)
    seqs = put_raw(client, name, *_keys(3))
    clock = FakeClock(time.time())
    fn = ScriptedFunction(lambda event: (_ for _ in ()).throw(RuntimeError("fails")))
    queue = LocalQueue("dlq")
    mapping = _mapping(client, arn, fn, clock=clock, destination=queue, maximum_record_age_s=60)
    mapping.step()  # one failed attempt
    assert len(fn.events) == 1
    clock.advance(61)  # measured from approximateArrivalTimestamp
    mapping.run_until_idle()
    assert len(fn.events) == 1 and mapping.stats.records_discarded == 3
    (message,) = queue.bodies()
    assert message["requestContext"]["condition"] == "MaximumRecordAgeExceeded"
    info = message["KinesisBatchInfo"]
    assert (info["startSequenceNumber"], info["endSequenceNumber"], info["batchSize"]) == (seqs[0], seqs[2], 3)


def test_latest_starts_at_the_end_of_each_shard(local_kinesis):
    client, name, arn = kinesis_stream(local_kinesis)
    put_raw(client, name, "before")
    fn = ScriptedFunction()
    mapping = _mapping(client, arn, fn, starting_position="LATEST")
    put_raw(client, name, "after")
    mapping.run_until_idle()
    assert _batches(fn) == [["after"]]


def test_children_of_a_split_shard_wait_for_their_parent(local_kinesis):
    client, name, arn = kinesis_stream(local_kinesis)
    put_raw(client, name, "p0", "p1", "p2", partition_key="a")
    client.split_shard(StreamName=name, ShardToSplit="shardId-000000000000",
                       NewStartingHashKey=str(2**127))
    put_raw(client, name, "c0", "c1", partition_key="a")
    fn = ScriptedFunction()
    mapping = _mapping(client, arn, fn, batch_size=2)
    mapping.run_until_idle()
    delivered = sum(_batches(fn), [])
    assert delivered == ["p0", "p1", "p2", "c0", "c1"]  # the parent (closed) is read to its end first
