"""``redrive`` of Kinesis-fed replicas (records decoded by the replicator's code) and the multi-active path
(through a stub of ``resync_multi_active``, whose real module another change provides)."""

from __future__ import annotations

import _thread
import base64
import json
import sys
import time
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import cdk_replication.cli.redrive as redrive_package
from cdk_replication.cli.repair import FAILED, KEPT, REPAIRED

from .helpers import REGION, scan_all
from .redrive_helpers import failure_record, markers, stream_records, write_record

KINESIS_ARN = f"arn:aws:kinesis:{REGION}:111111111111:stream/changes"
KINESIS_SHARD = "shardId-000000000000"


def _item(pk: str, value: str, **extra: Any) -> dict[str, Any]:
    return {"pk": {"S": pk}, "v": {"S": value}, **extra}


def kinesis_records(stream_records_: list[dict[str, Any]], table: str, first_sequence: int = 100) -> list[dict[str, Any]]:
    """Lambda Kinesis records whose data is the change record Kinesis Data Streams for DynamoDB writes."""
    out = []
    for offset, record in enumerate(stream_records_):
        body = {k: v for k, v in record["dynamodb"].items() if k in ("Keys", "NewImage", "OldImage", "SizeBytes")}
        body["ApproximateCreationDateTime"] = 1_700_000_000_000_000 + offset
        change = {"awsRegion": REGION, "eventID": record["eventID"], "eventName": record["eventName"],
                  "userIdentity": None, "recordFormat": "application/json", "tableName": table,
                  "dynamodb": body, "eventSource": "aws:dynamodb"}
        sequence = str(first_sequence + offset).rjust(56, "4")
        out.append({"kinesis": {"kinesisSchemaVersion": "1.0", "partitionKey": "p", "sequenceNumber": sequence,
                                "data": base64.b64encode(json.dumps(change).encode()).decode(),
                                "approximateArrivalTimestamp": 1_700_000_000.0},
                    "eventSource": "aws:kinesis", "eventVersion": "1.0", "eventID": f"{KINESIS_SHARD}:{sequence}",
                    "eventName": "aws:kinesis:record", "awsRegion": REGION, "eventSourceARN": KINESIS_ARN})
    return out


def test_kinesis_fed_replica_gets_the_settled_write_of_the_current_state(
    cli: Any, local: Any, ddb: Any, make_table: Any, tmp_path: Path
) -> None:
    """The Kinesis record (decoded as the replicator decodes it) names the key; the target gets SOURCE's current
    item stamped as the replicator's settle stamps it. A record of another table in the shared stream is left."""
    source, target, other = make_table("rdk-src"), make_table("rdk-tgt", stream=False), make_table("rdk-oth")
    ddb.put_item(TableName=source, Item=_item("a", "old"))
    ddb.put_item(TableName=other, Item=_item("zzz", "other table"))
    own, _, _ = stream_records(local, ddb, source)
    foreign, _, _ = stream_records(local, ddb, other)
    ddb.put_item(TableName=source, Item=_item("a", "new"))
    ddb.put_item(TableName=target, Item=_item("a", "stale", _rep_changedAt={"N": "5"}))
    records = kinesis_records(own, source) + kinesis_records(foreign, other, first_sequence=200)
    folder = tmp_path / "bucket"
    write_record(folder, failure_record(records, KINESIS_SHARD, KINESIS_ARN, batch_info_key="KinesisBatchInfo"),
                 KINESIS_SHARD)

    run = cli("redrive", source, target, "--from-dir", str(folder), "--json")

    assert run.code == 0, run.err
    assert run.json()["keys"] == 1 and run.json()["counts"] == {"repaired": 1}
    (stored,) = scan_all(ddb, target).values()
    assert stored["v"] == {"S": "new"} and stored["_rep_state"] == {"S": "settled"}
    assert int(stored["_rep_changedAt"]["N"]) > 5


def test_a_kinesis_batch_of_another_table_only_is_refused(cli: Any, local: Any, ddb: Any, make_table: Any,
                                                          tmp_path: Path) -> None:
    source, target, other = make_table("rdk-src"), make_table("rdk-tgt", stream=False), make_table("rdk-oth")
    ddb.put_item(TableName=other, Item=_item("a", "other table"))
    foreign, _, _ = stream_records(local, ddb, other)
    folder = tmp_path / "bucket"
    write_record(folder, failure_record(kinesis_records(foreign, other), KINESIS_SHARD, KINESIS_ARN,
                                        batch_info_key="KinesisBatchInfo"), KINESIS_SHARD)

    run = cli("redrive", source, target, "--from-dir", str(folder))

    assert run.code == 2 and "none of its 1 records is a change of SOURCE" in run.err
    assert scan_all(ddb, target) == {}


@dataclass(frozen=True)
class _StubOptions:
    conflict: Any
    metadata_prefix: str
    dry_run: bool
    retrier: Any
    source_region: str


@pytest.fixture()
def multi_active(monkeypatch: pytest.MonkeyPatch) -> types.SimpleNamespace:
    """A stand-in for cdk_replication.cli.redrive.multi_active that records its calls and answers ``answer``."""
    state = types.SimpleNamespace(calls=[], answer=(REPAIRED, None))

    def resync_multi_active(source: Any, target: Any, key: Any, failed_records: Any, options: Any) -> Any:
        state.calls.append((source.info.ref.name, target.info.ref.name, key, failed_records, options))
        return state.answer

    module = types.ModuleType("cdk_replication.cli.redrive.multi_active")
    module.MultiActiveResync = _StubOptions  # type: ignore[attr-defined]
    module.resync_multi_active = resync_multi_active  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setattr(redrive_package, "multi_active", module, raising=False)
    return state


