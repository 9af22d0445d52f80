"""A configured key (REPLICATION_KEY) that is not the table's real key is a configuration error: every record
whose ``Keys`` name other attributes is failed loudly and never written (issue 10, defect 7).

The records are real stream records of DynamoDB Local tables (and the same records shaped as Kinesis Data
Streams for DynamoDB delivers them), parsed by the replicator's own path.
"""

from __future__ import annotations

from typing import Any

import pytest

from rep_helpers import FakeContext, Table, create_table, json_lines, kinesis_events, replication_env

SOURCE_REGION, REPLICA_REGION = "us-east-1", "eu-west-1"


def run(processor, records: list[dict[str, Any]]) -> dict[str, Any]:
    return processor.process({"Records": records}, FakeContext())


def sequence_of(record: dict[str, Any]) -> str:
    if record.get("eventSource") == "aws:kinesis":
        return record["kinesis"]["sequenceNumber"]
    return record["dynamodb"]["SequenceNumber"]


def write_distinct_items_sharing_a_partition_key(source: Table) -> None:
    """Three items of a table keyed (pk, sk): two share pk 'a', so a pk-only key would merge them."""
    for pk, sk in (("a", "1"), ("a", "2"), ("b", "1")):
        source.client.put_item(TableName=source.name, Item={"pk": {"S": pk}, "sk": {"S": sk}, "v": {"S": pk + sk}})


def mismatch_lines(out: str) -> tuple[list[dict[str, Any]], dict[str, Any], list[dict[str, Any]]]:
    """(error log lines about the key, the totals metric, the per-code metrics) of captured stdout."""
    lines = json_lines(out)
    errors = [line for line in lines if line.get("level") == "ERROR" and line.get("errorCode") == "KeySchemaMismatch"]
    metrics = [line for line in lines if "_aws" in line]
    totals = next(m for m in metrics if "RecordsReceived" in m)
    return errors, totals, [m for m in metrics if "ErrorCode" in m]


@pytest.mark.parametrize("change_source", ["DYNAMODB_STREAMS", "KINESIS"])
def test_a_sort_key_missing_from_the_configuration_fails_every_record_and_writes_nothing(
    ddb_local, make_processor, capsys, change_source
):
    """The existing_source case: the table has (pk, sk), the replicator was told pk only. Before the fix the
    replicator keyed items by pk alone and wrote (a,1) and (a,2) as one item of the pk-only replica."""
    source = create_table(ddb_local, "src", SOURCE_REGION, key_types=("S", "S"))
    replica = create_table(ddb_local, "replica", REPLICA_REGION, stream=False)  # as the construct makes it
    extra = {"REPLICATION_CHANGE_SOURCE": "KINESIS"} if change_source == "KINESIS" else {}
    processor = make_processor(replication_env(source, [replica.ref()], **extra), SOURCE_REGION)
    write_distinct_items_sharing_a_partition_key(source)
    records = source.new_records()
    if change_source == "KINESIS":
        records = kinesis_events(source, records)
    capsys.readouterr()

    result = run(processor, records)

    assert result == {"batchItemFailures": [{"itemIdentifier": sequence_of(records[0])}]}
    assert replica.items() == []
    errors, totals, per_code = mismatch_lines(capsys.readouterr().out)
    # One line per invocation, not per record (Lambda re-delivers the batch on every retry): the count, the
    # first record's key and sequence number, and both key sets; the metric still counts every record.
    assert len(errors) == 1
    (summary,) = errors
    assert (summary["configuredKey"], summary["recordKey"], summary["records"]) == (["pk"], ["pk", "sk"], 3)
    assert summary["key"] == {"pk": {"S": "a"}, "sk": {"S": "1"}}
    assert summary["sequenceNumber"] == sequence_of(records[0])
    assert "cdk-replication backfill" in summary["message"]
    assert (totals["RecordsReceived"], totals["RecordsApplied"], totals["RecordsFailed"]) == (3, 0, 3)
    assert [(m["ErrorCode"], m["WriteFailures"]) for m in per_code] == [("KeySchemaMismatch", 3)]

    # Lambda re-delivers from the reported record: the same answer, one more line, and still nothing written.
    assert run(processor, records) == result
    assert replica.items() == []
    assert len(mismatch_lines(capsys.readouterr().out)[0]) == 1


