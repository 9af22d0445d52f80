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
