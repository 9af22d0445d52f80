"""Adversarial review of ``redrive`` (reviewer's branch): tests that hold the findings.

Each test states the promise of issue 12 it checks; a failing test here is a finding, a passing one a check
that held.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from .helpers import REGION, scan_all
from .redrive_helpers import failure_record, markers, stream_records, write_record
from .test_redrive_modes import KINESIS_SHARD, kinesis_records


def _item(pk: str, value: str, **extra: Any) -> dict[str, Any]:
    return {"pk": {"S": pk}, "v": {"S": value}, **extra}


def test_kinesis_record_of_same_named_table_in_another_region_is_refused(
    cli: Any, local: Any, ddb: Any, make_table: Any, tmp_path: Path
) -> None:
    """Replicated tables share one name in every region. A Kinesis failure record of ``orders`` in eu-west-1
    (its data stream in eu-west-1, its records' awsRegion eu-west-1) is not SOURCE us-east-1:orders; redriving
    it against SOURCE marks it redriven while the replica it failed for was never resynced. A DynamoDB
    Streams record of another region is refused (check_stream_table); a Kinesis one must be too."""
    source, target = make_table("rdk-src"), make_table("rdk-tgt", stream=False)
    ddb.put_item(TableName=source, Item=_item("a", "1"))
    own, _, _ = stream_records(local, ddb, source)
    other_region = "eu-west-1"
    assert other_region != REGION
    arn = f"arn:aws:kinesis:{other_region}:111111111111:stream/changes"
    records = kinesis_records(own, source)
    for record in records:  # the same table name, but a record of the eu-west-1 table
        record["awsRegion"] = other_region
        record["eventSourceARN"] = arn
        data = json.loads(base64.b64decode(record["kinesis"]["data"]))
        data["awsRegion"] = other_region
        record["kinesis"]["data"] = base64.b64encode(json.dumps(data).encode()).decode()
    folder = tmp_path / "bucket"
    write_record(folder, failure_record(records, KINESIS_SHARD, arn, batch_info_key="KinesisBatchInfo"),
                 KINESIS_SHARD)

    run = cli("redrive", source, target, "--from-dir", str(folder))

    assert markers(folder) == [], "a record of the eu-west-1 table was marked redriven against us-east-1"
    assert run.code == 2, run.out + run.err


def test_kinesis_batch_into_a_target_without_change_times_gets_a_settled_stamp(
    cli: Any, local: Any, ddb: Any, make_table: Any, tmp_path: Path
) -> None:
    """The failure record SAYS the replica is Kinesis-fed (KinesisBatchInfo). When the target holds no item
    with ``_rep_changedAt`` in the first pages (an empty replica whose first batch failed, or one filled by
    backfill, which stamps nothing), the repair's detection answers "not Kinesis-fed" and writes SOURCE's item
    plainly, without a change time. A late duplicate of an OLDER Kinesis record then passes the replicator's
    condition ``attribute_not_exists(changedAt) OR changedAt < :t`` and brings older data back (rule 6)."""
    source, target = make_table("rdk-src"), make_table("rdk-tgt", stream=False)
    ddb.put_item(TableName=source, Item=_item("a", "old"))
    own, _, _ = stream_records(local, ddb, source)
    ddb.put_item(TableName=source, Item=_item("a", "new"))
    folder = tmp_path / "bucket"
    arn = f"arn:aws:kinesis:{REGION}:111111111111:stream/changes"
    write_record(folder, failure_record(kinesis_records(own, source), KINESIS_SHARD, arn,
                                        batch_info_key="KinesisBatchInfo"), KINESIS_SHARD)

    run = cli("redrive", source, target, "--from-dir", str(folder), "--json")

    assert run.code == 0, run.err
    (stored,) = scan_all(ddb, target).values()
    assert stored["v"] == {"S": "new"}
    assert "_rep_changedAt" in stored and stored.get("_rep_state") == {"S": "settled"}, stored


def test_binary_and_sort_keys_are_resynced_at_the_right_key(
    cli: Any, local: Any, ddb: Any, make_table: Any, tmp_path: Path
) -> None:
    """Binary partition key + numeric sort key, two records naming the same key (deduped), the key changed
    since: the target gets SOURCE's current item at exactly that key."""
    source = make_table("rdb-src", pk=("pk", "B"), sort=("sk", "N"))
    target = make_table("rdb-tgt", pk=("pk", "B"), sort=("sk", "N"), stream=False)
    key = {"pk": {"B": b"\x00\xffbin"}, "sk": {"N": "1.5"}}
    ddb.put_item(TableName=source, Item={**key, "v": {"S": "old"}})
    ddb.put_item(TableName=source, Item={**key, "v": {"S": "mid"}})
    records, shard, arn = stream_records(local, ddb, source)
    ddb.put_item(TableName=source, Item={**key, "v": {"S": "new"}})
    folder = tmp_path / "bucket"
    write_record(folder, failure_record(records[:1], shard, arn), shard)
    write_record(folder, failure_record(records[1:], shard, arn, payload=False), shard)

    run = cli("redrive", source, target, "--from-dir", str(folder), "--json")

    assert run.code == 0, run.err
    assert run.json()["keys"] == 1 and run.json()["records"]["redriven"] == 2
    (stored,) = scan_all(ddb, target).values()
    assert stored == {**key, "v": {"S": "new"}}


def test_one_failing_target_of_two_leaves_the_record_unmarked(
    cli: Any, local: Any, ddb: Any, make_table: Any, tmp_path: Path
) -> None:
    """Target 2 rejects the item (an index whose key type differs, the poison-record case); target 1 takes
    it. The record must stay unmarked and the run exit 1."""
    source, good = make_table("rd2-src"), make_table("rd2-ok", stream=False)
    bad = f"rd2-bad-{tmp_path.name[-8:]}".replace("_", "-")
    ddb.create_table(
        TableName=bad, BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "v", "AttributeType": "N"}],
        GlobalSecondaryIndexes=[{"IndexName": "by-v", "KeySchema": [{"AttributeName": "v", "KeyType": "HASH"}],
                                 "Projection": {"ProjectionType": "KEYS_ONLY"}}],
    )
    try:
        ddb.put_item(TableName=source, Item=_item("a", "not a number"))
        records, shard, arn = stream_records(local, ddb, source)
        folder = tmp_path / "bucket"
        write_record(folder, failure_record(records, shard, arn), shard)

        run = cli("redrive", source, good, bad, "--from-dir", str(folder), "--json")

        assert run.code == 1, run.err
        assert markers(folder) == []
        assert scan_all(ddb, good) == {("a",): _item("a", "not a number")}
        assert sorted(i["outcome"] for i in run.json()["items"]) == ["failed", "repaired"]
    finally:
        ddb.delete_table(TableName=bad)


