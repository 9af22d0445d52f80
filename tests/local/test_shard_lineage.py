"""A child shard is read only after its parent is finished (DynamoDB Local never splits shards, so the
stream here is a stand-in with the API's shape)."""

from __future__ import annotations

import datetime as dt

from cdk_replication.local import LocalQueue, MappingSettings, StreamEventSourceMapping

from esm_helpers import ScriptedFunction, keys_of

ARN = "arn:aws:dynamodb:ddblocal:000000000000:table/fake/stream/2020-01-01T00:00:00.000"


class _NotFound(Exception):
    pass


class FakeStreams:
    """DescribeStream / GetShardIterator / GetRecords over fixed shards; closed shards end their iterators."""

    class exceptions:  # noqa: N801 - mirrors the boto3 client attribute
        ResourceNotFoundException = _NotFound
        ExpiredIteratorException = type("ExpiredIteratorException", (Exception,), {})
        TrimmedDataAccessException = type("TrimmedDataAccessException", (Exception,), {})

    def __init__(self, shards: list[dict], records: dict[str, list[str]]) -> None:
        self.shards = shards
        self.records = records
        self.reads: list[str] = []
        self._seq = 0
        self._raw: dict[str, list[dict]] = {sid: [self._record(k) for k in keys] for sid, keys in records.items()}

    def _record(self, key: str) -> dict:
        self._seq += 1
        return {"eventID": str(self._seq), "eventName": "INSERT", "dynamodb": {
            "ApproximateCreationDateTime": dt.datetime.now(dt.timezone.utc), "Keys": {"pk": {"S": key}},
            "NewImage": {"pk": {"S": key}}, "SequenceNumber": f"{self._seq:021d}", "SizeBytes": 10,
            "StreamViewType": "NEW_AND_OLD_IMAGES"}}

    def describe_stream(self, StreamArn, **_):  # noqa: N803 - boto3 names
        return {"StreamDescription": {"Shards": self.shards}}

    def get_shard_iterator(self, StreamArn, ShardId, ShardIteratorType, **_):  # noqa: N803
        return {"ShardIterator": f"{ShardId}|0"}

    def get_records(self, ShardIterator, Limit):  # noqa: N803
        shard_id, pos = ShardIterator.split("|")
        self.reads.append(shard_id)
        start = int(pos)
        page = self._raw[shard_id][start:start + Limit]
        closed = any(s["ShardId"] == shard_id and "EndingSequenceNumber" in s["SequenceNumberRange"]
                     for s in self.shards)
        end = start + len(page)
        nxt = None if closed and end >= len(self._raw[shard_id]) else f"{shard_id}|{end}"
        return {"Records": page, "NextShardIterator": nxt}


def _shard(shard_id, parent=None, closed=True):
    rng = {"StartingSequenceNumber": "1"}
    if closed:
        rng["EndingSequenceNumber"] = "999"
    shard = {"ShardId": shard_id, "SequenceNumberRange": rng}
    if parent:
        shard["ParentShardId"] = parent
    return shard


def _mapping(streams, fn, **settings):
    return StreamEventSourceMapping(fn, ARN, streams_client=streams, region="us-east-1", account="123456789012",
                                    settings=MappingSettings(**settings), destination=LocalQueue("dlq"))


def test_children_wait_for_their_parent():
    # Listed children first: the order of DescribeStream must not decide the processing order.
    streams = FakeStreams(
        [_shard("child-a", "parent", closed=False), _shard("child-b", "parent", closed=False), _shard("parent")],
        {"parent": ["p1", "p2", "p3", "p4", "p5"], "child-a": ["a1", "a2", "a3"], "child-b": ["b1"]},
    )
    fn = ScriptedFunction()
    _mapping(streams, fn, batch_size=2).run_until_idle()
    delivered = [k for b in fn.batches for k in b]
    assert delivered[:5] == ["p1", "p2", "p3", "p4", "p5"]
    assert sorted(delivered[5:]) == ["a1", "a2", "a3", "b1"]
    assert [k for k in delivered if k.startswith("a")] == ["a1", "a2", "a3"]
    assert fn.batches[2] == ["p5"]  # a closed shard's last records go out without waiting for a full batch


def test_a_failing_parent_holds_its_children_until_the_record_is_discarded():
    streams = FakeStreams([_shard("child", "parent", closed=False), _shard("parent")],
                          {"parent": ["p1", "bad"], "child": ["c1"]})

    def behaviour(event):
        if "bad" in keys_of(event):
            raise RuntimeError("poison")

    fn = ScriptedFunction(behaviour)
    mapping = _mapping(streams, fn, batch_size=1, maximum_retry_attempts=2)
    for _ in range(3):
        mapping.step()
    assert "child" not in streams.reads  # the parent is still retrying its record
    mapping.run_until_idle()
    assert fn.batches == [["p1"], ["bad"], ["bad"], ["bad"], ["c1"]]
    assert len(mapping.destination) == 1


def test_orphan_shard_whose_parent_was_trimmed_is_a_root():
    streams = FakeStreams([_shard("orphan", "trimmed-long-ago", closed=False)], {"orphan": ["o1"]})
    fn = ScriptedFunction()
    _mapping(streams, fn).run_until_idle()
    assert fn.batches == [["o1"]]
