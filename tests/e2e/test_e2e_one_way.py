"""The example app deployed on DynamoDB Local: the real constructs, the real replicator, Lambda's delivery
behaviour (emulated) and faults. The pass condition is always rule 1: the replica converges exactly."""

from __future__ import annotations

import random

from cdk_replication.local import workload
from cdk_replication.local.event_source_mapping import lane_of
from cdk_replication.local.stream_records import read_all_records


def _write(topology, ops):
    client = topology.source.client()
    for op in ops:
        workload.apply(client, topology.source.name, op)


def _assert_converged(topology):
    result = topology.compare()
    assert result.equal, (result.missing[:5], result.different, result.unexpected[:5])
    return result


def test_inserts_updates_and_deletes_replicate_exactly(example_app, topology_of):
    topology = topology_of(example_app["E2eBasic"])
    ops = workload.generate(400, seed=1)
    _write(topology, ops)
    topology.settle()
    result = _assert_converged(topology)
    assert 0 < result.source_items < 400  # some items were deleted
    stats = topology.mapping.stats
    assert stats.records_processed == len(ops) and stats.batches_succeeded > 1  # more than one batch
    assert stats.function_errors == 0 and len(topology.failures()) == 0


def test_exotic_values_and_binary_keys(exotic_app, topology_of):
    topology = topology_of(exotic_app)
    client = topology.source.client()
    name = topology.source.name
    items = [
        {"pk": {"B": b"\x00\xff\x00"}, "sk": {"S": "a"}, "n": {"N": "9" * 38}, "small": {"N": "-0.000000000000000000000000000000000001"},
         "ss": {"SS": ["x", "y"]}, "ns": {"NS": ["1", "2.5", "-3"]}, "bs": {"BS": [b"\x01", b"\x02\x03"]},
         "empty_s": {"S": ""}, "empty_m": {"M": {}}, "empty_l": {"L": []}, "null": {"NULL": True},
         "nested": {"M": {"m": {"M": {"l": {"L": [{"M": {}}, {"B": b"\xfe"}, {"N": "1" + "0" * 37}]}}}}},
         "bool": {"BOOL": False}, "unicode": {"S": "Zürich ✓ 東京"}},
        {"pk": {"B": bytes(range(256))}, "sk": {"S": "b"}, "blob": {"B": random.Random(1).randbytes(300_000)}},
        {"pk": {"B": b"\x00\xff\x00"}, "sk": {"S": "gone"}, "v": {"N": "1"}},
    ]
    for item in items:
        client.put_item(TableName=name, Item=item)
    client.update_item(TableName=name, Key={"pk": {"B": b"\x00\xff\x00"}, "sk": {"S": "a"}},
                       UpdateExpression="SET n = :n REMOVE ss", ExpressionAttributeValues={":n": {"N": "-" + "9" * 38}})
    client.delete_item(TableName=name, Key={"pk": {"B": b"\x00\xff\x00"}, "sk": {"S": "gone"}})
    topology.settle()
    _assert_converged(topology)
    replica = topology.replica.client().get_item(
        TableName=topology.replica.name, Key={"pk": {"B": b"\x00\xff\x00"}, "sk": {"S": "a"}}, ConsistentRead=True)["Item"]
    assert replica["n"] == {"N": "-" + "9" * 38} and "ss" not in replica
    assert replica["nested"]["M"]["m"]["M"]["l"]["L"][1] == {"B": b"\xfe"}
    assert replica["empty_m"] == {"M": {}} and replica["empty_s"] == {"S": ""}


def test_duplicate_delivery_and_replays_converge(example_app, topology_of):
    topology = topology_of(example_app["E2eReplay"])
    mapping = topology.mapping
    mapping.duplicate_next_batches(3)
    _write(topology, workload.generate(150, seed=2))
    topology.settle()
    _assert_converged(topology)
    # An older batch delivered again after newer ones (a lost checkpoint) must not leave stale items behind
    # once the stream is delivered on from there, and a full replay from the oldest record converges too.
    mapping.replay_last_batch()
    topology.settle()
    _assert_converged(topology)
    _write(topology, workload.generate(150, seed=3)[:100])
    mapping.replay_from_trim_horizon()
    topology.settle()
    _assert_converged(topology)
    assert mapping.stats.duplicates == 3


def test_crash_mid_batch_is_retried_and_converges(example_app, topology_of):
    topology = topology_of(example_app["E2eCrash"])
    # Dies after the first BatchWriteItem call of an invocation: mid-batch, as a batch holds more than 25 records
    # (100 at factor 1; ~30-40 per lane at factor 10, where a later call could be a batch's last).
    topology.function.faults.crash_after_writes(1)
    _write(topology, workload.generate(300, seed=4))
    topology.settle()
    _assert_converged(topology)
    assert topology.function.stats.crashes == 1
    assert topology.mapping.stats.function_errors >= 1
    assert len(topology.failures()) == 0


