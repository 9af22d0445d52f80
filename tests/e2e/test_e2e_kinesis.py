"""The example app with ``changeSource=KINESIS`` deployed locally: the source table's changes go through the
local Kinesis streaming destination (which plays DynamoDB's part) into a Kinesis data stream, and a Kinesis
event source mapping feeds the real replicator. Kinesis may reorder and duplicate one item's changes; the
pass condition is still rule 1, the replica converges exactly (tombstones count as absent items)."""

from __future__ import annotations

import dataclasses
import json

from cdk_replication.local import workload


def _write(topology, ops):
    client = topology.source.client()
    for op in ops:
        workload.apply(client, topology.source.name, op)


def _settle(topology):
    """Deliver everything, including records the reorder fault still holds back."""
    topology.settle()
    bridge = topology.deployment.bridge_for(topology.source.name)
    if bridge.release_held():
        topology.settle()


def _assert_converged(topology):
    result = topology.compare()
    assert result.equal, (result.missing[:5], result.different, result.unexpected[:5])
    return result


def test_cross_account_copy_through_a_data_stream_converges(example_app, topology_of):
    topology = topology_of(example_app["E2eKinesis"])
    assert topology.mapping.event_source_arn.startswith("arn:aws:kinesis:us-west-2:111111111111:stream/")
    assert topology.replica.account == "222222222222"
    ops = workload.generate(300, seed=11)
    _write(topology, ops)
    _settle(topology)

    result = _assert_converged(topology)
    assert 0 < result.source_items < 300
    items = topology.replica.client().scan(TableName=topology.replica.name)["Items"]
    assert all("_rep_changedAt" in item for item in items)
    tombstones = [item for item in items if "_rep_deleted" in item]
    assert tombstones and all(set(t) == {"Id", "_rep_deleted", "_rep_changedAt", "_rep_state", "_rep_expiresAt"} for t in tombstones)
    stats = topology.mapping.stats
    assert stats.records_processed == len(ops) and stats.function_errors == 0
    assert len(topology.failures()) == 0


def test_reordered_and_duplicated_changes_converge(example_app, topology_of):
    topology = topology_of(example_app["E2eKinesisFaults"])
    bridge = topology.deployment.bridge_for(topology.source.name)
    bridge.duplicate_probability = 0.2
    bridge.reorder_probability = 0.3
    topology.mapping.duplicate_next_batches(2)
    # Few items, many changes each: reorders and duplicates hit the same item again and again.
    ops = workload.generate(40, seed=12, update_share=0.9, delete_share=0.5)
    for round_ in range(3):
        _write(topology, ops)
        _settle(topology)
    _assert_converged(topology)
    assert bridge.stats.duplicates > 0 and bridge.stats.reorders > 0
    assert topology.mapping.stats.duplicates == 2
    assert len(topology.failures()) == 0


def test_writes_within_one_millisecond_are_ordered_by_their_images(kinesis_millis_app, topology_of):
    """With MILLISECOND precision the bridge stamps writes within one millisecond alike, as AWS does; with
    reorders on top, only the images can tell the replicator which of them came last."""
    topology = topology_of(kinesis_millis_app)
    bridge = topology.deployment.bridge_for(topology.source.name)
    bridge.reorder_probability = 0.3
    client, name = topology.source.client(), topology.source.name
    for n in range(60):  # back to back, so that several writes of one item share a millisecond
        client.put_item(TableName=name, Item={"pk": {"S": f"k{n % 3}"}, "n": {"N": str(n)}})
        if n % 17 == 16:
            client.delete_item(TableName=name, Key={"pk": {"S": f"k{n % 3}"}})
    _settle(topology)

    _assert_converged(topology)
    assert bridge.stats.reorders > 0
    stamps = {}
    kinesis = topology.deployment.kinesis_client(topology.source.region, topology.source.account)
    stream_name = topology.mapping.event_source_arn.rsplit("/", 1)[1]
    for record in _read_all(kinesis, stream_name):
        body = record["dynamodb"]
        stamps.setdefault((body["Keys"]["pk"]["S"], body["ApproximateCreationDateTime"]), set()).add(
            json.dumps(body.get("NewImage"), sort_keys=True))
    assert any(len(images) > 1 for images in stamps.values()), "no two writes of an item shared a millisecond"


def test_writes_that_return_to_earlier_states_within_a_millisecond_converge(kinesis_millis_app, topology_of):
    """Each item cycles through two values and deletes, back to back, so that a millisecond often holds an
    item's return to an earlier state, which the records cannot order: delivered one record per invocation
    with reorders and duplicates, such items are settled from the source (a GetItem with the function's own
    role from the template; a few times per run here). The bridge's faults (a duplicate follows its
    original, a reordered record the next one) do not produce the schedules that broke the image rule, so
    this passes on it too: tests/replicator/test_ordered_ties.py and the property test hold that."""
    topology = topology_of(kinesis_millis_app)
    bridge = topology.deployment.bridge_for(topology.source.name)
    bridge.reorder_probability = 0.4
    bridge.duplicate_probability = 0.3
    topology.mapping.duplicate_next_batches(3)
    # One record per invocation: each tie is then decided across invocations, by the stored item.
    topology.mapping.settings = dataclasses.replace(topology.mapping.settings, batch_size=1)
    client, name = topology.source.client(), topology.source.name
    for n in range(90):
        key = {"pk": {"S": f"k{n % 2}"}}
        if n % 7 == 6:
            client.delete_item(TableName=name, Key=key)
        else:
            client.put_item(TableName=name, Item={**key, "v": {"S": f"v{(n // 2) % 2}"}})
    for key in ({"pk": {"S": "k0"}}, {"pk": {"S": "k1"}}):  # each item ends with a return to a state
        for value in ("v0", "v1", "v0"):
            client.put_item(TableName=name, Item={**key, "v": {"S": value}})
    _settle(topology)

    _assert_converged(topology)
    assert bridge.stats.reorders > 0 and bridge.stats.duplicates > 0
    assert topology.mapping.stats.function_errors == 0 and len(topology.failures()) == 0
    # Settled from the source at least once: the GetItem on the source (and its permission in the template,
    # which the local gateway enforces) is proven end to end, not only in the unit tests.
    metrics = [json.loads(line) for line in topology.function.logs() if line.startswith("{")]
    settled = sum(m.get("Conflicts", 0) for m in metrics if m.get("Kind") == "SettledFromSource")
    assert settled > 0, [m for m in metrics if "Kind" in m or "ErrorCode" in m][:5]


def _read_all(client, stream_name):
    for shard in client.list_shards(StreamName=stream_name)["Shards"]:
        iterator = client.get_shard_iterator(StreamName=stream_name, ShardId=shard["ShardId"],
                                             ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        while iterator:
            page = client.get_records(ShardIterator=iterator, Limit=1000)
            yield from (json.loads(r["Data"]) for r in page["Records"])
            if not page["Records"]:
                break
            iterator = page.get("NextShardIterator")
