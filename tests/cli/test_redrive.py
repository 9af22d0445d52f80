"""``redrive`` from a folder laid out like the S3 failure destination: failure records built from real stream
records of DynamoDB Local tables; the target ends with SOURCE's CURRENT state, never a failed record's image."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from .helpers import scan_all
from .redrive_helpers import failure_record, markers, stream_records, write_record


def _item(pk: str, value: str) -> dict[str, Any]:
    return {"pk": {"S": pk}, "v": {"S": value}}


@pytest.fixture()
def tables(make_table: Any, ddb: Any) -> tuple[str, str]:
    return make_table("rd-src"), make_table("rd-tgt", stream=False)


def test_never_resurrects_older_data(cli: Any, local: Any, ddb: Any, tables: tuple[str, str], tmp_path: Path) -> None:
    """The failed records hold old images (a=old, b=old); since then SOURCE changed a and deleted b. The target
    held b (and a stale a). Replaying the payload would write a=old and b=old; redrive writes a=new, removes b."""
    source, target = tables
    ddb.put_item(TableName=source, Item=_item("a", "old"))
    ddb.put_item(TableName=source, Item=_item("b", "old"))
    records, shard, arn = stream_records(local, ddb, source)
    ddb.put_item(TableName=source, Item=_item("a", "new"))
    ddb.delete_item(TableName=source, Key={"pk": {"S": "b"}})
    ddb.put_item(TableName=target, Item=_item("a", "stale"))
    ddb.put_item(TableName=target, Item=_item("b", "old"))
    folder = tmp_path / "bucket"
    key = write_record(folder, failure_record(records, shard, arn), shard)

    run = cli("redrive", source, target, "--from-dir", str(folder), "--json")

    assert run.code == 0, run.err
    assert scan_all(ddb, target) == {("a",): _item("a", "new")}
    doc = run.json()
    assert doc["records"] == {"read": 1, "alreadyRedriven": 0, "notFailureRecords": 0, "settled": 1,
                              "redriven": 1, "lost": 0, "unreadable": 0}
    assert doc["keys"] == 2 and doc["counts"] == {"repaired": 2} and doc["complete"] is True
    assert markers(folder) == [key]


def test_second_run_does_nothing(cli: Any, local: Any, ddb: Any, tables: tuple[str, str], tmp_path: Path) -> None:
    source, target = tables
    ddb.put_item(TableName=source, Item=_item("a", "1"))
    records, shard, arn = stream_records(local, ddb, source)
    folder = tmp_path / "bucket"
    write_record(folder, failure_record(records, shard, arn), shard)
    assert cli("redrive", source, target, "--from-dir", str(folder)).code == 0
    ddb.put_item(TableName=target, Item=_item("a", "changed by someone else"))  # a second run must not touch it

    again = cli("redrive", source, target, "--from-dir", str(folder), "--json")

    assert again.code == 0, again.err
    assert again.json()["records"]["alreadyRedriven"] == 1 and again.json()["records"]["read"] == 0
    assert again.json()["keys"] == 0
    assert scan_all(ddb, target) == {("a",): _item("a", "changed by someone else")}
    text = cli("redrive", source, target, "--from-dir", str(folder))
    assert "1 already redriven, skipped" in text.out


def test_dry_run_writes_nothing(cli: Any, local: Any, ddb: Any, tables: tuple[str, str], tmp_path: Path) -> None:
    """Nothing is written, not even the marker of a record whose key is already in sync."""
    source, target = tables
    ddb.put_item(TableName=source, Item=_item("a", "1"))
    ddb.put_item(TableName=source, Item=_item("b", "in sync"))
    ddb.put_item(TableName=target, Item=_item("b", "in sync"))
    records, shard, arn = stream_records(local, ddb, source)
    folder = tmp_path / "bucket"
    for record in records:
        write_record(folder, failure_record([record], shard, arn), shard)

    run = cli("redrive", source, target, "--from-dir", str(folder), "--dry-run")

    assert run.code == 1, run.err  # something remains to be done
    assert "settled 1, would-put 1" in run.out and "dry run: nothing written" in run.out
    assert scan_all(ddb, target) == {("b",): _item("b", "in sync")}
    assert markers(folder) == []


def test_metadata_only_record_rereads_the_stream_range(cli: Any, local: Any, ddb: Any, tables: tuple[str, str],
                                                       tmp_path: Path) -> None:
    """Without payload (what SQS gets) the batch's range is read again from the stream: only its keys."""
    source, target = tables
    for pk in ("a", "b", "c", "d"):
        ddb.put_item(TableName=source, Item=_item(pk, "1"))
    records, shard, arn = stream_records(local, ddb, source)
    folder = tmp_path / "bucket"
    write_record(folder, failure_record(records[1:3], shard, arn, payload=False), shard)

    run = cli("redrive", source, target, "--from-dir", str(folder), "--json")

    assert run.code == 0, run.err
    assert sorted(scan_all(ddb, target)) == [("b",), ("c",)]
    assert run.json()["keys"] == 2