def test_throttled_replica_keeps_records_until_applied(example_app, topology_of):
    topology = topology_of(example_app["E2eThrottle"])
    fault = topology.function.faults.throttle_writes(topology.replica.name, calls=40)
    _write(topology, workload.generate(200, seed=5))
    topology.settle(timeout_s=240)
    _assert_converged(topology)
    assert fault.failed_calls == 40
    assert len(topology.failures()) == 0 and topology.mapping.stats.records_discarded == 0


def test_missing_replica_table_holds_records_until_it_exists(example_app, topology_of, e2e_ddb):
    topology = topology_of(example_app["E2eMissing"])
    replica = topology.replica.client()
    replica.delete_table(TableName=topology.replica.name)
    _write(topology, workload.generate(120, seed=6))
    for _ in range(3):  # a few failed deliveries: retried, nothing discarded yet
        topology.mapping.step()
    stats = topology.mapping.stats
    assert stats.records_processed == 0 and stats.records_discarded == 0
    assert stats.partial_failures + stats.function_errors >= 3
    # Deploying again re-creates the missing table (the deploy is idempotent for the others).
    from cdk_replication.local import deploy

    deploy(example_app["E2eMissing"], e2e_ddb, stacks=[topology.replica.stack_name]).close()
    topology.settle()
    _assert_converged(topology)
    assert len(topology.failures()) == 0


def _keys_in_range(topology, start: str, end: str, lane_of_key: str | None = None) -> set[str]:
    """Keys of the stream records from ``start`` to ``end``; with ``lane_of_key``, only those of that key's lane
    (at a parallelization factor above 1 a batch is one lane's records, and its range encloses other lanes')."""
    streams = topology.source.client("dynamodbstreams")
    factor = topology.deployment.mapping_for(topology.function).settings.parallelization_factor
    records = [r for r in read_all_records(streams, topology.source.local_stream_arn)
               if int(start) <= int(r["dynamodb"]["SequenceNumber"]) <= int(end)]
    if lane_of_key is not None:
        (lane,) = {lane_of(r, factor) for r in records if r["dynamodb"]["Keys"]["Id"]["N"] == lane_of_key}
        records = [r for r in records if lane_of(r, factor) == lane]
    return {r["dynamodb"]["Keys"]["Id"]["N"] for r in records}


def test_poison_record_goes_to_the_failure_destination_and_the_shard_moves_on(example_app, topology_of):
    topology = topology_of(example_app["E2ePoison"])
    client, name = topology.source.client(), topology.source.name
    # The replica refuses every write that carries the poison item (as it would an item over 400 KB).
    topology.function.faults.fail_writes(topology.replica.name, "ValidationException", fraction=1.0,
                                         message="Item size has exceeded the maximum allowed size",
                                         matching="POISON-7f3a")
    for i in range(60):
        client.put_item(TableName=name, Item={"Id": {"N": str(i)}, "Name": {"S": f"employee {i}"}})
    client.put_item(TableName=name, Item={"Id": {"N": "1000"}, "Name": {"S": "POISON-7f3a"}})
    for i in range(60, 330):
        client.put_item(TableName=name, Item={"Id": {"N": str(i)}, "Name": {"S": f"employee {i}"}})
    topology.settle(timeout_s=240)

    (failure,) = topology.failures()
    if "payload" in failure:  # an S3 destination holds the records themselves; SQS only their range
        assert "POISON-7f3a" in failure["payload"]
    info = failure["DDBStreamBatchInfo"]
    assert info["streamArn"] == topology.source.stream_arn
    lost = _keys_in_range(topology, info["startSequenceNumber"], info["endSequenceNumber"], lane_of_key="1000")
    assert "1000" in lost and len(lost) == info["batchSize"] < 100
    result = topology.compare()
    # Every record outside the reported range was applied, including the whole rest of the shard.
    assert set(result.missing) <= {f'{{"Id": "{k}"}}' for k in lost}
    assert '{"Id": "1000"}' in result.missing and not result.different and not result.unexpected
    assert result.matching >= 330 - info["batchSize"]
    item = topology.replica.client().get_item(TableName=topology.replica.name, Key={"Id": {"N": "329"}})
    assert "Item" in item  # the last record of the shard was applied


def test_cross_account_replica_through_the_writer_role(example_app, topology_of):
    topology = topology_of(example_app["E2eCrossAccount"])
    assert topology.replica.account == "222222222222" != topology.source.account
    _write(topology, workload.generate(150, seed=8))
    topology.settle()
    _assert_converged(topology)
    assumed = [c for c in topology.deployment.sts.calls if c.get("Action") == "AssumeRole"]
    assert assumed and all(":222222222222:role/" in c["RoleArn"] for c in assumed)
