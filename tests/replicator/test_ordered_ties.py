"""Kinesis-fed ONE_WAY replication when several changes of one item share a change time (issue 10, defect 3),
and items that the replicator's metadata would push over DynamoDB's size limit (defect 8).

With millisecond precision (AWS's default for an existing table's Kinesis destination) one item's writes
within a millisecond carry the same ``ApproximateCreationDateTime``. The records alone then cannot always say
which came last (the item may return to a state it had within that millisecond), so the replicator settles
such an item from the source itself. The rule held here is rule 1: after every record has been delivered, in
any order and with duplicates, the replica equals the source.
"""

from __future__ import annotations

import base64
import itertools
import json
import time
from typing import Any

import pytest

from rep_helpers import Table, create_table, json_lines, kinesis_events, replication_env
from rep_helpers import run_batch as run
from rep_helpers import user_items

SOURCE_REGION, REPLICA_REGION = "us-east-1", "eu-west-1"
PREFIX = "_rep_"
KEY = {"pk": {"S": "k"}}



@pytest.fixture
def pair(ddb_local, make_processor):
    source = create_table(ddb_local, "tsrc", SOURCE_REGION)
    replica = create_table(ddb_local, "treplica", REPLICA_REGION, stream=False)
    env = replication_env(source, [replica.ref()], REPLICATION_CHANGE_SOURCE="KINESIS")
    return source, replica, make_processor(env, SOURCE_REGION)


def in_one_millisecond(source: Table) -> list[dict[str, Any]]:
    """The Kinesis records of everything written to ``source`` since the last call, all stamped with one
    millisecond (as AWS stamps writes within a millisecond at MILLISECOND precision)."""
    records = source.new_records()
    stamp = int(time.time() * 1000)
    return kinesis_events(source, records, times=[stamp] * len(records))


def change_time_us(event: dict[str, Any]) -> int:
    """The change time of a millisecond-stamped Kinesis record, in microseconds (as the replicator stamps it)."""
    data = json.loads(base64.b64decode(event["kinesis"]["data"]))
    return data["dynamodb"]["ApproximateCreationDateTime"] * 1000


def put(source: Table, value: str) -> None:
    source.client.put_item(TableName=source.name, Item={**KEY, "v": {"S": value}})


def delete(source: Table) -> None:
    source.client.delete_item(TableName=source.name, Key=KEY)


def all_succeed(processor, *batches: list[dict[str, Any]]) -> None:
    for batch in batches:
        assert run(processor, batch) == {"batchItemFailures": []}


# --- (a) create then delete in one millisecond, then a late duplicate of the create ---------------------------


def test_a_duplicate_create_after_create_and_delete_in_one_batch_stays_deleted(pair):
    source, replica, processor = pair
    put(source, "v1")
    delete(source)
    insert, remove = in_one_millisecond(source)

    all_succeed(processor, [insert, remove], [insert])

    assert user_items(replica) == source.items() == []


def test_a_duplicate_create_after_create_and_delete_in_separate_batches_stays_deleted(pair):
    source, replica, processor = pair
    put(source, "v1")
    delete(source)
    insert, remove = in_one_millisecond(source)

    all_succeed(processor, [insert], [remove], [insert])

    assert user_items(replica) == source.items() == []


# --- (b) create then delete in one millisecond, delivered the other way round in one batch -------------------


def test_b_delete_and_create_reordered_in_one_batch_end_deleted(pair):
    source, replica, processor = pair
    put(source, "v1")
    delete(source)
    insert, remove = in_one_millisecond(source)

    all_succeed(processor, [remove, insert])

    assert user_items(replica) == source.items() == []


def test_b_delete_then_create_again_reordered_in_one_batch_ends_created(pair):
    """The mirror case: an existing item deleted and created again (same content) within a millisecond."""
    source, replica, processor = pair
    put(source, "v1")
    all_succeed(processor, kinesis_events(source, source.new_records(), first_us=int(time.time() * 1e6) - 10**6))
    delete(source)
    put(source, "v1")
    remove, insert = in_one_millisecond(source)

    all_succeed(processor, [insert, remove])

    assert user_items(replica) == source.items() == [{**KEY, "v": {"S": "v1"}}]