def test_progress_counts_can_be_read_while_workers_record_outcomes() -> None:
    """run.py's progress renderer (its own thread) calls ``RedriveResult.counts``, which iterates
    ``outcomes`` without the lock the workers hold while they add to it (run.py:163-165): 'dictionary changed
    size during iteration' kills the progress thread mid-run (a traceback on stderr, progress stops)."""
    import threading

    from cdk_replication.cli.redrive.run import RedriveResult

    result = RedriveResult("x", False, ["t"])
    stop = threading.Event()

    def worker() -> None:
        for i in range(300_000):
            result.outcomes[((str(i),), "t")] = ("repaired", None)
        stop.set()

    thread = threading.Thread(target=worker)
    thread.start()
    errors = []
    while not stop.is_set():
        try:
            result.counts  # what render() does every 0.25 s on a terminal
        except RuntimeError as exc:
            errors.append(str(exc))
            break
    thread.join()
    assert errors == []


def test_a_batch_the_replicator_refused_as_malformed_is_still_redriven_by_key(
    cli: Any, local: Any, ddb: Any, make_table: Any, tmp_path: Path
) -> None:
    """A stream switched to KEYS_ONLY by mistake: the replicator raises MalformedRecord ("no NewImage") on every
    batch, so exactly these records land in the failure destination. Once the view type is fixed, redrive only
    needs their KEYS (it resyncs from SOURCE's current state), yet it refuses the whole run (exit 2, "not a
    record the replicator could have received") and nothing can be redriven from that location."""
    source, target = make_table("rdx-src"), make_table("rdx-tgt", stream=False)
    ddb.put_item(TableName=source, Item=_item("a", "1"))
    records, shard, arn = stream_records(local, ddb, source)
    for record in records:
        record["dynamodb"].pop("NewImage", None)
        record["dynamodb"].pop("OldImage", None)
        record["dynamodb"]["StreamViewType"] = "KEYS_ONLY"
    folder = tmp_path / "bucket"
    write_record(folder, failure_record(records, shard, arn), shard)

    run = cli("redrive", source, target, "--from-dir", str(folder))

    assert run.code == 0, run.err
    assert scan_all(ddb, target) == {("a",): _item("a", "1")}


def test_a_payload_with_fewer_records_than_the_batch_is_not_marked_without_a_reread(
    cli: Any, local: Any, ddb: Any, make_table: Any, tmp_path: Path
) -> None:
    """Defensive: a payload whose Records list is shorter than batchSize (empty here) names no key, so the
    record is marked redriven at once although the batch's records were never looked at."""
    source, target = make_table("rde-src"), make_table("rde-tgt", stream=False)
    ddb.put_item(TableName=source, Item=_item("a", "1"))
    records, shard, arn = stream_records(local, ddb, source)
    document = failure_record(records, shard, arn)
    document["payload"] = json.dumps({"Records": []})
    folder = tmp_path / "bucket"
    write_record(folder, document, shard)

    cli("redrive", source, target, "--from-dir", str(folder))

    assert markers(folder) == [] or scan_all(ddb, target) == {("a",): _item("a", "1")}
