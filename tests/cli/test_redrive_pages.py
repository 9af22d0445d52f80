"""``redrive`` works page by page: a page's records are resynced and marked before the next page is read, so
memory holds one page of bodies and a long backlog makes progress from the start (no timing: a read hook
looks at the folder and the target when the last page is read)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from .redrive_helpers import failure_record, markers, stream_records, write_record


def _item(pk: str, value: str) -> dict[str, Any]:
    return {"pk": {"S": pk}, "v": {"S": value}}


def test_the_first_page_is_resynced_and_marked_before_the_last_page_is_read(
    cli: Any, local: Any, ddb: Any, make_table: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three records in pages of one (the page size made small): when the third record's file is read, the
    first record's key is already in the target and its marker written. Reading every record before the
    first write (the old behaviour) finds neither."""
    import cdk_replication.cli.redrive.locations as locations

    source, target = make_table("rp-src"), make_table("rp-tgt", stream=False)
    for pk in ("a", "b", "c"):
        ddb.put_item(TableName=source, Item=_item(pk, "new"))
    records, shard, arn = stream_records(local, ddb, source)
    folder = tmp_path / "bucket"
    keys = [write_record(folder, failure_record([record], shard, arn), shard, key=f"aws/lambda/m/s/{n}")
            for n, record in enumerate(records, 1)]
    monkeypatch.setattr(locations, "FOLDER_PAGE", 1, raising=False)
    seen_at_last_read: list[tuple[list[str], bool]] = []
    read_bytes = Path.read_bytes

    def hooked(path: Path) -> bytes:
        if path == folder / keys[-1]:
            held = ddb.get_item(TableName=target, Key={"pk": {"S": "a"}}, ConsistentRead=True).get("Item")
            seen_at_last_read.append((markers(folder), held == _item("a", "new")))
        return read_bytes(path)

    monkeypatch.setattr(Path, "read_bytes", hooked)
    run = cli("redrive", source, target, "--from-dir", str(folder), "--json")

    assert run.code == 0, run.err
    assert seen_at_last_read == [([keys[0], keys[1]], True)]
    assert run.json()["records"] == {"read": 3, "alreadyRedriven": 0, "notFailureRecords": 0, "settled": 3,
                                     "redriven": 3, "lost": 0, "unreadable": 0}
    assert sorted(markers(folder)) == sorted(keys)


class _Queue:
    """An SQS client whose receives answer ``answers`` in turn, then nothing; records deletes and hidings."""

    def __init__(self, answers: list[list[tuple[str, str]]]) -> None:
        self.answers = answers
        self.deleted: list[str] = []
        self.hidden: list[tuple[str, int]] = []

    def receive_message(self, **kwargs: Any) -> dict[str, Any]:
        answer = self.answers.pop(0) if self.answers else []
        return {"Messages": [{"MessageId": m, "ReceiptHandle": h, "Body": "{}"} for m, h in answer]}

    def delete_message(self, QueueUrl: str, ReceiptHandle: str) -> None:
        self.deleted.append(ReceiptHandle)

    def change_message_visibility(self, QueueUrl: str, ReceiptHandle: str, VisibilityTimeout: int) -> None:
        self.hidden.append((ReceiptHandle, VisibilityTimeout))


def test_sqs_a_message_received_again_is_not_read_twice_and_is_deleted_with_its_latest_handle(
    monkeypatch: pytest.MonkeyPatch
) -> None:
    """m1's hiding lapsed mid-run and it came again with handle h1b: not redriven twice, and marking it deletes
    with h1b (a delete with the stale h1 may not take); keep_alive renews what is held long enough."""
    import cdk_replication.cli.redrive.locations as locations

    queue = _Queue([[("m1", "h1"), ("m2", "h2")], [("m1", "h1b"), ("m3", "h3")]])
    location = locations.QueueLocation(queue, "https://sqs.us-east-1.amazonaws.com/111111111111/q")
    envelopes = list(location.envelopes())
    assert [e.name for e in envelopes] == ["sqs message m1", "sqs message m2", "sqs message m3"]
    assert location.listed == 3
    location.mark(envelopes[0], {})
    assert queue.deleted == ["h1b"]
    monkeypatch.setattr(locations, "SQS_RENEW_AFTER_S", -1.0)
    location.keep_alive()
    assert sorted(queue.hidden) == [("h2", 900), ("h3", 900)]
    location.release()
    assert sorted(queue.hidden)[-2:] == [("h3", 0), ("h3", 900)] and ("h2", 0) in queue.hidden


def test_sqs_stops_receiving_at_its_limit_of_held_messages(monkeypatch: pytest.MonkeyPatch) -> None:
    import cdk_replication.cli.redrive.locations as locations

    monkeypatch.setattr(locations, "SQS_MAX_HELD", 2)
    queue = _Queue([[("m1", "h1"), ("m2", "h2")], [("m3", "h3")]])
    location = locations.QueueLocation(queue, "https://sqs.us-east-1.amazonaws.com/111111111111/q")
    assert len(list(location.envelopes())) == 2
    assert location.stopped_early and "stopped receiving" in location.notes[0]


class _Bucket:
    """An S3 client listing ``keys`` in pages of two, counting the bodies read."""

    def __init__(self, keys: list[str]) -> None:
        self.keys = sorted(keys)
        self.got: list[str] = []

    def get_paginator(self, name: str) -> Any:
        keys = self.keys

        class _Paginator:
            def paginate(self, Bucket: str, Prefix: str, PaginationConfig: dict[str, int]) -> Any:
                found = [k for k in keys if k.startswith(Prefix)]
                for i in range(0, len(found), 2):
                    yield {"Contents": [{"Key": k} for k in found[i:i + 2]]}

        return _Paginator()

    def get_object(self, Bucket: str, Key: str) -> dict[str, Any]:
        self.got.append(Key)
        return {"Body": type("B", (), {"read": lambda self: b"{}"})()}


def test_s3_skips_marked_records_with_the_markers_listed_beside_them_and_reads_lazily() -> None:
    from cdk_replication.cli.redrive.locations import MARKER_PREFIX, S3Location

    records = [f"aws/lambda/m/s/{n}" for n in range(1, 6)]
    bucket = _Bucket(records + [MARKER_PREFIX + records[1], MARKER_PREFIX + records[4]])
    location = S3Location(bucket, "failures", "aws/lambda/")
    envelopes = location.envelopes()
    assert next(envelopes).handle == records[0] and bucket.got == [records[0]]  # one page listed, one body read
    assert [e.handle for e in envelopes] == [records[2], records[3]]
    assert location.already_redriven == 2 and location.listed == 3
