"""ONE_WAY replication against DynamoDB Local, fed with records read from the source table's real stream."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse

from rep_helpers import OTHER_ACCOUNT, FakeContext, create_table, json_lines, replication_env

SOURCE_REGION, REPLICA_REGION = "us-east-1", "eu-west-1"


@pytest.fixture
def topology(ddb_local, make_processor):
    """A source in us-east-1, a replica in eu-west-1 (same account) and one in another account (via role)."""
    source = create_table(ddb_local, "src", SOURCE_REGION)
    near = create_table(ddb_local, "replica", REPLICA_REGION, stream=False)
    far = create_table(ddb_local, "replica", REPLICA_REGION, account=OTHER_ACCOUNT, stream=False)
    env = replication_env(source, [near.ref(), far.ref(role=True)])
    processor = make_processor(env, SOURCE_REGION)
    return source, [near, far], processor


def run(processor, records: list[dict[str, Any]], **context: Any) -> dict[str, Any]:
    return processor.process({"Records": records}, FakeContext(**context))


def test_insert_update_delete_reach_every_target(topology):
    source, replicas, processor = topology
    c = source.client
    for i in range(5):
        c.put_item(TableName=source.name, Item={"pk": {"S": f"k{i}"}, "v": {"N": str(i)}})
    c.update_item(
        TableName=source.name,
        Key={"pk": {"S": "k1"}},
        UpdateExpression="SET v = :v, extra = :e",
        ExpressionAttributeValues={":v": {"N": "100"}, ":e": {"S": "x"}},
    )
    c.delete_item(TableName=source.name, Key={"pk": {"S": "k2"}})

    records = source.new_records()
    assert [r["eventName"] for r in records] == ["INSERT"] * 5 + ["MODIFY", "REMOVE"]
    assert run(processor, records) == {"batchItemFailures": []}

    expected = source.items()
    assert len(expected) == 4
    for replica in replicas:
        assert replica.items() == expected


def test_every_attribute_type_is_copied_exactly(ddb_local, make_processor):
    source = create_table(ddb_local, "types", SOURCE_REGION, key_types=("B", "N"))
    replica = create_table(ddb_local, "types", REPLICA_REGION, key_types=("B", "N"), stream=False)
    processor = make_processor(replication_env(source, [replica.ref()], sort_key=True), SOURCE_REGION)
    big = "12345678901234567890123456789012345678"
    item = {
        "pk": {"B": b"\x00\xff\x10binary-key"},
        "sk": {"N": "-9.9999999999999999999999999999999999999E+125"},
        "n38": {"N": big},
        "tiny": {"N": "1E-130"},
        "bin": {"B": bytes(range(256))},
        "empty_bin": {"B": b""},
        "empty_s": {"S": ""},
        "unicode": {"S": "zaż\u00f3\u0142\u0107 \U0001f600"},
        "ss": {"SS": ["a", "b", ""]},
        "ns": {"NS": [big, "0", "-1.5"]},
        "bs": {"BS": [b"\x00", b"\x01\x02", b"\xff"]},
        "bool": {"BOOL": False},
        "null": {"NULL": True},
        "empty_map": {"M": {}},
        "empty_list": {"L": []},
        "nested": {
            "M": {
                "inner": {"M": {"deeper": {"M": {}}, "b": {"B": b"\x00"}}},
                "list": {"L": [{"M": {}}, {"N": big}, {"L": [{"S": ""}, {"BS": [b"\x07"]}]}]},
            }
        },
    }
    source.client.put_item(TableName=source.name, Item=item)
    assert run(processor, source.new_records()) == {"batchItemFailures": []}
    assert replica.items() == source.items()
    got = replica.client.get_item(TableName=replica.name, Key={"pk": item["pk"], "sk": item["sk"]})["Item"]
    assert got["n38"] == {"N": big}
    assert got["bin"] == {"B": bytes(range(256))}
    assert got["nested"]["M"]["inner"]["M"]["deeper"] == {"M": {}}


def test_batches_beyond_25_keys_and_coalesced_item_history(topology):
    source, replicas, processor = topology
    c = source.client
    for i in range(60):
        c.put_item(TableName=source.name, Item={"pk": {"S": f"item-{i:03d}"}, "v": {"N": "0"}})
    for version in range(1, 31):  # one hot item, written 30 times, deleted and re-created in between
        if version == 15:
            c.delete_item(TableName=source.name, Key={"pk": {"S": "hot"}})
        else:
            c.put_item(TableName=source.name, Item={"pk": {"S": "hot"}, "v": {"N": str(version)}})
    calls: list[int] = []
    for replica in replicas:
        client = processor.clients.for_table(processor.config.targets[replicas.index(replica)])
        client.meta.events.register(
            "provide-client-params.dynamodb.BatchWriteItem",
            lambda params, **_: calls.append(sum(len(v) for v in params["RequestItems"].values())),
        )
    records = source.new_records()
    assert len(records) == 90
    assert run(processor, records) == {"batchItemFailures": []}
    for replica in replicas:
        assert replica.items() == source.items()
    # 61 distinct keys per target: three requests of at most 25 each, and the hot item written once.
    assert sorted(calls) == [11, 11, 25, 25, 25, 25]
    hot = replicas[0].client.get_item(TableName=replicas[0].name, Key={"pk": {"S": "hot"}})["Item"]
    assert hot["v"] == {"N": "30"}


def test_duplicate_and_overlapping_delivery_converge(topology):
    source, replicas, processor = topology
    c = source.client
    for i in range(10):
        c.put_item(TableName=source.name, Item={"pk": {"S": f"k{i}"}, "v": {"N": str(i)}})
    first = source.new_records()
    for i in range(0, 10, 2):
        c.delete_item(TableName=source.name, Key={"pk": {"S": f"k{i}"}})
    c.put_item(TableName=source.name, Item={"pk": {"S": "k1"}, "v": {"N": "11"}})
    second = source.new_records()

    assert run(processor, first) == {"batchItemFailures": []}
    assert run(processor, first + second) == {"batchItemFailures": []}  # whole-batch retry after a crash
    assert run(processor, second) == {"batchItemFailures": []}
    assert run(processor, second[3:]) == {"batchItemFailures": []}  # resumption from a reported record
    for replica in replicas:
        assert replica.items() == source.items()


def test_missing_target_reports_lowest_sequence_number_and_logs_keys(ddb_local, make_processor, capsys):
    source = create_table(ddb_local, "src", SOURCE_REGION)
    replica = create_table(ddb_local, "replica", REPLICA_REGION, stream=False)
    missing = {"tableName": "does-not-exist", "region": REPLICA_REGION, "account": source.account}
    processor = make_processor(replication_env(source, [replica.ref(), missing]), SOURCE_REGION)
    for i in range(30):
        source.client.put_item(TableName=source.name, Item={"pk": {"S": f"k{i}"}})
    records = source.new_records()
    capsys.readouterr()

    result = run(processor, records)

    assert result == {"batchItemFailures": [{"itemIdentifier": records[0]["dynamodb"]["SequenceNumber"]}]}
    assert replica.items() == source.items()  # the healthy target is not held back
    lines = json_lines(capsys.readouterr().out)
    errors = [l for l in lines if l.get("level") == "ERROR"]
    assert len(errors) == 30
    assert {e["errorCode"] for e in errors} == {"ResourceNotFoundException"}
    assert {e["targetTable"] for e in errors} == {f"{REPLICA_REGION}/{source.account}/does-not-exist"}
    assert sorted(e["key"]["pk"]["S"] for e in errors) == sorted(f"k{i}" for i in range(30))
    by_key = {e["key"]["pk"]["S"]: e for e in errors}
    assert by_key["k7"]["sequenceNumber"] == records[7]["dynamodb"]["SequenceNumber"]
    assert by_key["k7"]["eventName"] == "INSERT"
    metrics = [l for l in lines if "_aws" in l]
    totals = next(m for m in metrics if "RecordsReceived" in m)
    assert (totals["RecordsReceived"], totals["RecordsApplied"], totals["RecordsFailed"]) == (30, 0, 30)
    assert totals["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "CdkReplication"
    per_code = next(m for m in metrics if m.get("ErrorCode") == "ResourceNotFoundException")
    assert per_code["WriteFailures"] == 30


def test_item_rejected_by_target_fails_alone(ddb_local, make_processor):
    """The replica has an index on ``g`` typed S; an item whose ``g`` is a number is rejected by it alone."""
    source = create_table(ddb_local, "src", SOURCE_REGION)
    replica = create_table(ddb_local, "replica", REPLICA_REGION, stream=False, gsi=("g", "S"))
    processor = make_processor(replication_env(source, [replica.ref()]), SOURCE_REGION)
    c = source.client
    for i in range(10):
        c.put_item(TableName=source.name, Item={"pk": {"S": f"ok{i}"}, "g": {"S": "fine"}})
    c.put_item(TableName=source.name, Item={"pk": {"S": "bad"}, "g": {"S": "fine-at-first"}})
    for i in range(10, 20):
        c.put_item(TableName=source.name, Item={"pk": {"S": f"ok{i}"}, "g": {"S": "fine"}})
    c.put_item(TableName=source.name, Item={"pk": {"S": "bad"}, "g": {"N": "7"}})
    c.delete_item(TableName=source.name, Key={"pk": {"S": "ok3"}})
    records = source.new_records()

    result = run(processor, records)

    first_bad = next(r for r in records if r["dynamodb"]["Keys"]["pk"]["S"] == "bad")
    assert result == {"batchItemFailures": [{"itemIdentifier": first_bad["dynamodb"]["SequenceNumber"]}]}
    expected = [i for i in source.items() if i["pk"]["S"] != "bad"]
    assert replica.items() == expected  # every other item applied, the bad item's records all held back
    # Lambda re-delivers from the reported record: still rejected, still the same report, nothing else harmed.
    resumed = records[records.index(first_bad) :]
    assert run(processor, resumed) == result
    assert replica.items() == expected


def _throttle(client, operation: str, times: int, code: str = "ProvisionedThroughputExceededException") -> list[int]:
    """Makes the first ``times`` calls of ``operation`` fail with ``code`` before reaching the server."""
    calls = [0]

    def hook(**_: Any) -> Any:
        calls[0] += 1
        if calls[0] <= times:
            return (
                AWSResponse("http://injected", 400, {}, None),
                {"Error": {"Code": code, "Message": "injected"}, "ResponseMetadata": {"HTTPStatusCode": 400}},
            )
        return None

    client.meta.events.register(f"before-call.dynamodb.{operation}", hook)
    return calls


def test_throttling_is_retried_until_applied(topology):
    source, replicas, processor = topology
    for i in range(30):
        source.client.put_item(TableName=source.name, Item={"pk": {"S": f"k{i}"}})
    calls = _throttle(processor.clients.for_table(processor.config.targets[0]), "BatchWriteItem", times=4)
    assert run(processor, source.new_records()) == {"batchItemFailures": []}
    assert calls[0] >= 6  # two requests, four throttled attempts
    for replica in replicas:
        assert replica.items() == source.items()


def test_unprocessed_items_are_retried(topology):
    source, replicas, processor = topology
    for i in range(20):
        source.client.put_item(TableName=source.name, Item={"pk": {"S": f"k{i}"}, "b": {"B": b"\x00\x01"}})
    client = processor.clients.for_table(processor.config.targets[0])
    table = processor.config.targets[0].table_name
    sent: list[dict[str, Any]] = []
    seen: list[int] = []

    def remember(params: dict[str, Any], **_: Any) -> None:
        sent.append(params)
        seen.append(len(params["RequestItems"][table]))

    def leave_half_unprocessed(**_: Any) -> Any:
        if len(seen) == 1:  # the first call "processes" nothing and hands half of it back twice over
            requests = sent[0]["RequestItems"][table]
            return (
                AWSResponse("http://injected", 200, {}, None),
                {"UnprocessedItems": {table: requests[::2]}, "ResponseMetadata": {"HTTPStatusCode": 200}},
            )
        return None

    client.meta.events.register("provide-client-params.dynamodb.BatchWriteItem", remember)
    client.meta.events.register("before-call.dynamodb.BatchWriteItem", leave_half_unprocessed)
    assert run(processor, source.new_records()) == {"batchItemFailures": []}
    assert seen == [20, 10]
    # Only the unprocessed half was re-sent: the other half "succeeded" in the injected first call, so the
    # replica lacks it until a later record of those items; the resent half is there, byte for byte.
    got = {i["pk"]["S"] for i in replicas[0].items()}
    assert got == {f"k{i}" for i in range(0, 20, 2)}
    assert replicas[1].items() == source.items()


def test_retries_stop_at_the_deadline_and_report(topology, capsys):
    source, replicas, processor = topology
    for i in range(3):
        source.client.put_item(TableName=source.name, Item={"pk": {"S": f"k{i}"}})
    records = source.new_records()
    processor.clients.for_table(processor.config.targets[0])  # created up front: the deadline is short
    _throttle(processor.clients.for_table(processor.config.targets[1]), "BatchWriteItem", times=10_000)
    capsys.readouterr()
    result = run(processor, records, remaining_ms=3_000)  # 1.5 s of it usable, 1.5 s kept as margin
    assert result == {"batchItemFailures": [{"itemIdentifier": records[0]["dynamodb"]["SequenceNumber"]}]}
    errors = [l for l in json_lines(capsys.readouterr().out) if l.get("level") == "ERROR"]
    assert {(e["errorCode"], e["retriesExhausted"]) for e in errors} == {
        ("ProvisionedThroughputExceededException", True)
    }
    assert replicas[0].items() == source.items()
    assert replicas[1].items() == []


def test_malformed_event_fails_the_invocation(topology):
    _, _, processor = topology
    with pytest.raises(ValueError):
        processor.process({"Records": [{"eventName": "INSERT", "dynamodb": {"Keys": {"pk": {"B": "not base64!"}},
                                                                             "SequenceNumber": "1",
                                                                             "NewImage": {}}}]}, FakeContext())


def test_binary_values_arrive_as_bytes():
    from replicator.attributes import from_event_value

    assert from_event_value({"B": base64.b64encode(b"\x00\xff").decode()}) == {"B": b"\x00\xff"}


def test_handler_entry_point(ddb_local, lambda_env, monkeypatch):
    """The module Lambda loads: configuration from the environment at import, the partial batch response."""
    import importlib
    import sys

    source = create_table(ddb_local, "src", SOURCE_REGION)
    replica = create_table(ddb_local, "replica", REPLICA_REGION, stream=False)
    lambda_env(SOURCE_REGION)
    for name, value in replication_env(source, [replica.ref()], LOG_LEVEL="DEBUG").items():
        monkeypatch.setenv(name, value)
    source.client.put_item(TableName=source.name, Item={"pk": {"S": "a"}, "n": {"N": "1"}})
    sys.modules.pop("replicator.handler", None)
    module = importlib.import_module("replicator.handler")
    try:
        assert module.handler({"Records": source.new_records()}, FakeContext()) == {"batchItemFailures": []}
        assert replica.items() == source.items()
        with pytest.raises(ValueError, match="no Records"):
            module.handler({}, FakeContext())
    finally:
        module.PROCESSOR.close()
        sys.modules.pop("replicator.handler", None)


def _as_ttl_delete(record: dict[str, Any]) -> dict[str, Any]:
    """The record DynamoDB writes when its TTL process deletes an item (DynamoDB Local has no TTL sweeper)."""
    return {**record, "userIdentity": {"type": "Service", "principalId": "dynamodb.amazonaws.com"}}


@pytest.mark.parametrize(("policy", "replica_keeps_item"), [(None, False), ("SKIP", True)])
def test_ttl_deletes_follow_the_policy(ddb_local, make_processor, policy, replica_keeps_item):
    source = create_table(ddb_local, "src", SOURCE_REGION)
    replica = create_table(ddb_local, "replica", REPLICA_REGION, stream=False)
    extra = {"REPLICATION_TTL_DELETES": policy} if policy else {}
    processor = make_processor(replication_env(source, [replica.ref()], **extra), SOURCE_REGION)
    source.client.put_item(TableName=source.name, Item={"pk": {"S": "a"}, "expires": {"N": "1"}})
    assert run(processor, source.new_records()) == {"batchItemFailures": []}
    source.client.delete_item(TableName=source.name, Key={"pk": {"S": "a"}})
    records = [_as_ttl_delete(r) for r in source.new_records()]
    assert run(processor, records) == {"batchItemFailures": []}
    assert (replica.items() != []) is replica_keeps_item
