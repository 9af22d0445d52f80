"""The Kinesis streaming destination bridge: real DynamoDB Local stream records written to the local Kinesis
in the format of Kinesis Data Streams for DynamoDB, with deterministic duplicate and reorder faults."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections import defaultdict

import pytest

from cdk_replication.local.stream_records import read_all_records, to_lambda_record

from esm_helpers import ACCOUNT, REGION, FakeClock, stream_table
from kinesis_helpers import bridge, kinesis_stream, read_stream

TOP_LEVEL = ["awsRegion", "eventID", "eventName", "userIdentity", "recordFormat", "tableName", "dynamodb",
             "eventSource"]


def _item_workload(client, table):
    client.put_item(TableName=table, Item={
        "pk": {"S": "a"}, "empty": {"M": {}}, "bin": {"B": b"\x00\xffbin"}, "bins": {"BS": [b"\x01", b"\x02"]},
        "nested": {"L": [{"M": {}}, {"M": {"b": {"B": b"\x10"}}}]}, "n": {"N": "12345678901234567890123456789012345678"},
        "text": {"S": "héllo ✓"}, "none": {"S": ""}})
    client.put_item(TableName=table, Item={"pk": {"S": "b"}})
    client.update_item(TableName=table, Key={"pk": {"S": "a"}}, UpdateExpression="SET v = :v",
                       ExpressionAttributeValues={":v": {"N": "2"}})
    client.delete_item(TableName=table, Key={"pk": {"S": "b"}})


def test_records_have_the_kinesis_data_streams_for_dynamodb_format(ddb_local, local_kinesis):
    client, table, stream_arn = stream_table(ddb_local, "kds")
    kinesis, name, kinesis_arn = kinesis_stream(local_kinesis, shards=2)
    b = bridge(ddb_local, kinesis, table, stream_arn, kinesis_arn)
    _item_workload(client, table)
    assert b.step() == 4 and b.stats.records_read == 4
    assert b.step() == 0 and b.is_idle()

    records = read_stream(kinesis, name)
    streams = ddb_local.client("dynamodbstreams", region=REGION, account=ACCOUNT)
    expected = [to_lambda_record(raw, REGION, "arn") for raw in read_all_records(streams, stream_arn)]
    by_item = defaultdict(list)
    for r in records:
        by_item[r["data"]["dynamodb"]["Keys"]["pk"]["S"]].append(r)
    assert sorted(by_item) == ["a", "b"]
    for r in records:
        data = r["data"]
        assert list(data) == TOP_LEVEL
        assert data["awsRegion"] == REGION and data["tableName"] == table
        assert data["recordFormat"] == "application/json" and data["eventSource"] == "aws:dynamodb"
        assert data["userIdentity"] is None
        assert uuid.UUID(data["eventID"])
        # Stable partition key: hex MD5 of the canonical key JSON (so one item's records share a shard).
        key_json = json.dumps(data["dynamodb"]["Keys"], sort_keys=True, separators=(",", ":"))
        assert r["partition_key"] == hashlib.md5(key_json.encode()).hexdigest()
    for item, item_records in by_item.items():
        assert len({r["shard"] for r in item_records}) == 1
        mine = [e for e in expected if e["dynamodb"]["Keys"]["pk"]["S"] == item]
        assert [r["data"]["eventName"] for r in item_records] == [e["eventName"] for e in mine]
        for r, e in zip(item_records, mine):
            body = r["data"]["dynamodb"]
            images = [k for k in ("NewImage", "OldImage") if k in e["dynamodb"]]
            assert list(body) == ["ApproximateCreationDateTime", "Keys", *images, "SizeBytes"]  # no SequenceNumber
            for k in ("Keys", *images, "SizeBytes"):
                assert body[k] == e["dynamodb"][k]
    insert_a = by_item["a"][0]["data"]["dynamodb"]["NewImage"]
    assert insert_a["empty"] == {"M": {}}  # DynamoDB Local says {}, AWS {"M": {}}
    assert insert_a["nested"] == {"L": [{"M": {}}, {"M": {"b": {"B": "EA=="}}}]}
    assert insert_a["bin"] == {"B": "AP9iaW4="} and insert_a["bins"] == {"BS": ["AQ==", "Ag=="]}
    assert insert_a["n"] == {"N": "12345678901234567890123456789012345678"} and insert_a["text"] == {"S": "héllo ✓"}
    assert [r["data"]["eventName"] for r in by_item["b"]] == ["INSERT", "REMOVE"]

    # Microsecond epoch timestamps, strictly increasing in stream order (DynamoDB Local's are per minute).
    stamps = {r["data"]["eventID"]: r["data"]["dynamodb"]["ApproximateCreationDateTime"] for r in records}
    assert all(isinstance(s, int) and 10**15 < s < 10**17 for s in stamps.values())
    for item_records in by_item.values():
        item_stamps = [r["data"]["dynamodb"]["ApproximateCreationDateTime"] for r in item_records]
        assert item_stamps == sorted(set(item_stamps))


def test_timestamps_increase_even_when_the_clock_does_not(ddb_local, local_kinesis):
    client, table, stream_arn = stream_table(ddb_local, "kds")
    kinesis, name, kinesis_arn = kinesis_stream(local_kinesis)
    clock = FakeClock(1_700_000_000.0)
    b = bridge(ddb_local, kinesis, table, stream_arn, kinesis_arn, clock=clock)
    for i in range(3):
        client.put_item(TableName=table, Item={"pk": {"S": "same"}, "v": {"N": str(i)}})
    b.step()
    clock.advance(5)
    client.put_item(TableName=table, Item={"pk": {"S": "same"}, "v": {"N": "3"}})
    b.step()
    stamps = [r["data"]["dynamodb"]["ApproximateCreationDateTime"] for r in read_stream(kinesis, name)]
    start = 1_700_000_000 * 1_000_000
    assert stamps == [start, start + 1, start + 2, start + 5_000_000]


def test_millisecond_precision(ddb_local, local_kinesis):
    client, table, stream_arn = stream_table(ddb_local, "kds")
    kinesis, name, kinesis_arn = kinesis_stream(local_kinesis)
    b = bridge(ddb_local, kinesis, table, stream_arn, kinesis_arn, precision="MILLISECOND",
               clock=FakeClock(1_700_000_000.5))
    client.put_item(TableName=table, Item={"pk": {"S": "x"}})
    client.put_item(TableName=table, Item={"pk": {"S": "x"}, "v": {"N": "2"}})
    b.step()
    first, second = read_stream(kinesis, name)
    # Two writes within one millisecond share the stamp, as on AWS (the replicator orders them by images).
    assert first["data"]["dynamodb"]["ApproximateCreationDateTime"] == 1_700_000_000_500
    assert second["data"]["dynamodb"]["ApproximateCreationDateTime"] == 1_700_000_000_500


def test_reorder_next_publishes_the_later_write_first_with_its_original_timestamp(ddb_local, local_kinesis):
    client, table, stream_arn = stream_table(ddb_local, "kds")
    kinesis, name, kinesis_arn = kinesis_stream(local_kinesis)
    b = bridge(ddb_local, kinesis, table, stream_arn, kinesis_arn)
    b.reorder_next()
    for v in ("1", "2", "3"):
        client.put_item(TableName=table, Item={"pk": {"S": "a"}, "v": {"N": v}})
    b.run_until_idle()
    data = [r["data"] for r in read_stream(kinesis, name)]
    assert [d["dynamodb"]["NewImage"]["v"]["N"] for d in data] == ["2", "1", "3"]
    stamps = [d["dynamodb"]["ApproximateCreationDateTime"] for d in data]
    assert stamps[1] < stamps[0] < stamps[2]  # v=1 kept the stamp of the earlier write
    assert b.stats.reorders == 1 and b.stats.records_published == 3


def test_a_held_record_is_released_when_the_stream_is_quiet(ddb_local, local_kinesis):
    client, table, stream_arn = stream_table(ddb_local, "kds")
    kinesis, name, kinesis_arn = kinesis_stream(local_kinesis)
    b = bridge(ddb_local, kinesis, table, stream_arn, kinesis_arn)
    b.reorder_next()
    client.put_item(TableName=table, Item={"pk": {"S": "lonely"}})
    assert b.step() == 0 and b.held == 1 and not b.is_idle()
    assert read_stream(kinesis, name) == []
    assert b.step() == 1 and b.held == 0 and b.is_idle()
    assert len(read_stream(kinesis, name)) == 1


def test_duplicate_next_publishes_the_same_record_twice(ddb_local, local_kinesis):
    client, table, stream_arn = stream_table(ddb_local, "kds")
    kinesis, name, kinesis_arn = kinesis_stream(local_kinesis)
    b = bridge(ddb_local, kinesis, table, stream_arn, kinesis_arn)
    b.duplicate_next()
    client.put_item(TableName=table, Item={"pk": {"S": "a"}})
    client.put_item(TableName=table, Item={"pk": {"S": "b"}})
    b.run_until_idle()
    data = [r["data"] for r in read_stream(kinesis, name)]
    assert [d["dynamodb"]["Keys"]["pk"]["S"] for d in data] == ["a", "a", "b"]
    assert data[0] == data[1]  # same eventID and timestamp: one change delivered twice
    assert b.stats.duplicates == 1


def _faulty_run(ddb_local, local_kinesis, seed):
    client, table, stream_arn = stream_table(ddb_local, "kds")
    kinesis, name, kinesis_arn = kinesis_stream(local_kinesis)
    b = bridge(ddb_local, kinesis, table, stream_arn, kinesis_arn, seed=seed,
               duplicate_probability=0.3, reorder_probability=0.3)
    for round_ in range(4):
        for key in ("a", "b", "c"):
            client.put_item(TableName=table, Item={"pk": {"S": key}, "v": {"N": str(round_)}})
        b.step()
    b.run_until_idle()
    return b, [(r["data"]["dynamodb"]["Keys"]["pk"]["S"], r["data"]["dynamodb"]["NewImage"]["v"]["N"])
               for r in read_stream(kinesis, name)]


def test_random_faults_are_deterministic_for_a_seed_and_lose_nothing(ddb_local, local_kinesis):
    first, order = _faulty_run(ddb_local, local_kinesis, seed=7)
    second, again = _faulty_run(ddb_local, local_kinesis, seed=7)
    assert order == again
    assert first.stats.duplicates == second.stats.duplicates > 0
    assert first.stats.reorders == second.stats.reorders > 0
    assert set(order) == {(k, str(v)) for k in "abc" for v in range(4)}  # every change arrives
    assert len(order) == 12 + first.stats.duplicates
    per_item = defaultdict(list)
    for key, v in order:
        per_item[key].append(int(v))
    assert any(vs != sorted(vs) for vs in per_item.values())  # some item's writes arrive out of order


def test_latest_skips_changes_made_before_the_bridge(ddb_local, local_kinesis):
    client, table, stream_arn = stream_table(ddb_local, "kds")
    kinesis, name, kinesis_arn = kinesis_stream(local_kinesis)
    client.put_item(TableName=table, Item={"pk": {"S": "old"}})
    b = bridge(ddb_local, kinesis, table, stream_arn, kinesis_arn, starting_position="LATEST")
    client.put_item(TableName=table, Item={"pk": {"S": "new"}})
    b.run_until_idle()
    assert [r["data"]["dynamodb"]["Keys"]["pk"]["S"] for r in read_stream(kinesis, name)] == ["new"]


def test_ttl_delete_user_identity_is_in_the_kinesis_shape(ddb_local, local_kinesis):
    # DynamoDB Local does not expire items, so a real REMOVE record gets the userIdentity that DynamoDB
    # Streams adds to TTL deletions (as boto3 returns it) before it is converted.
    client, table, stream_arn = stream_table(ddb_local, "kds")
    kinesis, _, kinesis_arn = kinesis_stream(local_kinesis)
    b = bridge(ddb_local, kinesis, table, stream_arn, kinesis_arn)
    client.put_item(TableName=table, Item={"pk": {"S": "ttl"}})
    client.delete_item(TableName=table, Key={"pk": {"S": "ttl"}})
    streams = ddb_local.client("dynamodbstreams", region=REGION, account=ACCOUNT)
    remove = [r for r in read_all_records(streams, stream_arn) if r["eventName"] == "REMOVE"][0]
    remove["userIdentity"] = {"PrincipalId": "dynamodb.amazonaws.com", "Type": "Service"}
    assert b.kinesis_record(remove)["userIdentity"] == {"type": "Service", "principalId": "dynamodb.amazonaws.com"}


@pytest.mark.parametrize("kwargs", [{"precision": "SECOND"}, {"duplicate_probability": 1.5},
                                    {"starting_position": "AT_TIMESTAMP"}])
def test_bad_settings_are_refused(ddb_local, local_kinesis, kwargs):
    _, table, stream_arn = stream_table(ddb_local, "kds")
    kinesis, _, kinesis_arn = kinesis_stream(local_kinesis)
    with pytest.raises(ValueError):
        bridge(ddb_local, kinesis, table, stream_arn, kinesis_arn, **kwargs)
