"""Transformed ONE_WAY targets against DynamoDB Local, fed with real stream records (DynamoDB Streams and the
Kinesis change source): items that stop or start matching, deletes of items never held, masked keys."""

from __future__ import annotations

import json
from typing import Any

import pytest

from replicator import secrets
from replicator.config import ConfigError, load_config
from replicator.transform import Transform, with_digest

from rep_helpers import Table, create_table, kinesis_events, replication_env, sort_items, user_items
from rep_helpers import run_batch as run

SOURCE_REGION, REPLICA_REGION = "us-east-1", "eu-west-1"
KEY = b"test-hmac-key"
SECRET_ARN = "arn:aws:secretsmanager:us-east-1:111111111111:secret:replica-hmac-AbCdEf"
RAW = ("alice@example.com", "1 Secret Road", "Alice")


def make_spec(**fields: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "version": 1,
        "filter": {"op": "eq", "attr": "status", "value": {"S": "active"}},
        "keep": None,
        "drop": ["address"],
        "masks": {"pk": {"kind": "hmac"}, "email": {"kind": "hmac"},
                  "name": {"kind": "redact", "value": {"S": "REDACTED"}}},
        "secretArn": SECRET_ARN,
    }
    spec.update(fields)
    return with_digest(spec)


@pytest.fixture(autouse=True)
def hmac_key(monkeypatch) -> None:
    """The secret's value, as Secrets Manager would return it (tests/local/test_secrets*.py serve it for real)."""
    monkeypatch.setattr(secrets, "_boto3_key_loader", lambda: (lambda arn: KEY if arn == SECRET_ARN else b""))


def sent_requests(processor: Any, replica: Table) -> list[dict[str, Any]]:
    """Every request the processor's client for ``replica`` sends from now on (parameters as given)."""
    seen: list[dict[str, Any]] = []
    ref = next(t for t in processor.config.targets if t.table_name == replica.name)
    client = processor.clients.for_table(ref)
    client.meta.events.register("before-call.dynamodb.*", lambda params, **_: seen.append(params))
    return seen


def expected(source: Table, spec: dict[str, Any], key_names: tuple[str, ...] = ("pk",)) -> list[Any]:
    t = Transform.from_spec(spec, KEY, key_names)
    return sort_items(out for out in (t.apply(item) for item in source.items()) if out is not None)


def person(pk: str, status: str) -> dict[str, Any]:
    return {"pk": {"S": pk}, "status": {"S": status}, "email": {"S": RAW[0]}, "address": {"S": RAW[1]},
            "name": {"S": RAW[2]}, "n": {"N": "12345678901234567890123456789012345678"}}


def set_status(source: Table, pk: str, status: str) -> None:
    source.client.update_item(TableName=source.name, Key={"pk": {"S": pk}}, UpdateExpression="SET #s = :s",
                              ExpressionAttributeNames={"#s": "status"}, ExpressionAttributeValues={":s": {"S": status}})


@pytest.mark.parametrize("change_source", ["DYNAMODB_STREAMS", "KINESIS"])
def test_items_that_stop_or_start_matching_and_never_held_deletes(ddb_local, make_processor, change_source):
    source = create_table(ddb_local, "tsrc", SOURCE_REGION)
    replica = create_table(ddb_local, "treplica", REPLICA_REGION, stream=False)
    spec = make_spec()
    extra = {"REPLICATION_CHANGE_SOURCE": change_source} if change_source == "KINESIS" else {}
    processor = make_processor(replication_env(source, [{**replica.ref(), "transform": spec}], **extra),
                               SOURCE_REGION)
    deliver = (lambda records: run(processor, kinesis_events(source, records))) if extra else (
        lambda records: run(processor, records))
    c = source.client
    c.put_item(TableName=source.name, Item=person("stays", "active"))
    c.put_item(TableName=source.name, Item=person("leaves", "active"))
    c.put_item(TableName=source.name, Item=person("joins", "inactive"))
    assert deliver(source.new_records()) == {"batchItemFailures": []}
    assert user_items(replica) == expected(source, spec) and len(user_items(replica)) == 2

    requests = sent_requests(processor, replica)
    set_status(source, "leaves", "inactive")  # stops matching: deleted from the replica
    set_status(source, "joins", "active")  # starts matching: written whole
    c.put_item(TableName=source.name, Item=person("never", "inactive"))
    c.delete_item(TableName=source.name, Key={"pk": {"S": "never"}})  # a delete of an item never held
    assert deliver(source.new_records()) == {"batchItemFailures": []}
    items = user_items(replica)
    assert items == expected(source, spec)
    held = {i["pk"]["S"] for i in items}
    t = Transform.from_spec(spec, KEY, ["pk"])
    assert held == {t.key({"pk": {"S": k}})["pk"]["S"] for k in ("stays", "joins")}
    joined = next(i for i in items if i["pk"] == t.key({"pk": {"S": "joins"}})["pk"])
    assert joined["n"] == {"N": "12345678901234567890123456789012345678"} and joined["name"] == {"S": "REDACTED"}
    text = json.dumps(requests, default=repr)
    assert not any(raw in text for raw in (*RAW, '"never"', '"leaves"', '"joins"'))
    never = t.key({"pk": {"S": "never"}})["pk"]["S"]
    assert never not in text  # nothing at all was sent for the item the replica never held
    assert never not in json.dumps(replica.items(), default=repr)  # not even a tombstone


