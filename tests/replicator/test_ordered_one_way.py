"""ONE_WAY replication from a Kinesis data stream (REPLICATION_CHANGE_SOURCE=KINESIS) against DynamoDB Local.

The changes are real stream records of DynamoDB Local, re-shaped as Kinesis Data Streams for DynamoDB
delivers them (see ``kinesis_events``); the tests then deliver them out of order and more than once, as AWS
says Kinesis may.
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import pytest

from replicator.config import ConfigError, load_config
from replicator.records import MalformedRecord

from rep_helpers import (
    FIRST_SEQUENCE,
    Table,
    create_table,
    json_lines,
    kinesis_events,
    kinesis_record,
    replication_env,
    user_items,
)
from rep_helpers import run_batch as run

SOURCE_REGION, REPLICA_REGION = "us-east-1", "eu-west-1"
PREFIX = "_rep_"


def kinesis_env(source: Table, targets: list[dict[str, str]], **extra: str) -> dict[str, str]:
    return replication_env(source, targets, REPLICATION_CHANGE_SOURCE="KINESIS", **extra)


@pytest.fixture
def pair(ddb_local, make_processor):
    source = create_table(ddb_local, "ksrc", SOURCE_REGION)
    replica = create_table(ddb_local, "kreplica", REPLICA_REGION, stream=False)
    processor = make_processor(kinesis_env(source, [replica.ref()]), SOURCE_REGION)
    return source, replica, processor


def write_history(source: Table) -> None:
    c = source.client
    for i in range(6):
        c.put_item(TableName=source.name, Item={"pk": {"S": f"k{i}"}, "v": {"N": str(i)}, "m": {"M": {}}})
    c.update_item(TableName=source.name, Key={"pk": {"S": "k1"}}, UpdateExpression="SET v = :v",
                  ExpressionAttributeValues={":v": {"N": "100"}})
    c.update_item(TableName=source.name, Key={"pk": {"S": "k1"}}, UpdateExpression="SET v = :v",
                  ExpressionAttributeValues={":v": {"N": "101"}})
    c.delete_item(TableName=source.name, Key={"pk": {"S": "k2"}})
    c.put_item(TableName=source.name, Item={"pk": {"S": "k3"}, "v": {"S": "replaced"}})
    c.delete_item(TableName=source.name, Key={"pk": {"S": "k4"}})


def test_in_order_delivery_mirrors_the_source_with_change_times(pair):
    source, replica, processor = pair
    write_history(source)
    events = kinesis_events(source, source.new_records())

    assert run(processor, events) == {"batchItemFailures": []}

    assert user_items(replica) == source.items()
    stored = {i["pk"]["S"]: i for i in replica.items()}
    data = [json.loads(base64.b64decode(e["kinesis"]["data"])) for e in events]
    last_k1 = max(d["dynamodb"]["ApproximateCreationDateTime"] for d in data if d["dynamodb"]["Keys"]["pk"]["S"] == "k1")
    assert stored["k1"][PREFIX + "changedAt"] == {"N": str(last_k1)}
    # Deletes are tombstones holding only the key, the flag, the change time and an expiry ~8 days out.
    tombstone = stored["k2"]
    assert set(tombstone) == {"pk", PREFIX + "deleted", PREFIX + "changedAt", PREFIX + "state", PREFIX + "expiresAt"}
    assert tombstone[PREFIX + "state"] == {"S": "-"}
    expiry = int(tombstone[PREFIX + "expiresAt"]["N"]) - time.time()
    assert 8 * 86400 - 60 < expiry <= 8 * 86400


def test_reversed_and_duplicated_delivery_converges_to_the_last_change(pair, capsys):
    source, replica, processor = pair
    write_history(source)
    events = kinesis_events(source, source.new_records())
    capsys.readouterr()

    # Newest first, one record per invocation, then everything again: older changes must never win.
    for event in reversed(events):
        assert run(processor, [event]) == {"batchItemFailures": []}
    assert user_items(replica) == source.items()
    assert run(processor, events[::2] + events[1::2][::-1]) == {"batchItemFailures": []}

    assert user_items(replica) == source.items()
    superseded = [l for l in json_lines(capsys.readouterr().out) if l.get("Kind") == "Superseded"]
    assert sum(l["Conflicts"] for l in superseded) > 0


def test_late_duplicate_of_a_write_does_not_bring_a_deleted_item_back(pair):
    source, replica, processor = pair
    c = source.client
    c.put_item(TableName=source.name, Item={"pk": {"S": "gone"}, "v": {"N": "1"}})
    c.delete_item(TableName=source.name, Key={"pk": {"S": "gone"}})
    put, delete = kinesis_events(source, source.new_records())

    assert run(processor, [put, delete]) == {"batchItemFailures": []}
    assert run(processor, [put]) == {"batchItemFailures": []}  # the duplicate arrives after the delete

    assert user_items(replica) == []
    assert replica.items()[0][PREFIX + "deleted"] == {"BOOL": True}


def test_a_tombstone_written_is_counted_and_a_superseded_one_is_not(pair, capsys):
    """TombstonesWritten (issue 12's dashboard) counts the tombstones the replicator wrote, nothing else."""
    source, replica, processor = pair
    c = source.client
    c.put_item(TableName=source.name, Item={"pk": {"S": "gone"}, "v": {"N": "1"}})
    c.delete_item(TableName=source.name, Key={"pk": {"S": "gone"}})
    put, delete = kinesis_events(source, source.new_records())
    capsys.readouterr()

    assert run(processor, [put, delete]) == {"batchItemFailures": []}
    assert run(processor, [delete]) == {"batchItemFailures": []}  # a duplicate: superseded, not written again

    first, second = [l for l in json_lines(capsys.readouterr().out) if "RecordsReceived" in l]
    assert first["TombstonesWritten"] == 1
    assert "TombstonesWritten" not in second


def test_item_loaded_without_a_change_time_is_replaced_by_its_first_change(pair):
    source, replica, processor = pair
    replica.client.put_item(TableName=replica.name, Item={"pk": {"S": "k"}, "v": {"S": "from-the-export"}})
    source.client.put_item(TableName=source.name, Item={"pk": {"S": "k"}, "v": {"S": "live"}})

    assert run(processor, kinesis_events(source, source.new_records())) == {"batchItemFailures": []}

    assert user_items(replica) == source.items()


def test_millisecond_precision_is_ordered_with_microseconds(pair):
    source, replica, processor = pair
    c = source.client
    c.put_item(TableName=source.name, Item={"pk": {"S": "k"}, "v": {"N": "1"}})
    c.put_item(TableName=source.name, Item={"pk": {"S": "k"}, "v": {"N": "2"}})
    first, second = source.new_records()
    now_us = int(time.time() * 1e6)
    (newer,) = kinesis_events(source, [second], first_us=now_us + 5000)  # microseconds
    (older,) = kinesis_events(source, [first], first_us=now_us, millis=True)  # the table's precision changed

    assert run(processor, [newer, older]) == {"batchItemFailures": []}
    assert user_items(replica) == [{"pk": {"S": "k"}, "v": {"N": "2"}}]

    # The other way round: a newer change in milliseconds after an older one in microseconds.
    c.put_item(TableName=source.name, Item={"pk": {"S": "k"}, "v": {"N": "3"}})
    c.put_item(TableName=source.name, Item={"pk": {"S": "k"}, "v": {"N": "4"}})
    third, fourth = source.new_records()
    (older,) = kinesis_events(source, [third], first_us=now_us + 9000)
    (newer,) = kinesis_events(source, [fourth], first_us=now_us + 12000, millis=True)
    assert run(processor, [older]) == {"batchItemFailures": []}
    assert run(processor, [newer]) == {"batchItemFailures": []}
    assert user_items(replica) == [{"pk": {"S": "k"}, "v": {"N": "4"}}]


def test_records_of_another_table_in_a_shared_stream_are_skipped(pair, capsys):
    """The other table's key is not even named like ours: it must be left before its key is read."""
    source, replica, processor = pair
    source.client.put_item(TableName=source.name, Item={"pk": {"S": "mine"}})
    (event,) = kinesis_events(source, source.new_records())
    data = json.loads(base64.b64decode(event["kinesis"]["data"]))
    theirs = {"id": {"N": "7"}}
    data.update(tableName="someone-else")
    data["dynamodb"].update(Keys=theirs, NewImage=theirs)
    foreign = kinesis_record(data, FIRST_SEQUENCE + 99)
    capsys.readouterr()

    assert run(processor, [foreign, event, foreign]) == {"batchItemFailures": []}

    assert user_items(replica) == [{"pk": {"S": "mine"}}]
    totals = next(l for l in json_lines(capsys.readouterr().out) if "RecordsReceived" in l)
    assert (totals["RecordsReceived"], totals["RecordsApplied"], totals["RecordsSkipped"]) == (3, 1, 2)


def _two_writes_in_one_millisecond(source: Table) -> list[dict[str, Any]]:
    c = source.client
    c.put_item(TableName=source.name, Item={"pk": {"S": "k"}, "v": {"N": "1"}})
    c.put_item(TableName=source.name, Item={"pk": {"S": "k"}, "v": {"N": "2"}})
    stamp = int(time.time() * 1000)
    return kinesis_events(source, source.new_records(), times=[stamp, stamp])  # millisecond precision


def test_equal_times_across_batches_end_at_the_later_change(pair):
    source, replica, processor = pair
    first, second = _two_writes_in_one_millisecond(source)

    assert run(processor, [second]) == {"batchItemFailures": []}
    # Older, same time: the records cannot tell it from a later change, so the item is settled from the source.
    assert run(processor, [first]) == {"batchItemFailures": []}
    assert run(processor, [second]) == {"batchItemFailures": []}  # same time as the settled write: refused

    assert user_items(replica) == [{"pk": {"S": "k"}, "v": {"N": "2"}}]


def test_equal_times_are_ordered_by_their_images_in_one_batch_and_across_batches(ddb_local, make_processor):
    for order in ((1, 0), (0, 1)):
        source = create_table(ddb_local, "ksrc", SOURCE_REGION)
        replica = create_table(ddb_local, "kreplica", REPLICA_REGION, stream=False)
        processor = make_processor(kinesis_env(source, [replica.ref()]), SOURCE_REGION)
        events = _two_writes_in_one_millisecond(source)
        assert run(processor, [events[i] for i in order]) == {"batchItemFailures": []}
        assert user_items(replica) == [{"pk": {"S": "k"}, "v": {"N": "2"}}], order
        # And the later one applies after the earlier one across batches, though the times are equal.
        replica2 = create_table(ddb_local, "kreplica", REPLICA_REGION, stream=False)
        processor2 = make_processor(kinesis_env(source, [replica2.ref()]), SOURCE_REGION)
        for event in events:
            assert run(processor2, [event]) == {"batchItemFailures": []}
        assert user_items(replica2) == [{"pk": {"S": "k"}, "v": {"N": "2"}}]


def test_ttl_deletes_are_replicated_or_skipped_as_configured(ddb_local, make_processor):
    source = create_table(ddb_local, "ksrc", SOURCE_REGION)
    source.client.put_item(TableName=source.name, Item={"pk": {"S": "k"}, "v": {"N": "1"}})
    source.client.delete_item(TableName=source.name, Key={"pk": {"S": "k"}})
    records = source.new_records()
    records[1]["userIdentity"] = {"type": "Service", "principalId": "dynamodb.amazonaws.com"}  # as TTL deletes
    events = kinesis_events(source, records)
    for setting, expected in (("REPLICATE", []), ("SKIP", [{"pk": {"S": "k"}, "v": {"N": "1"}}])):
        replica = create_table(ddb_local, "kreplica", REPLICA_REGION, stream=False)
        processor = make_processor(kinesis_env(source, [replica.ref()], REPLICATION_TTL_DELETES=setting),
                                   SOURCE_REGION)
        assert run(processor, events) == {"batchItemFailures": []}
        assert user_items(replica) == expected, setting


def test_failed_target_reports_the_first_kinesis_record_of_the_item(ddb_local, make_processor, capsys):
    source = create_table(ddb_local, "ksrc", SOURCE_REGION)
    replica = create_table(ddb_local, "kreplica", REPLICA_REGION, stream=False)
    missing = {"tableName": "does-not-exist", "region": REPLICA_REGION, "account": source.account}
    processor = make_processor(kinesis_env(source, [replica.ref(), missing]), SOURCE_REGION)
    for i in range(5):
        source.client.put_item(TableName=source.name, Item={"pk": {"S": f"k{i}"}})
    events = kinesis_events(source, source.new_records())
    capsys.readouterr()

    result = run(processor, events[::-1])  # delivery order is not change order

    assert result == {"batchItemFailures": [{"itemIdentifier": events[-1]["kinesis"]["sequenceNumber"]}]}
    assert user_items(replica) == source.items()  # the healthy target is not held back
    errors = [l for l in json_lines(capsys.readouterr().out) if l.get("level") == "ERROR"]
    assert {e["errorCode"] for e in errors} == {"ResourceNotFoundException"}
    assert len(errors) == 5


def test_malformed_kinesis_data_fails_the_invocation(pair):
    _, _, processor = pair
    bad = kinesis_record({"eventSource": "aws:dynamodb"}, FIRST_SEQUENCE)
    bad["kinesis"]["data"] = "not base64!"
    with pytest.raises(MalformedRecord, match="not base64 JSON"):
        run(processor, [bad])
    no_time = kinesis_record({"eventSource": "aws:dynamodb", "eventName": "INSERT",
                              "dynamodb": {"Keys": {"pk": {"S": "k"}}, "NewImage": {"pk": {"S": "k"}}}},
                             FIRST_SEQUENCE)
    with pytest.raises(MalformedRecord, match="ApproximateCreationDateTime"):
        run(processor, [no_time])


def test_kinesis_config_is_one_way_only_with_a_longer_tombstone_default(ddb_local):
    source = create_table(ddb_local, "ksrc", SOURCE_REGION, stream=False)
    target = {"tableName": "t", "region": REPLICA_REGION, "account": source.account}
    with pytest.raises(ConfigError, match="ONE_WAY only"):
        load_config(kinesis_env(source, [target], REPLICATION_MODE="MULTI_ACTIVE"))
    assert load_config(kinesis_env(source, [target])).tombstone_ttl_seconds == 8 * 86400
    assert load_config(replication_env(source, [target])).tombstone_ttl_seconds == 2 * 86400
    with pytest.raises(ConfigError, match="REPLICATION_TOMBSTONE_TTL_SECONDS=90000 is outside 172800"):
        load_config(kinesis_env(source, [target], REPLICATION_TOMBSTONE_TTL_SECONDS="90000"))
