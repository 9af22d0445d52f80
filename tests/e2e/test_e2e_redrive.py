"""Issue 12, item 5: a record fails at the replica for a real cause, lands in the S3 failure destination, the
cause is fixed, ``cdk-replication redrive`` brings the affected keys to the source's CURRENT state and ``verify``
then finds no difference — one-way (DynamoDB Streams), multi-active and Kinesis-fed, with the application
writing throughout. The cause is the demo's: a replica-only GSI keyed by a number while the source writes the
attribute as a string ("Type mismatch for Index Key").

Every run of the command line goes through the deployment's IAM-enforcing gateway as a registered operator.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import time
from pathlib import Path
from typing import Any

import pytest

from cdk_replication.local import workload
from cdk_replication.local.bucket import FAILURE_PREFIX, LocalBucket, failure_object_key
from cdk_replication.local.compare import compare_tables
from cdk_replication.local.demo_poison import ATTRIBUTE, INDEX, _add_number_index
from cdk_replication.local.deploy import LocalDeployment, LocalTable

#: Every DynamoDB Streams read refused: the stream is as good as gone (its 24 hours are over) for the CLI.
NO_STREAM_READS = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": ["dynamodb:*", "ssm:GetParameter"], "Resource": "*"},
    {"Effect": "Deny", "Action": ["dynamodb:GetRecords", "dynamodb:GetShardIterator", "dynamodb:DescribeStream",
                                  "dynamodb:ListStreams"], "Resource": "*"}]}

#: Poison keys of the one-way and Kinesis tests (``Id``, a number), far beyond the workload's keys:
#: STALE is changed again after the fix (its failed image is older than the source), GONE is deleted after
#: the fix (a blind replay would bring it back), UNTOUCHED is only ever in the failed record.
STALE, GONE, UNTOUCHED = 990_101, 990_102, 990_103

_KEY_LAYOUT = re.compile(r"^aws/lambda/(?P<uuid>[0-9a-f-]{36})/(?P<shard>[^/]+)/(?P<y>\d{4})/(?P<m>\d{2})/(?P<d>\d{2})/"
                         r"(?P=y)-(?P=m)-(?P=d)T\d{2}\.\d{2}\.\d{2}-[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}$")


def _spec(table: LocalTable) -> str:
    return f"{table.region}:{table.name}"


# --- failure records -----------------------------------------------------------------------------------------


def _changes(failure: dict[str, Any]) -> list[dict[str, Any]]:
    """The ``dynamodb`` part (Keys, NewImage, ...) of every record in a failure object's ``payload``: a stream
    record's own, or the change record a Kinesis record's base64 ``data`` holds."""
    records = json.loads(failure["payload"])["Records"]
    return [json.loads(base64.b64decode(r["kinesis"]["data"]))["dynamodb"] if "kinesis" in r else r["dynamodb"]
            for r in records]


def _assert_failure_objects(bucket: LocalBucket, mapping_uuid: str, batch_info: str, stream_arn: str,
                            poisons: dict[str, dict[str, Any]]) -> list[str]:
    """Lambda's object key layout and body, and every poison key's failed image in some payload (``poisons``:
    a key's JSON text -> the image the source was given); returns the object keys."""
    keys = bucket.keys(FAILURE_PREFIX)
    assert keys, "nothing reached the S3 failure destination"
    failed: dict[str, dict[str, Any]] = {}
    for key in keys:
        match = _KEY_LAYOUT.match(key)
        assert match and match["uuid"] == mapping_uuid, key
        body = json.loads(bucket.get(key))
        info = body[batch_info]
        assert info["shardId"] == match["shard"] and info["streamArn"] == stream_arn, (key, info)
        assert body["timestamp"][:10] == f"{match['y']}-{match['m']}-{match['d']}", (key, body["timestamp"])
        assert body["requestContext"]["condition"] == "RetryAttemptsExhausted"
        assert isinstance(body["payload"], str) and info["batchSize"] == len(_changes(body))
        failed.update({json.dumps(c["Keys"], sort_keys=True): c.get("NewImage", {}) for c in _changes(body)})
    for key, image in poisons.items():
        assert key in failed, f"{key} is in no failure object's payload"
        assert failed[key][ATTRIBUTE] == image[ATTRIBUTE], (key, failed[key])
    return keys


def _key_text(key: dict[str, Any]) -> str:
    return json.dumps(key, sort_keys=True)


def _drop_number_index(table: LocalTable) -> None:
    """The fix at the cause: drop the replica-only index (and wait until it is gone)."""
    client = table.client()
    client.update_table(TableName=table.name, GlobalSecondaryIndexUpdates=[{"Delete": {"IndexName": INDEX}}])
    deadline = time.monotonic() + 30
    while any(i["IndexName"] == INDEX for i in
              client.describe_table(TableName=table.name)["Table"].get("GlobalSecondaryIndexes", [])):
        assert time.monotonic() < deadline, f"{INDEX} of {table.name} is still there"
        time.sleep(0.1)


def _get(table: LocalTable, key: dict[str, Any]) -> dict[str, Any] | None:
    return table.client().get_item(TableName=table.name, Key=key, ConsistentRead=True).get("Item")


def _visible(item: dict[str, Any] | None, prefix: str = "_rep_") -> dict[str, Any] | None:
    """``item`` without metadata attributes; a tombstone (``<prefix>deleted``) counts as no item."""
    if item is None or f"{prefix}deleted" in item:
        return None
    return {k: v for k, v in item.items() if not k.startswith(prefix)}


def _scan(table: LocalTable) -> dict[str, dict[str, Any]]:
    """Every item of ``table`` (metadata included) by its key's JSON text."""
    pages = table.client().get_paginator("scan").paginate(TableName=table.name, ConsistentRead=True)
    key_names = [k["AttributeName"] for k in table.client().describe_table(TableName=table.name)["Table"]["KeySchema"]]
    return {_key_text({n: item[n] for n in key_names}): item for page in pages for item in page["Items"]}


# --- one-way: DynamoDB Streams and Kinesis ---------------------------------------------------------------------


def _employee_key(index: int) -> dict[str, Any]:
    return {"Id": {"N": str(index)}}


def _poison_item(index: int) -> dict[str, Any]:
    """An item the broken replica refuses: ``CostCenter`` is a string, its index wants a number."""
    return {**_employee_key(index), "Name": {"S": f"Poison {index}"}, ATTRIBUTE: {"S": f"CC-{index}"}}


def _write(topology: Any, ops: list[workload.Operation]) -> None:
    client = topology.source.client()
    for op in ops:
        workload.apply(client, topology.source.name, op)


def _break_replica_and_write(topology: Any, ops: list[workload.Operation]) -> dict[int, dict[str, Any]]:
    """Give the replica the wrong-type index, write the poison items among ``ops`` and deliver everything;
    returns the poison items by key index."""
    _add_number_index(topology.replica)
    poisons = {index: _poison_item(index) for index in (STALE, GONE, UNTOUCHED)}
    half = len(ops) // 2
    _write(topology, ops[:half])
    for item in poisons.values():
        topology.source.client().put_item(TableName=topology.source.name, Item=item)
    _write(topology, ops[half:])
    topology.settle()
    for index in poisons:  # refused by the replica, discarded by the mapping
        assert _visible(_get(topology.replica, _employee_key(index)), topology.prefix) is None, index
    return poisons


def _fail_and_fix(topology: Any, seed: int) -> tuple[list[str], dict[int, dict[str, Any]], dict[str, Any]]:
    """Application writes flow, poison items fail at the replica and land in S3, the cause is fixed and the
    application goes on (STALE changed, GONE deleted). Returns the failure object keys, the poison items and
    STALE's current source item."""
    ops = workload.generate(30, seed=seed)
    thirds = len(ops) // 3
    _write(topology, ops[:thirds])
    topology.settle()
    assert topology.compare().equal
    poisons = _break_replica_and_write(topology, ops[thirds:2 * thirds])
    mapping, bucket = topology.mapping, topology.failure_destination
    assert isinstance(bucket, LocalBucket)
    batch_info = "KinesisBatchInfo" if topology.tombstone else "DDBStreamBatchInfo"
    objects = _assert_failure_objects(bucket, mapping.uuid, batch_info, mapping.event_source_arn,
                                      {_key_text(_employee_key(i)): item for i, item in poisons.items()})

    _drop_number_index(topology.replica)
    source = topology.source.client()
    source.update_item(TableName=topology.source.name, Key=_employee_key(STALE),
                       UpdateExpression="SET #n = :n, #c = :c",
                       ExpressionAttributeNames={"#n": "Name", "#c": ATTRIBUTE},
                       ExpressionAttributeValues={":n": {"S": "Current"}, ":c": {"S": "CC-now"}})
    source.delete_item(TableName=topology.source.name, Key=_employee_key(GONE))
    _write(topology, ops[2 * thirds:])
    topology.settle()
    assert bucket.keys(FAILURE_PREFIX) == objects  # nothing else failed once the index was gone
    stale_now = _get(topology.source, _employee_key(STALE))
    assert stale_now is not None and stale_now[ATTRIBUTE] != poisons[STALE][ATTRIBUTE]  # the failed image is older
    assert not topology.compare().equal  # UNTOUCHED (at least) is still missing
    return objects, poisons, stale_now


def _assert_redriven_to_current_state(topology: Any, operator: Any, objects: list[str],
                                      poisons: dict[int, dict[str, Any]], stale_now: dict[str, Any]) -> None:
    """``redrive`` settles every record, the replica holds the CURRENT state, ``verify`` is clean, a second
    run does nothing."""
    bucket = topology.failure_destination
    tables = (_spec(topology.source), _spec(topology.replica))
    run = operator.cli("redrive", *tables, "--from-dir", str(bucket.directory), "--json")
    assert run.code == 0, run.err + run.out
    report = run.json()
    assert report["complete"] and report["records"]["redriven"] == len(objects), report["records"]
    outcomes = {_key_text(i["key"]): i["outcome"] for i in report["items"]}
    assert outcomes[_key_text(_employee_key(UNTOUCHED))] == "repaired", outcomes
    assert set(report["counts"]) <= {"repaired", "settled"}, report["counts"]

    replica = topology.replica
    assert _visible(_get(replica, _employee_key(STALE)), topology.prefix) == stale_now  # not the failed image
    assert _visible(_get(replica, _employee_key(GONE)), topology.prefix) is None  # not resurrected
    assert _visible(_get(replica, _employee_key(UNTOUCHED)), topology.prefix) == poisons[UNTOUCHED]
    result = topology.compare()
    assert result.equal, (result.missing[:5], result.different, result.unexpected[:5])
    verify = operator.cli("verify", *tables, "--json")
    assert verify.code == 0 and verify.json()["inSync"], verify.err + verify.out
    assert bucket.keys("cdk-replication/redriven/") == [f"cdk-replication/redriven/{k}" for k in objects]

    before = _scan(replica)
    again = operator.cli("redrive", *tables, "--from-dir", str(bucket.directory), "--json")
    assert again.code == 0, again.err + again.out
    second = again.json()
    assert second["records"]["read"] == 0 and second["records"]["alreadyRedriven"] == len(objects), second
    assert second["items"] == [] and _scan(replica) == before


def test_one_way_failed_records_are_redriven_from_s3_to_the_current_state(example_app, topology_of, operator_of,
                                                                          tmp_path):
    topology = topology_of(example_app["E2eRedrive"], bucket_root=tmp_path / "buckets")
    operator = operator_of(topology.deployment, topology.source.account)
    objects, poisons, stale_now = _fail_and_fix(topology, seed=31)
    _assert_redriven_to_current_state(topology, operator, objects, poisons, stale_now)
    assert topology.deployment.gateway.stats.denials == []


def test_kinesis_fed_failed_records_are_redriven_from_s3_to_the_current_state(example_app, topology_of,
                                                                              operator_of, tmp_path):
    topology = topology_of(example_app["E2eRedriveKinesis"], bucket_root=tmp_path / "buckets")
    assert topology.tombstone and topology.mapping.event_source_arn.startswith("arn:aws:kinesis:")
    operator = operator_of(topology.deployment, topology.source.account)
    objects, poisons, stale_now = _fail_and_fix(topology, seed=32)
    _assert_redriven_to_current_state(topology, operator, objects, poisons, stale_now)


def _aged(bucket: LocalBucket, keys: list[str], hours: float) -> list[str]:
    """Move every failure object ``hours`` into the past, as if the batch had failed then: its times, and its key
    (which holds the date and time of the failure). Returns the new keys."""
    moved = []
    for key in keys:
        match = _KEY_LAYOUT.match(key)
        assert match is not None, key
        body = json.loads(bucket.get(key))
        body["timestamp"] = _earlier(body["timestamp"], hours)
        info = body["DDBStreamBatchInfo"]
        for name in ("approximateArrivalOfFirstRecord", "approximateArrivalOfLastRecord"):
            info[name] = _earlier(info[name], hours)
        when = dt.datetime.fromisoformat(body["timestamp"].replace("Z", "+00:00")).timestamp()
        new_key = failure_object_key(match["uuid"], match["shard"], when)
        bucket.put_object(new_key, json.dumps(body, separators=(",", ":")))
        bucket.path(key).unlink()
        moved.append(new_key)
    assert not set(keys) & set(bucket.keys(FAILURE_PREFIX))
    return sorted(moved)


def _earlier(iso: str, hours: float) -> str:
    moment = dt.datetime.fromisoformat(iso.replace("Z", "+00:00")) - dt.timedelta(hours=hours)
    return moment.astimezone(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _assert_stream_refused(topology: Any) -> None:
    """The operator's credentials cannot read the source's stream at all (as if its records were trimmed)."""
    import boto3
    from botocore.exceptions import ClientError

    arn = topology.mapping.event_source_arn  # as AWS (and the gateway) name it
    assert ":dynamodb:" in arn and "/stream/" in arn, arn
    # A session of its own: boto3's default session keeps the credentials it first resolved, which may be an
    # earlier test's, while the operator's are in the environment now.
    streams = boto3.session.Session().client("dynamodbstreams", region_name=topology.source.region,
                                             endpoint_url=topology.deployment.gateway.endpoint_url)
    with pytest.raises(ClientError, match="AccessDenied"):
        streams.describe_stream(StreamArn=arn)


def test_a_failed_record_older_than_24_hours_is_redriven_from_its_s3_payload(example_app, topology_of, operator_of,
                                                                               tmp_path):
    """DynamoDB Streams keep a record 24 hours; the S3 object keeps the record itself. With the object 30 h old
    and every stream read refused to the operator, redrive still brings the replica to the source's state,
    from the payload alone (the gateway refuses nothing it was asked)."""
    topology = topology_of(example_app["E2eRedriveOld"], bucket_root=tmp_path / "buckets")
    objects, poisons, stale_now = _fail_and_fix(topology, seed=33)
    objects = _aged(topology.failure_destination, objects, hours=30)
    for key in objects:
        stamp = json.loads(topology.failure_destination.get(key))["timestamp"]
        age = dt.datetime.now(dt.timezone.utc) - dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
        assert age > dt.timedelta(hours=24), (key, stamp)
    operator = operator_of(topology.deployment, topology.source.account, [NO_STREAM_READS],
                           name="operator-without-stream-access")
    gateway = topology.deployment.gateway
    _assert_stream_refused(topology)
    refused = gateway.stats.denied

    _assert_redriven_to_current_state(topology, operator, objects, poisons, stale_now)
    assert gateway.stats.denied == refused, gateway.stats.denials[-3:]  # no stream read was even tried


# --- multi-active ------------------------------------------------------------------------------------------


class _Writers:
    """The application in both regions of a multi-active table: every write carries a newer ``updatedAt``
    (ms) than the one before, and ``by`` (the region written in)."""

    def __init__(self, tables: dict[str, LocalTable]) -> None:
        self.tables = tables
        self.clock = 1_760_000_000_000

    def put(self, region: str, pk: str, **attributes: Any) -> dict[str, Any]:
        self.clock += 3
        item = {"pk": {"S": pk}, "updatedAt": {"N": str(self.clock)}, "by": {"S": region}, **attributes}
        table = self.tables[region]
        table.client().put_item(TableName=table.name, Item=item)
        return item

    def delete(self, region: str, pk: str) -> None:
        table = self.tables[region]
        table.client().delete_item(TableName=table.name, Key={"pk": {"S": pk}})


def _multi_active_failure_window(app: _Writers, home: str, away: str) -> dict[str, dict[str, Any]]:
    """Both regions write while ``away`` refuses the poison items written in ``home``; returns them by pk."""
    poisons = {pk: app.put(home, pk, Name={"S": pk}, **{ATTRIBUTE: {"S": f"CC-{pk}"}})
               for pk in ("poison-stale", "poison-gone", "poison-untouched")}
    for i in range(5):
        app.put(home, f"order-{i:02d}", round={"N": "2"})
        app.put(away, f"order-{i + 5:02d}", round={"N": "2"})
    app.put(away, "order-03", round={"N": "3"})  # both regions wrote order-03: the later (away) wins
    app.delete(home, "order-02")
    app.delete(away, "order-07")
    return poisons


def _multi_active_after_fix(app: _Writers, home: str, away: str) -> None:
    """The application goes on in both regions once the cause is fixed, also on two of the failed keys."""
    app.put(away, "poison-stale", Name={"S": "Current"}, **{ATTRIBUTE: {"S": "CC-now"}})  # newer than the failed image
    app.delete(home, "poison-gone")
    app.put(home, "order-10", round={"N": "4"})
    app.put(away, "order-11", round={"N": "4"})
    app.put(away, "order-01", round={"N": "4"})


def test_multi_active_failed_records_are_redriven_under_the_conflict_rules(assemblies, e2e_ddb, operator_of,
                                                                            tmp_path):
    from cdk_replication.local import deploy

    with deploy(assemblies["redrive_multi_active_app"], e2e_ddb, bucket_root=tmp_path / "buckets") as dep:
        home, away = "us-west-2", "eu-west-1"
        tables = {r: dep.table("RedriveOrders", region=r) for r in (home, away)}
        prefix = dep.functions[0].environment.get("REPLICATION_METADATA_PREFIX", "_rep_")
        (mapping,) = [m for m in dep.mappings if m.region == home]
        (back,) = [m for m in dep.mappings if m.region == away]
        bucket = mapping.destination
        assert isinstance(bucket, LocalBucket)
        app = _Writers(tables)

        def compare() -> Any:
            return compare_tables(tables[home].client(), tables[home].name, tables[away].client(),
                                  tables[away].name, ["pk"], prefix, tombstone_attribute=f"{prefix}deleted")

        for i in range(10):
            app.put(home if i < 5 else away, f"order-{i:02d}", round={"N": "1"})
        dep.run_until_idle(timeout_s=120)
        assert compare().equal

        _add_number_index(tables[away])
        poisons = _multi_active_failure_window(app, home, away)
        dep.run_until_idle(timeout_s=120)
        objects = _assert_failure_objects(bucket, mapping.uuid, "DDBStreamBatchInfo", mapping.event_source_arn,
                                          {_key_text({"pk": p["pk"]}): p for p in poisons.values()})
        assert back.destination.failure_records() == []  # the other direction never failed
        assert _visible(_get(tables[away], {"pk": {"S": "poison-untouched"}}), prefix) is None

        _drop_number_index(tables[away])
        _multi_active_after_fix(app, home, away)
        dep.run_until_idle(timeout_s=120)
        assert bucket.keys(FAILURE_PREFIX) == objects
        assert not compare().equal  # poison-untouched (at least) is missing in the away region

        operator = operator_of(dep, tables[home].account)
        specs = (_spec(tables[home]), _spec(tables[away]), "--conflict-attribute", "updatedAt")
        _redrive_multi_active(dep, operator, specs, bucket, objects, tables, prefix)
        result = compare()
        assert result.equal, (result.missing[:5], result.different, result.unexpected[:5])
        stale = _visible(_get(tables[away], {"pk": {"S": "poison-stale"}}), prefix)
        assert stale is not None and stale[ATTRIBUTE] == {"S": "CC-now"}  # the newer write, not the failed image
        assert _visible(_get(tables[away], {"pk": {"S": "poison-gone"}}), prefix) is None
        assert _visible(_get(tables[away], {"pk": {"S": "poison-untouched"}}), prefix) == \
            _visible(poisons["poison-untouched"])
        verify = operator.cli("verify", *specs[:2], "--json")
        assert verify.code == 0 and verify.json()["inSync"], verify.err + verify.out

        again = operator.cli("redrive", *specs, "--from-dir", str(bucket.directory), "--json")
        assert again.code == 0, again.err + again.out
        assert again.json()["records"]["read"] == 0 and again.json()["items"] == [], again.json()


def _redrive_multi_active(dep: LocalDeployment, operator: Any, specs: tuple[str, ...], bucket: LocalBucket,
                          objects: list[str], tables: dict[str, LocalTable], prefix: str) -> None:
    """Redrive ``home`` -> ``away``, then let both replicators run: the resync's writes are echoes, so the
    home table is not written again and both mappings go idle (no echo storm)."""
    home, away = list(tables.values())
    home_before = _scan(home)
    run = operator.cli("redrive", *specs, "--from-dir", str(bucket.directory), "--json")
    assert run.code == 0, run.err + run.out
    report = run.json()
    assert report["complete"] and report["records"]["redriven"] == len(objects), report["records"]
    outcomes = {i["key"]["pk"]["S"]: i["outcome"] for i in report["items"]}
    assert outcomes["poison-untouched"] == "repaired", outcomes
    assert set(report["counts"]) <= {"repaired", "settled", "kept"}, report["counts"]

    dep.run_until_idle(timeout_s=60)
    assert _scan(home) == home_before, "the redrive's writes came back to the source region"
    invocations = sum(m.stats.invocations for m in dep.mappings)
    dep.run_until_idle(timeout_s=60)
    assert sum(m.stats.invocations for m in dep.mappings) == invocations  # idle
    assert all(m.stats.function_errors == 0 for m in dep.mappings)