def test_a_masked_numeric_partition_key_with_a_sort_key(ddb_local, make_processor):
    source = create_table(ddb_local, "tnsrc", SOURCE_REGION, key_types=("N", "S"))
    replica = create_table(ddb_local, "tnreplica", REPLICA_REGION, stream=False, key_types=("N", "S"))
    spec = make_spec(filter=None, drop=None, masks={"pk": {"kind": "hmac"}, "secret": {"kind": "remove"}})
    env = replication_env(source, [{**replica.ref(), "transform": spec}], sort_key=True)
    processor = make_processor(env, SOURCE_REGION)
    c = source.client
    for i in range(3):
        c.put_item(TableName=source.name, Item={"pk": {"N": str(10**37 + i)}, "sk": {"S": "a"},
                                                 "secret": {"S": "x"}})
    c.delete_item(TableName=source.name, Key={"pk": {"N": str(10**37)}, "sk": {"S": "a"}})
    assert run(processor, source.new_records()) == {"batchItemFailures": []}
    items = replica.items()
    assert items == expected(source, spec, ("pk", "sk")) and len(items) == 2
    assert all("secret" not in i and i["pk"]["N"] not in (str(10**37 + 1), str(10**37 + 2)) for i in items)


def test_transforms_are_refused_for_multi_active_and_without_a_secret(ddb_local):
    source = create_table(ddb_local, "tcsrc", SOURCE_REGION)
    other = create_table(ddb_local, "tcother", REPLICA_REGION)
    with pytest.raises(ConfigError, match=r"REPLICATION_TARGETS\[0\]\.transform: transforms are for ONE_WAY"):
        load_config(replication_env(source, [{**other.ref(), "transform": make_spec()}], mode="MULTI_ACTIVE"))
    with pytest.raises(ConfigError, match="must name the secret"):
        load_config(replication_env(source, [{**other.ref(), "transform": make_spec(secretArn=None)}]))
    with pytest.raises(ConfigError, match=r"masks\.pk: 'pk' is a key attribute"):
        load_config(replication_env(source, [{**other.ref(), "transform": make_spec(
            masks={"pk": {"kind": "remove"}})}]))


def test_a_kinesis_tie_settled_from_the_source_writes_the_transformed_item(ddb_local, make_processor):
    """Changes of one millisecond that return to a state cannot be ordered: the source is read and its item
    written -- transformed, under the replica's key, with no raw value."""
    import time

    source = create_table(ddb_local, "tksrc", SOURCE_REGION)
    replica = create_table(ddb_local, "tkreplica", REPLICA_REGION, stream=False)
    spec = make_spec()
    env = replication_env(source, [{**replica.ref(), "transform": spec}], REPLICATION_CHANGE_SOURCE="KINESIS")
    processor = make_processor(env, SOURCE_REGION)
    c = source.client
    c.put_item(TableName=source.name, Item=person("p", "active"))
    c.put_item(TableName=source.name, Item={**person("p", "active"), "email": {"S": "bob@example.com"}})
    c.put_item(TableName=source.name, Item=person("p", "active"))
    records = source.new_records()
    stamp = int(time.time() * 1000)
    assert run(processor, kinesis_events(source, records, times=[stamp] * len(records))) == {"batchItemFailures": []}
    assert user_items(replica) == expected(source, spec)
    (stored,) = replica.items()
    assert stored["_rep_state"] == {"S": "settled"}
    assert not any(raw in json.dumps(stored, default=repr) for raw in (*RAW, "bob@example.com", '"p"'))