@pytest.mark.parametrize("gone", ["unknown shard", "trimmed start"])
def test_a_range_the_stream_no_longer_holds_is_reported_exactly(
    cli: Any, local: Any, ddb: Any, tables: tuple[str, str], tmp_path: Path, gone: str
) -> None:
    source, target = tables
    ddb.put_item(TableName=source, Item=_item("a", "1"))
    records, shard, arn = stream_records(local, ddb, source)
    if gone == "unknown shard":
        shard = "shardId-00000000000000000000-deadbeef"
        start = records[0]["dynamodb"]["SequenceNumber"]
    else:
        start = "0" * 21  # before the first record the stream holds: trimmed
    end = records[0]["dynamodb"]["SequenceNumber"]
    folder = tmp_path / "bucket"
    write_record(folder, failure_record(records, shard, arn, payload=False, start=start, end=end), shard)

    run = cli("redrive", source, target, "--from-dir", str(folder), "--json")

    assert run.code == 1, run.err
    assert "lostRanges" in run.json(), run.out + run.err
    (lost,) = run.json()["lostRanges"]
    assert (lost["streamArn"], lost["shardId"], lost["startSequenceNumber"], lost["endSequenceNumber"]) == (
        arn, shard, start, end)
    assert run.json()["records"]["lost"] == 1 and run.json()["records"]["redriven"] == 0
    assert markers(folder) == []
    text = cli("redrive", source, target, "--from-dir", str(folder))
    assert f"lost: {arn} shard {shard} {start}..{end}" in text.out and "verify --repair" in text.out


def test_a_record_whose_keys_cannot_be_read_stays_unmarked_and_the_run_goes_on(
    cli: Any, local: Any, ddb: Any, tables: tuple[str, str], tmp_path: Path
) -> None:
    """One failure record holds a stream record without Keys (not even redrive can name its item): that record
    stays unmarked and is reported, exit 1; the other failure record is still resynced and marked."""
    source, target = tables
    ddb.put_item(TableName=source, Item=_item("a", "1"))
    ddb.put_item(TableName=source, Item=_item("b", "1"))
    records, shard, arn = stream_records(local, ddb, source)
    broken = [dict(records[1], dynamodb={k: v for k, v in records[1]["dynamodb"].items() if k != "Keys"})]
    folder = tmp_path / "bucket"
    good = write_record(folder, failure_record(records[:1], shard, arn), shard)
    bad = write_record(folder, failure_record(broken, shard, arn), shard)

    run = cli("redrive", source, target, "--from-dir", str(folder), "--json")

    assert run.code == 1, run.out + run.err
    assert markers(folder) == [good]
    assert scan_all(ddb, target) == {("a",): _item("a", "1")}
    doc = run.json()
    assert doc["records"]["unreadable"] == 1 and doc["complete"] is False
    assert [u["record"] for u in doc["unreadable"]] == [str(folder / bad)]
    assert "Keys" in doc["unreadable"][0]["reason"]