# --- (c) v1 -> v2 -> v1 in one millisecond, plus a duplicate of v1 -> v2 --------------------------------------


def _v1_v2_v1(source: Table, processor) -> list[dict[str, Any]]:
    put(source, "v1")
    all_succeed(processor, kinesis_events(source, source.new_records(), first_us=int(time.time() * 1e6) - 10**6))
    put(source, "v2")
    put(source, "v1")
    return in_one_millisecond(source)


def test_c_a_duplicate_of_the_first_change_after_a_return_does_not_win(pair):
    source, replica, processor = pair
    to_v2, back_to_v1 = _v1_v2_v1(source, processor)

    all_succeed(processor, [to_v2], [back_to_v1], [to_v2])

    assert user_items(replica) == source.items() == [{**KEY, "v": {"S": "v1"}}]


def test_c_the_same_in_one_batch(pair):
    source, replica, processor = pair
    to_v2, back_to_v1 = _v1_v2_v1(source, processor)

    all_succeed(processor, [to_v2, back_to_v1, to_v2])

    assert user_items(replica) == source.items() == [{**KEY, "v": {"S": "v1"}}]


# --- (d) v1, v2, v3 in one millisecond delivered c1, c3, c2 ---------------------------------------------------


def test_d_three_writes_delivered_first_last_middle_end_at_the_last(pair, capsys):
    source, replica, processor = pair
    put(source, "v1")
    put(source, "v2")
    put(source, "v3")
    c1, c2, c3 = in_one_millisecond(source)
    capsys.readouterr()

    all_succeed(processor, [c1], [c3], [c2])

    assert user_items(replica) == source.items() == [{**KEY, "v": {"S": "v3"}}]
    # The item was settled from the source once, counted and logged with its key; the rest were refused.
    lines = json_lines(capsys.readouterr().out)
    settled = [l for l in lines if l.get("Kind") == "SettledFromSource"]
    assert sum(l["Conflicts"] for l in settled) == 1
    (logged,) = [l for l in lines if l.get("message", "").startswith("tie settled from the source")]
    assert logged["key"] == {"pk": {"S": "k"}}
    stored = replica.items()[0]
    assert stored[PREFIX + "state"] == {"S": "settled"}
    assert stored[PREFIX + "changedAt"] == {"N": str(change_time_us(c1))}


def test_d_every_order_and_batching_of_three_tied_writes_ends_at_the_last(ddb_local, make_processor):
    for order in itertools.permutations(range(3)):
        for cut in (1, 2, 3):
            source = create_table(ddb_local, "tsrc", SOURCE_REGION)
            replica = create_table(ddb_local, "treplica", REPLICA_REGION, stream=False)
            processor = make_processor(
                replication_env(source, [replica.ref()], REPLICATION_CHANGE_SOURCE="KINESIS"), SOURCE_REGION
            )
            put(source, "v1")
            put(source, "v2")
            put(source, "v3")
            events = in_one_millisecond(source)
            delivered = [events[i] for i in order]
            all_succeed(processor, delivered[:cut], delivered[cut:] or delivered[:1])
            assert user_items(replica) == source.items(), (order, cut)


# --- a later change still applies after a settled tie; an unrelated tie needs no source read ------------------


def test_a_later_change_applies_after_a_settled_tie(pair):
    source, replica, processor = pair
    put(source, "v1")
    put(source, "v2")
    put(source, "v3")
    c1, c2, c3 = in_one_millisecond(source)
    all_succeed(processor, [c1], [c3], [c2])
    put(source, "v4")
    (later,) = kinesis_events(source, source.new_records(), first_us=int(time.time() * 1e6) + 10**6)

    all_succeed(processor, [later], [c2, c3, c1])

    assert user_items(replica) == source.items() == [{**KEY, "v": {"S": "v4"}}]


