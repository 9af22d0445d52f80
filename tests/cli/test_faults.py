"""Throttling during a backfill, and a replica that catches up between verify's scan and its re-read."""

from __future__ import annotations

import io
import itertools
import threading
from typing import Any

from botocore.exceptions import ClientError

from cdk_replication.cli.backfill import BackfillOptions, run_backfill
from cdk_replication.cli.conditions import LastWriterWins
from cdk_replication.cli.tables import Connection, TableHandle, TableRef, describe_table
from cdk_replication.cli.verify import VerifyOptions, run_verify
from .helpers import put_many, scan_all


class ThrottlingClient:
    """Passes calls through to ``real``, but answers every ``every``-th PutItem with a throttling error."""

    def __init__(self, real: Any, every: int) -> None:
        self._real = real
        self._every = every
        self._count = itertools.count(1)
        self._lock = threading.Lock()
        self.throttled = 0

    def put_item(self, **kwargs: Any) -> Any:
        with self._lock:
            n = next(self._count)
        if n % self._every == 0:
            with self._lock:
                self.throttled += 1
            raise ClientError(
                {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"}}, "PutItem"
            )
        return self._real.put_item(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def _handles(local: Any, source: str, target: str) -> tuple[TableHandle, TableHandle]:
    conn = Connection(endpoint_url=local.endpoint_url)
    return describe_table(conn, TableRef.parse(source), "source"), describe_table(conn, TableRef.parse(target), "t")


def test_throttled_writes_are_retried_and_never_lost(local, ddb, make_table, tmp_path) -> None:
    source, target = make_table("fsrc"), make_table("ftgt")
    items = [{"pk": {"S": f"k{i:03d}"}, "n": {"N": str(i)}} for i in range(120)]
    put_many(ddb, source, items)
    src, tgt = _handles(local, source, target)
    throttling = ThrottlingClient(tgt.client, every=3)
    tgt.client = throttling

    result = run_backfill(src, tgt, BackfillOptions(segments=2, workers=4, state_path=tmp_path / "a.json"),
                          show_progress=False)
    assert result.counts == {"scanned": 120, "copied": 120, "skipped": 0, "resynced": 0, "failed": 0}
    assert result.retries == throttling.throttled > 0
    assert len(scan_all(ddb, target)) == 120

    # With a single attempt per request every throttled item is a reported failure, never a silent loss.
    ddb.delete_table(TableName=target)
    ddb.get_waiter("table_not_exists").wait(TableName=target)
    ddb.create_table(TableName=target, KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                     BillingMode="PAY_PER_REQUEST")
    throttling = ThrottlingClient(tgt.client._real, every=4)
    tgt.client = throttling
    result = run_backfill(src, tgt, BackfillOptions(segments=2, workers=4, max_attempts=1,
                                                    state_path=tmp_path / "b.json"), show_progress=False)
    assert result.counts["failed"] == throttling.throttled == 30
    assert result.counts["copied"] == 90
    copied = {k[0] for k in scan_all(ddb, target)}
    failed = {key["pk"]["S"] for key, reason in result.failures}
    assert all(reason.startswith("ProvisionedThroughputExceededException") for _, reason in result.failures)
    assert copied | failed == {it["pk"]["S"] for it in items} and not copied & failed


def test_a_replica_that_catches_up_before_the_reread_is_not_reported(local, ddb, make_table) -> None:
    source, target = make_table("csrc"), make_table("ctgt")
    items = [{"pk": {"S": f"k{i}"}, "v": {"N": "1"}} for i in range(20)]
    put_many(ddb, source, items)
    put_many(ddb, target, items[:-1])  # the replicator has not applied the last one yet
    src, tgt = _handles(local, source, target)
    tgt.client = CatchingUp(tgt.client, lambda: ddb.put_item(TableName=target, Item=items[-1]))
    result = run_verify(src, tgt, VerifyOptions(segments=1), progress_stream=io.StringIO(), show_progress=False)
    assert result.settled_on_reread == 1
    assert result.difference_count == 0 and not result.differences_remain


class CatchingUp:
    """Passes calls through to ``real``; runs ``catch_up`` once the last Scan page has been returned."""

    def __init__(self, real: Any, catch_up: Any) -> None:
        self._real = real
        self._catch_up = catch_up

    def scan(self, **kwargs: Any) -> Any:
        page = self._real.scan(**kwargs)
        if "LastEvaluatedKey" not in page:
            self._catch_up()
        return page

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


class CountingClient:
    """Passes calls through to ``real`` and counts PutItem calls."""

    def __init__(self, real: Any) -> None:
        self._real = real
        self.puts = 0

    def put_item(self, **kwargs: Any) -> Any:
        self.puts += 1
        return self._real.put_item(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def test_a_repeated_backfill_skips_what_the_target_holds_without_writing(local, ddb, make_table, tmp_path) -> None:
    source, target = make_table("rsrc"), make_table("rtgt")
    items = [{"pk": {"S": f"k{i:03d}"}, "ts": {"N": str(1000 + i)}} for i in range(150)]
    put_many(ddb, source, items)
    src, tgt = _handles(local, source, target)
    first = run_backfill(src, tgt, BackfillOptions(state_path=tmp_path / "1.json"), show_progress=False)
    assert first.counts["copied"] == 150

    counting = CountingClient(tgt.client)
    tgt.client = counting
    again = run_backfill(src, tgt, BackfillOptions(state_path=tmp_path / "2.json"), show_progress=False)
    assert again.counts == {"scanned": 150, "copied": 0, "skipped": 150, "resynced": 0, "failed": 0}
    assert counting.puts == 0

    # Last-writer-wins: only the items whose target copy is older are written.
    ddb.put_item(TableName=source, Item={"pk": {"S": "k000"}, "ts": {"N": "5000"}})
    ddb.put_item(TableName=target, Item={"pk": {"S": "k001"}, "ts": {"N": "1000"}})  # older than the source's
    lww = LastWriterWins("ts", "TIMESTAMP")
    third = run_backfill(src, tgt, BackfillOptions(conflict=lww, state_path=tmp_path / "3.json"), show_progress=False)
    assert third.counts == {"scanned": 150, "copied": 2, "skipped": 148, "resynced": 0, "failed": 0}
    assert counting.puts == 2
    assert scan_all(ddb, target) == scan_all(ddb, source)