def test_multi_active_resync_gets_each_keys_records_in_stream_order(
    cli: Any, local: Any, ddb: Any, make_table: Any, tmp_path: Path, multi_active: types.SimpleNamespace
) -> None:
    """Two failure records name key a (INSERT in one, MODIFY in the other): one call for a, its records in
    sequence order whichever file is read first; every target gets its call."""
    source, east, west = make_table("rdm-src"), make_table("rdm-e", stream=False), make_table("rdm-w", stream=False)
    ddb.put_item(TableName=source, Item=_item("a", "1", updatedAt={"N": "1"}))
    ddb.put_item(TableName=source, Item=_item("b", "1", updatedAt={"N": "1"}))
    ddb.put_item(TableName=source, Item=_item("a", "2", updatedAt={"N": "2"}))
    records, shard, arn = stream_records(local, ddb, source)
    folder = tmp_path / "bucket"
    # The later batch is read first (keys sort before), so only sorting by sequence number gives stream order.
    write_record(folder, failure_record([records[2]], shard, arn), shard, key="aws/lambda/m/s/2026/11/30/1")
    write_record(folder, failure_record(records[:2], shard, arn), shard, key="aws/lambda/m/s/2026/11/30/2")
    multi_active.answer = (KEPT, "the target's updatedAt is newer")

    run = cli("redrive", source, east, west, "--from-dir", str(folder), "--conflict-attribute", "updatedAt", "--json")

    assert run.code == 0, run.err
    calls = {(target, key["pk"]["S"]): recs for _, target, key, recs, _ in multi_active.calls}
    assert sorted(calls) == [(east, "a"), (east, "b"), (west, "a"), (west, "b")]
    assert [r["eventName"] for r in calls[(east, "a")]] == ["INSERT", "MODIFY"]
    assert [r["dynamodb"]["SequenceNumber"] for r in calls[(east, "a")]] == [
        records[0]["dynamodb"]["SequenceNumber"], records[2]["dynamodb"]["SequenceNumber"]]
    options = multi_active.calls[0][4]
    assert options.conflict.attribute == "updatedAt" and options.dry_run is False
    assert options.metadata_prefix == "_rep_" and options.source_region == REGION
    assert len(markers(folder)) == 2 and scan_all(ddb, east) == {}


def test_multi_active_failure_leaves_the_record_unmarked(
    cli: Any, local: Any, ddb: Any, make_table: Any, tmp_path: Path, multi_active: types.SimpleNamespace
) -> None:
    source, target = make_table("rdm-src"), make_table("rdm-t", stream=False)
    ddb.put_item(TableName=source, Item=_item("a", "1", updatedAt={"N": "1"}))
    records, shard, arn = stream_records(local, ddb, source)
    folder = tmp_path / "bucket"
    write_record(folder, failure_record(records, shard, arn), shard)
    multi_active.answer = (FAILED, "conflict attribute missing")

    run = cli("redrive", source, target, "--from-dir", str(folder), "--conflict-attribute", "updatedAt")

    assert run.code == 1
    assert "failed pk=S:'a'" in run.out and "conflict attribute missing" in run.out
    assert markers(folder) == []


def test_ctrl_c_keeps_the_markers_and_the_next_run_redrives_the_rest(
    cli: Any, local: Any, ddb: Any, make_table: Any, tmp_path: Path, multi_active: types.SimpleNamespace
) -> None:
    """Ctrl-C while key b is resynced (after a's record was marked): exit 130, a's marker stays; the same
    command again skips a's record and redrives b's."""
    source, target = make_table("rdm-src"), make_table("rdm-t", stream=False)
    ddb.put_item(TableName=source, Item=_item("a", "1", updatedAt={"N": "1"}))
    ddb.put_item(TableName=source, Item=_item("b", "1", updatedAt={"N": "1"}))
    records, shard, arn = stream_records(local, ddb, source)
    folder = tmp_path / "bucket"
    first = write_record(folder, failure_record([records[0]], shard, arn), shard, key="aws/lambda/m/s/1")
    write_record(folder, failure_record([records[1]], shard, arn), shard, key="aws/lambda/m/s/2")

    def ctrl_c_at_b(source_: Any, target_: Any, key: Any, failed: Any, options: Any) -> Any:
        if key["pk"]["S"] == "b":
            for _ in range(200):  # until a's record is marked (the main thread does that; the local bucket
                # writes an object as <key>.partial and renames it, so wait for the renamed one)
                if any(not m.endswith(".partial") for m in markers(folder)):
                    break
                time.sleep(0.05)
            _thread.interrupt_main()
        return REPAIRED, None

    monkeypatch_module = sys.modules["cdk_replication.cli.redrive.multi_active"]
    original = monkeypatch_module.resync_multi_active  # type: ignore[attr-defined]
    monkeypatch_module.resync_multi_active = ctrl_c_at_b  # type: ignore[attr-defined]
    try:
        run = cli("redrive", source, target, "--from-dir", str(folder), "--conflict-attribute", "updatedAt",
                  "--workers", "1", "--json")
    finally:
        monkeypatch_module.resync_multi_active = original  # type: ignore[attr-defined]

    assert run.code == 130, run.err
    assert run.json()["interrupted"] is True and "run the same command again" in run.err
    assert markers(folder) == [first]
    again = cli("redrive", source, target, "--from-dir", str(folder), "--conflict-attribute", "updatedAt", "--json")
    assert again.code == 0, again.err
    assert again.json()["records"]["alreadyRedriven"] == 1 and again.json()["records"]["redriven"] == 1
    assert [key["pk"]["S"] for _, _, key, _, _ in multi_active.calls] == ["b"]
    assert len(markers(folder)) == 2
