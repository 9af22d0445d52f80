"""The saturated-shard benchmark models Lambda's parallel batches and issue 17's black-box workload; these
pin the two properties its numbers rest on (no DynamoDB Local, no timing)."""

from __future__ import annotations

from benchmarks.saturated import split_lanes
from benchmarks.workload import mixed_deletes


def _record(key: str, seq: int, kinesis: bool) -> dict:
    if kinesis:
        return {"kinesis": {"partitionKey": key, "sequenceNumber": str(seq)}}
    return {"dynamodb": {"Keys": {"pk": {"S": key}}, "SequenceNumber": str(seq)}}


def _key(record: dict) -> str:
    return record["kinesis"]["partitionKey"] if "kinesis" in record else record["dynamodb"]["Keys"]["pk"]["S"]


def _seq(record: dict) -> int:
    return int(record["kinesis"]["sequenceNumber"] if "kinesis" in record else record["dynamodb"]["SequenceNumber"])


def test_lanes_keep_every_key_in_one_lane_in_stream_order() -> None:
    for kinesis in (False, True):
        records = [_record(f"k{i % 37}", i, kinesis) for i in range(500)]
        lanes = split_lanes(records, 5)
        assert sorted(_seq(r) for lane in lanes for r in lane) == list(range(500))
        assert sum(1 for lane in lanes if lane) > 1  # the keys spread over several lanes
        lane_of_key: dict[str, int] = {}
        for n, lane in enumerate(lanes):
            assert [_seq(r) for r in lane] == sorted(_seq(r) for r in lane)
            for r in lane:
                assert lane_of_key.setdefault(_key(r), n) == n


def test_mixed_workload_deletes_a_tenth_of_all_writes_and_recreates_them_next_round() -> None:
    items, rounds = 1000, 3
    deleted = [set(mixed_deletes(r, items, rounds)) for r in range(rounds)]
    assert not deleted[0]  # round 0 creates every item
    assert sum(len(d) for d in deleted) == items * rounds // 10
    assert not deleted[1] & deleted[2]  # an item deleted in round 1 comes back in round 2