def test_a_configured_sort_key_the_table_lacks_fails_the_record(ddb_local, make_processor, capsys):
    """The other direction: told (pk, sk), the table is keyed by pk only (before the fix: an exception from deep
    inside that failed the whole invocation without naming the configuration)."""
    source = create_table(ddb_local, "src", SOURCE_REGION)
    replica = create_table(ddb_local, "replica", REPLICA_REGION, stream=False, key_types=("S", "S"))
    processor = make_processor(replication_env(source, [replica.ref()], sort_key=True), SOURCE_REGION)
    source.client.put_item(TableName=source.name, Item={"pk": {"S": "a"}})
    records = source.new_records()
    capsys.readouterr()

    assert run(processor, records) == {"batchItemFailures": [{"itemIdentifier": sequence_of(records[0])}]}

    assert replica.items() == []
    errors, _, _ = mismatch_lines(capsys.readouterr().out)
    assert [(e["configuredKey"], e["recordKey"], e["records"]) for e in errors] == [(["pk", "sk"], ["pk"], 1)]


def test_records_with_the_configured_key_around_a_mismatched_one_are_applied(ddb_local, make_processor, capsys):
    """One batch holding a record of a (pk, sk) table between records of the configured pk-only table: the
    good records are applied, the mismatched one is the lowest reported, so Lambda resumes from it."""
    source = create_table(ddb_local, "src", SOURCE_REGION)
    stranger = create_table(ddb_local, "stranger", SOURCE_REGION, key_types=("S", "S"))
    replica = create_table(ddb_local, "replica", REPLICA_REGION, stream=False)
    processor = make_processor(replication_env(source, [replica.ref()]), SOURCE_REGION)
    for name in ("x", "y"):
        source.client.put_item(TableName=source.name, Item={"pk": {"S": name}})
    stranger.client.put_item(TableName=stranger.name, Item={"pk": {"S": "x"}, "sk": {"S": "1"}, "v": {"S": "no"}})
    good = source.new_records()
    bad = stranger.new_records()
    records = [good[0], bad[0], good[1]]

    assert run(processor, records) == {"batchItemFailures": [{"itemIdentifier": sequence_of(bad[0])}]}

    assert replica.items() == source.items()
    errors, totals, _ = mismatch_lines(capsys.readouterr().out)
    assert len(errors) == 1 and errors[0]["key"] == {"pk": {"S": "x"}, "sk": {"S": "1"}}
    assert (totals["RecordsApplied"], totals["RecordsFailed"]) == (2, 1)


def test_another_tables_records_in_a_shared_kinesis_stream_are_still_skipped_not_failed(
    ddb_local, make_processor, capsys
):
    """A data stream shared with a table keyed differently: its records are left before their keys are read."""
    source = create_table(ddb_local, "src", SOURCE_REGION)
    other = create_table(ddb_local, "other", SOURCE_REGION, key_types=("S", "S"))
    replica = create_table(ddb_local, "replica", REPLICA_REGION, stream=False)
    env = replication_env(source, [replica.ref()], REPLICATION_CHANGE_SOURCE="KINESIS")
    processor = make_processor(env, SOURCE_REGION)
    source.client.put_item(TableName=source.name, Item={"pk": {"S": "mine"}})
    other.client.put_item(TableName=other.name, Item={"pk": {"S": "theirs"}, "sk": {"S": "1"}})
    records = kinesis_events(other, other.new_records()) + kinesis_events(source, source.new_records())
    capsys.readouterr()

    assert run(processor, records) == {"batchItemFailures": []}

    assert [i["pk"] for i in replica.items()] == [{"S": "mine"}]
    errors, totals, _ = mismatch_lines(capsys.readouterr().out)
    assert errors == []
    assert (totals["RecordsReceived"], totals["RecordsSkipped"], totals["RecordsFailed"]) == (2, 1, 0)