def test_two_tied_writes_in_order_in_one_batch_are_written_without_reading_the_source(pair, capsys):
    """A simple chain (distinct states) in one batch orders itself; a duplicate of the change stored is refused
    without a source read."""
    source, replica, processor = pair
    put(source, "v1")
    put(source, "v2")
    first, second = in_one_millisecond(source)
    capsys.readouterr()

    all_succeed(processor, [second, first], [second])

    assert user_items(replica) == [{**KEY, "v": {"S": "v2"}}]
    assert not [l for l in json_lines(capsys.readouterr().out) if l.get("Kind") == "SettledFromSource"]


def test_a_settle_from_an_item_deleted_at_the_source_writes_a_tombstone(pair):
    source, replica, processor = pair
    put(source, "v1")
    put(source, "v2")
    delete(source)
    c1, c2, c3 = in_one_millisecond(source)

    all_succeed(processor, [c1], [c3], [c2], [c1])

    assert user_items(replica) == source.items() == []
    (tombstone,) = replica.items()
    assert tombstone[PREFIX + "deleted"] == {"BOOL": True}
    assert set(tombstone) == {"pk", PREFIX + "deleted", PREFIX + "changedAt", PREFIX + "state", PREFIX + "expiresAt"}


# --- defect 8: an item that the metadata pushes over 400 KB ---------------------------------------------------


def test_an_item_too_large_with_the_metadata_is_reported_not_sent(pair, capsys):
    source, replica, processor = pair
    # 409,600 bytes is DynamoDB's limit; this item is a few bytes under it, the metadata takes it over.
    filler = "x" * (400 * 1024 - 40)
    source.client.put_item(TableName=source.name, Item={**KEY, "big": {"S": filler}})
    source.client.put_item(TableName=source.name, Item={"pk": {"S": "small"}})
    big, small = kinesis_events(source, source.new_records())
    capsys.readouterr()

    result = run(processor, [big, small])

    assert result == {"batchItemFailures": [{"itemIdentifier": big["kinesis"]["sequenceNumber"]}]}
    assert user_items(replica) == [{"pk": {"S": "small"}}]  # the other item is not held back
    lines = json_lines(capsys.readouterr().out)
    (error,) = [l for l in lines if l.get("level") == "ERROR"]
    assert error["errorCode"] == "ItemTooLarge" and error["key"] == {"pk": {"S": "k"}}
    assert "bytes with replication metadata" in error["error"]
    assert {l["ErrorCode"]: l["WriteFailures"] for l in lines if "ErrorCode" in l} == {"ItemTooLarge": 1}
    assert not [l for l in lines if "ValidationException" in str(l)]


def test_with_ttl_deletes_skipped_a_tie_on_an_item_gone_from_the_source_is_reported_not_guessed(
    ddb_local, make_processor, capsys
):
    """The source no longer has the item: a TTL delete (to be kept in the replica) cannot be told from another
    delete, so the item is reported for repair rather than written either way."""
    source = create_table(ddb_local, "tsrc", SOURCE_REGION)
    replica = create_table(ddb_local, "treplica", REPLICA_REGION, stream=False)
    env = replication_env(source, [replica.ref()], REPLICATION_CHANGE_SOURCE="KINESIS", REPLICATION_TTL_DELETES="SKIP")
    processor = make_processor(env, SOURCE_REGION)
    put(source, "v1")
    put(source, "v2")
    put(source, "v3")
    c1, c2, c3 = in_one_millisecond(source)
    delete(source)  # later, and not delivered yet
    capsys.readouterr()

    all_succeed(processor, [c1])
    result = run(processor, [c3])

    assert result == {"batchItemFailures": [{"itemIdentifier": c3["kinesis"]["sequenceNumber"]}]}
    assert user_items(replica) == [{**KEY, "v": {"S": "v1"}}]  # nothing guessed
    (error,) = [l for l in json_lines(capsys.readouterr().out) if l.get("level") == "ERROR"]
    assert error["errorCode"] == "UnsettledTie" and error["key"] == {"pk": {"S": "k"}}