def test_a_folder_where_markers_cannot_be_written_is_refused_before_any_item_write(
    cli: Any, local: Any, ddb: Any, tables: tuple[str, str], tmp_path: Path
) -> None:
    """Markers go to DIR/cdk-replication/redriven/; when they cannot be written (here a file is in the way)
    the run stops with exit 2 before it writes an item, rather than resync everything and mark nothing."""
    source, target = tables
    ddb.put_item(TableName=source, Item=_item("a", "1"))
    records, shard, arn = stream_records(local, ddb, source)
    folder = tmp_path / "bucket"
    write_record(folder, failure_record(records, shard, arn), shard)
    (folder / "cdk-replication").write_text("in the way")

    run = cli("redrive", source, target, "--from-dir", str(folder))

    assert run.code == 2, run.out + run.err
    assert "markers" in run.err and "cdk-replication/redriven" in run.err
    assert scan_all(ddb, target) == {}
    assert cli("redrive", source, target, "--from-dir", str(folder), "--dry-run").code == 1  # a dry run marks nothing


def test_record_of_another_table_is_refused(cli: Any, local: Any, ddb: Any, make_table: Any,
                                            tables: tuple[str, str], tmp_path: Path) -> None:
    source, target = tables
    other = make_table("rd-other")
    ddb.put_item(TableName=other, Item=_item("a", "1"))
    ddb.put_item(TableName=source, Item=_item("a", "source"))
    records, shard, arn = stream_records(local, ddb, other)
    folder = tmp_path / "bucket"
    write_record(folder, failure_record(records, shard, arn), shard)

    run = cli("redrive", source, target, "--from-dir", str(folder))

    assert run.code == 2
    assert f"not of SOURCE {source}" in run.err and "with that table as SOURCE" in run.err
    assert scan_all(ddb, target) == {}


def test_objects_that_are_not_failure_records_are_skipped_and_counted(
    cli: Any, local: Any, ddb: Any, tables: tuple[str, str], tmp_path: Path
) -> None:
    source, target = tables
    ddb.put_item(TableName=source, Item=_item("a", "1"))
    records, shard, arn = stream_records(local, ddb, source)
    folder = tmp_path / "bucket"
    write_record(folder, failure_record(records, shard, arn), shard)
    (folder / "notes.txt").write_text("not json")
    (folder / "other.json").write_text('{"hello": 1}')
    damaged = failure_record(records, shard, arn)
    damaged["payload"] = "{cut short"  # read from the stream instead
    write_record(folder, damaged, shard)
    (folder / "cdk-replication").mkdir()
    (folder / "cdk-replication" / "anything.json").write_text("{}")  # the command's own: never read

    run = cli("redrive", source, target, "--from-dir", str(folder), "--json")

    assert run.code == 0, run.err
    doc = run.json()
    assert doc["records"]["notFailureRecords"] == 2
    assert sorted(Path(s["object"]).name for s in doc["skipped"]) == ["notes.txt", "other.json"]
    assert doc["records"]["read"] == 2 and doc["records"]["redriven"] == 2
    assert any("payload is not JSON" in note and "read from the stream" in note for note in doc["notes"])
    assert scan_all(ddb, target) == {("a",): _item("a", "1")}


def test_bad_locations_are_refused_before_anything_is_written(cli: Any, tables: tuple[str, str],
                                                              tmp_path: Path) -> None:
    source, target = tables
    missing = cli("redrive", source, target, "--from-dir", str(tmp_path / "nope"))
    assert missing.code == 2 and "is not a folder" in missing.err
    bad_url = cli("redrive", source, target, "--from", "http://bucket")
    assert bad_url.code == 2 and "'http://bucket' is not an S3 location" in bad_url.err
    (tmp_path / "empty").mkdir()
    empty = cli("redrive", source, target, "--from-dir", str(tmp_path / "empty"))
    assert empty.code == 0 and f"nothing found at {tmp_path / 'empty'}: check the location" in empty.out
    neither = cli("redrive", source, target)
    assert neither.code == 2 and "one of the arguments --from --from-dir --queue-url is required" in neither.err
