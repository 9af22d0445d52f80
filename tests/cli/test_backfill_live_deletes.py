"""One-way backfill while the replicator applies deletes (issue 10, defect 9).

Each test replays one interleaving deterministically through a client wrapper: the backfill reads an item,
the application deletes it from the source and the replicator deletes it from the target, and only then does
the backfill write. A conditional ``attribute_not_exists`` write cannot see that delete (the target holds no
item either way), so on its own it brings the deleted item back into the replica for good.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError

from cdk_replication.cli.backfill import BackfillOptions, run_backfill
from cdk_replication.cli.conditions import LastWriterWins
from cdk_replication.cli.errors import BadInput, WorkFailed
from cdk_replication.cli.tables import Connection, TableHandle, TableRef, describe_table
from .helpers import put_many, scan_all

VICTIM = {"pk": {"S": "k007"}}


def _items(n: int) -> list[dict[str, Any]]:
    return [{"pk": {"S": f"k{i:03d}"}, "v": {"N": str(i)}} for i in range(n)]


def _handles(local: Any, source: str, target: str) -> tuple[TableHandle, TableHandle]:
    conn = Connection(endpoint_url=local.endpoint_url)
    return describe_table(conn, TableRef.parse(source), "source"), describe_table(conn, TableRef.parse(target), "t")


class Hooked:
    """Passes every call through to ``real``; ``before``/``after`` map a method name to a hook that is called
    with the request's keyword arguments (``after`` also with the response) and may act or raise."""

    def __init__(self, real: Any, before: dict[str, Callable[..., None]] | None = None,
                 after: dict[str, Callable[..., None]] | None = None) -> None:
        self._real = real
        self._before = before or {}
        self._after = after or {}

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._real, name)
        if name not in self._before and name not in self._after:
            return method

        def call(**kwargs: Any) -> Any:
            if name in self._before:
                self._before[name](**kwargs)
            response = method(**kwargs)
            if name in self._after:
                self._after[name](response=response, **kwargs)
            return response

        return call


def _replicated_delete(ddb: Any, source: str, target: str) -> Callable[[], None]:
    """The application deletes VICTIM from the source; the replicator applies the delete to the target."""

    def delete() -> None:
        ddb.delete_item(TableName=source, Key=VICTIM)
        ddb.delete_item(TableName=target, Key=VICTIM)

    return delete


def test_a_delete_between_the_scan_and_the_write_is_not_undone(local, ddb, make_table, tmp_path) -> None:
    """scan (the item is there) -> the replicator deletes it at source and replica -> backfill writes."""
    source, target = make_table("dsrc"), make_table("dtgt")
    put_many(ddb, source, _items(20))
    src, tgt = _handles(local, source, target)
    delete = _replicated_delete(ddb, source, target)
    fired = threading.Event()

    def after_scan(response: dict[str, Any], **_: Any) -> None:
        if not fired.is_set() and any(item["pk"] == VICTIM["pk"] for item in response.get("Items", [])):
            fired.set()
            delete()

    src.client = Hooked(src.client, after={"scan": after_scan})
    result = run_backfill(src, tgt, BackfillOptions(segments=1, workers=2, state_path=tmp_path / "s.json"),
                          show_progress=False)

    assert fired.is_set()
    assert VICTIM["pk"]["S"] not in {k[0] for k in scan_all(ddb, target)}, "the deleted item came back"
    assert scan_all(ddb, target) == scan_all(ddb, source)
    assert result.counts["failed"] == 0
    # The item was written and then taken back: counted as such, not as a copy.
    assert result.counts["copied"] == 19 and result.counts["resynced"] == 1


def test_a_delete_between_the_target_check_and_the_write_is_not_undone(local, ddb, make_table, tmp_path) -> None:
    """The same race one step later: after the BatchGetItem shortcut saw no item, right before the PutItem."""
    source, target = make_table("dsrc"), make_table("dtgt")
    put_many(ddb, source, _items(20))
    src, tgt = _handles(local, source, target)
    delete = _replicated_delete(ddb, source, target)

    def before_put(Item: dict[str, Any], **_: Any) -> None:
        if Item["pk"] == VICTIM["pk"]:
            delete()

    tgt.client = Hooked(tgt.client, before={"put_item": before_put})
    run_backfill(src, tgt, BackfillOptions(segments=2, workers=4, state_path=tmp_path / "s.json"),
                 show_progress=False)
    assert scan_all(ddb, target) == scan_all(ddb, source)


def test_a_delete_followed_by_a_recreate_keeps_the_new_item(local, ddb, make_table, tmp_path) -> None:
    """scan v7 -> delete at both -> backfill writes v7 -> the application re-creates the item (v=700) and the
    replicator applies it -> the backfill's check must not delete the new item."""
    source, target = make_table("dsrc"), make_table("dtgt")
    put_many(ddb, source, _items(20))
    src, tgt = _handles(local, source, target)
    delete = _replicated_delete(ddb, source, target)
    recreated = {**VICTIM, "v": {"N": "700"}}

    def before_put(Item: dict[str, Any], **_: Any) -> None:
        if Item["pk"] == VICTIM["pk"]:
            delete()

    def after_put(Item: dict[str, Any], **_: Any) -> None:
        if Item["pk"] == VICTIM["pk"] and Item["v"]["N"] == "7":
            ddb.put_item(TableName=source, Item=recreated)
            ddb.put_item(TableName=target, Item=recreated)

    tgt.client = Hooked(tgt.client, before={"put_item": before_put}, after={"put_item": after_put})
    run_backfill(src, tgt, BackfillOptions(segments=1, workers=1, state_path=tmp_path / "s.json"),
                 show_progress=False)
    assert scan_all(ddb, target) == scan_all(ddb, source)
    assert scan_all(ddb, target)[("k007",)]["v"] == {"N": "700"}


def test_a_crash_between_the_write_and_its_check_is_caught_up_on_resume(local, ddb, make_table, tmp_path) -> None:
    """The backfill stops after writing the resurrected item but before confirming it against the source; the
    resumed run must still take it back, although the repeated scan no longer returns that item."""
    source, target = make_table("dsrc"), make_table("dtgt")
    put_many(ddb, source, _items(20))
    src, tgt = _handles(local, source, target)
    real_source_client, real_target_client = src.client, tgt.client
    delete = _replicated_delete(ddb, source, target)

    def before_put(Item: dict[str, Any], **_: Any) -> None:
        if Item["pk"] == VICTIM["pk"]:
            delete()

    def crash_on_consistent_read(RequestItems: dict[str, Any], **_: Any) -> None:
        if any(request.get("ConsistentRead") for request in RequestItems.values()):
            raise ClientError({"Error": {"Code": "ValidationException", "Message": "simulated crash"}},
                              "BatchGetItem")

    tgt.client = Hooked(real_target_client, before={"put_item": before_put})
    src.client = Hooked(real_source_client, before={"batch_get_item": crash_on_consistent_read})
    state = tmp_path / "s.json"
    try:
        run_backfill(src, tgt, BackfillOptions(segments=1, workers=2, state_path=state), show_progress=False)
    except WorkFailed:
        pass  # the check failed: the progress (and what is left to check) is in the state file
    src.client, tgt.client = real_source_client, real_target_client
    resumed = run_backfill(src, tgt, BackfillOptions(segments=1, workers=2, state_path=state), show_progress=False)
    assert resumed.complete
    assert scan_all(ddb, target) == scan_all(ddb, source)


def test_interrupted_pages_count_every_copy_once_in_the_totals(local, ddb, make_table, tmp_path) -> None:
    """Items copied in a page that was interrupted are copies of this backfill: the resumed run finds them in
    the target, but its "including earlier runs" totals must still count them as copied, once."""
    source, target = make_table("tsrc"), make_table("ttgt")
    put_many(ddb, source, _items(100))
    src, tgt = _handles(local, source, target)
    real_target_client = tgt.client
    stop = threading.Event()
    puts = [0]
    lock = threading.Lock()

    def count_and_stop(**_: Any) -> None:
        with lock:
            puts[0] += 1
            if puts[0] == 25:  # the second page (page size 20) is five items in
                stop.set()

    tgt.client = Hooked(real_target_client, after={"put_item": count_and_stop})
    state = tmp_path / "t.json"
    options = BackfillOptions(segments=1, workers=1, page_size=20, state_path=state)
    first = run_backfill(src, tgt, options, stop=stop, show_progress=False)
    assert first.interrupted and first.counts["copied"] == 25
    tgt.client = real_target_client
    second = run_backfill(src, tgt, options, show_progress=False)
    assert second.complete and second.resumed
    assert second.counts["copied"] == 75 and second.counts["skipped"] == 5
    assert second.totals["copied"] == 100
    assert second.totals["scanned"] == 100
    assert second.totals["skipped"] == 0
    assert scan_all(ddb, target) == scan_all(ddb, source)



def _crash_after_writing_the_victim(local: Any, ddb: Any, source: str, target: str, state: Any,
                                    segments: int = 1) -> tuple[TableHandle, TableHandle]:
    """Run a backfill that resurrects VICTIM and dies before confirming it (as in the crash test above);
    returns fresh handles for the next run."""
    src, tgt = _handles(local, source, target)
    delete = _replicated_delete(ddb, source, target)

    def before_put(Item: dict[str, Any], **_: Any) -> None:
        if Item["pk"] == VICTIM["pk"]:
            delete()

    def crash_on_consistent_read(RequestItems: dict[str, Any], **_: Any) -> None:
        if any(request.get("ConsistentRead") for request in RequestItems.values()):
            raise ClientError({"Error": {"Code": "ValidationException", "Message": "simulated crash"}},
                              "BatchGetItem")

    tgt.client = Hooked(tgt.client, before={"put_item": before_put})
    src.client = Hooked(src.client, before={"batch_get_item": crash_on_consistent_read})
    try:
        run_backfill(src, tgt, BackfillOptions(segments=segments, workers=2, state_path=state), show_progress=False)
    except WorkFailed:
        pass
    assert ("k007",) in scan_all(ddb, target), "the crash must leave the resurrected item for the next run"
    return _handles(local, source, target)


def test_a_restart_after_a_crash_still_checks_the_keys_left_unchecked(local, ddb, make_table, tmp_path) -> None:
    """--restart abandons the state file; the keys it still had to check must be checked first, or the
    resurrected item stays in the replica for good while the run reports success."""
    source, target = make_table("rsrc"), make_table("rtgt")
    put_many(ddb, source, _items(20))
    state = tmp_path / "s.json"
    src, tgt = _crash_after_writing_the_victim(local, ddb, source, target, state)
    # Another segment count: the old segments mean nothing any more, the keys to check still do.
    restarted = run_backfill(src, tgt, BackfillOptions(segments=2, workers=2, state_path=state, restart=True),
                             show_progress=False)
    assert restarted.complete and restarted.counts["failed"] == 0
    assert scan_all(ddb, target) == scan_all(ddb, source)
    # Each item once: 19 scanned and already in TARGET, the deleted one taken back.
    assert restarted.counts == {"scanned": 20, "copied": 0, "skipped": 19, "resynced": 1, "failed": 0}
    assert restarted.totals == restarted.counts


def test_a_state_file_of_other_options_is_refused_with_a_way_that_keeps_its_keys(local, ddb, make_table,
                                                                              tmp_path) -> None:
    """A resume with another segment count or mode is refused in one line that points at --restart (which
    checks the keys first), not at deleting the file or starting another one (which lose them)."""
    source, target = make_table("msrc"), make_table("mtgt")
    put_many(ddb, source, _items(20))
    state = tmp_path / "s.json"
    src, tgt = _crash_after_writing_the_victim(local, ddb, source, target, state)
    for other in (BackfillOptions(segments=3, state_path=state),
                  BackfillOptions(segments=1, state_path=state, conflict=LastWriterWins("v", "VERSION"))):
        with pytest.raises(BadInput) as refused:
            run_backfill(src, tgt, other, show_progress=False)
        message = str(refused.value)
        assert "\n" not in message and "--restart" in message, message
        assert "delete it" not in message and "another --state-file" not in message, message
        assert ("k007",) in scan_all(ddb, target) and state.exists()
    # Another pair of tables cannot check them either: that run must not take the file over, even with --restart.
    elsewhere = make_table("mother")
    _, other_target = _handles(local, source, elsewhere)
    for restart in (False, True):
        with pytest.raises(BadInput, match="keys it wrote without checking them") as refused:
            run_backfill(src, other_target, BackfillOptions(segments=1, state_path=state, restart=restart),
                         show_progress=False)
        assert "\n" not in str(refused.value) and state.exists()
    # A multi-active --restart cannot check them (the one-way repair may overwrite a multi-active TARGET): refused.
    multi_active = BackfillOptions(segments=1, state_path=state, restart=True,
                                   conflict=LastWriterWins("v", "VERSION"))
    with pytest.raises(BadInput, match="resume it as it was started") as refused:
        run_backfill(src, tgt, multi_active, show_progress=False)
    assert "\n" not in str(refused.value) and ("k007",) in scan_all(ddb, target)


def test_a_state_file_without_a_recorded_mode_is_resumed_and_checked(local, ddb, make_table, tmp_path) -> None:
    """Files of the first version of the check have no `mode`: they resume (and their keys are checked)."""
    source, target = make_table("osrc"), make_table("otgt")
    put_many(ddb, source, _items(20))
    state = tmp_path / "s.json"
    src, tgt = _crash_after_writing_the_victim(local, ddb, source, target, state)
    document = json.loads(state.read_text())
    del document["mode"]
    state.write_text(json.dumps(document))
    with pytest.raises(BadInput, match="--restart"):  # its keys need the one-way repair: not in a multi-active run
        run_backfill(src, tgt, BackfillOptions(segments=1, state_path=state, conflict=LastWriterWins("v")),
                     show_progress=False)
    resumed = run_backfill(src, tgt, BackfillOptions(segments=1, state_path=state), show_progress=False)
    assert resumed.complete and resumed.resumed
    assert scan_all(ddb, target) == scan_all(ddb, source)


def test_a_run_stopped_by_an_error_keeps_its_copies_in_the_resumed_totals(local, ddb, make_table, tmp_path) -> None:
    """The crashed run copied all 20 items (k007 included) before its check failed; the resumed run takes k007
    back. Over both runs each item counts once: 19 copied, 1 resynced, none skipped."""
    source, target = make_table("csrc"), make_table("ctgt")
    put_many(ddb, source, _items(20))
    state = tmp_path / "s.json"
    src, tgt = _crash_after_writing_the_victim(local, ddb, source, target, state)
    resumed = run_backfill(src, tgt, BackfillOptions(segments=1, workers=2, state_path=state), show_progress=False)
    assert resumed.complete and resumed.resumed
    assert resumed.totals == {"scanned": 20, "copied": 19, "skipped": 0, "resynced": 1, "failed": 0}
    # This run: the re-checked keys and the repeated page are the same 20 items, each counted once.
    assert resumed.counts == {"scanned": 20, "copied": 0, "skipped": 19, "resynced": 1, "failed": 0}
    assert scan_all(ddb, target) == scan_all(ddb, source)


def _failing_put(key: dict[str, Any], also_repairs: bool) -> Callable[..., None]:
    """A PutItem hook that refuses ``key``'s first write (every write with ``also_repairs``) for good."""
    calls = [0]

    def before_put(Item: dict[str, Any], **_: Any) -> None:
        if Item["pk"] == key["pk"]:
            calls[0] += 1
            if also_repairs or calls[0] == 1:
                raise ClientError({"Error": {"Code": "ValidationException", "Message": "refused"}}, "PutItem")

    return before_put


@pytest.mark.parametrize("repair_fails", [False, True])
def test_the_failure_list_holds_each_item_once_with_its_final_outcome(local, ddb, make_table, tmp_path,
                                                                       repair_fails) -> None:
    """k007's copy is refused while the application changes it at the source, so the check resyncs it: when
    the resync succeeds the item is not a failure; when it fails too, it is one failure, listed once."""
    source, target = make_table("fsrc"), make_table("ftgt")
    put_many(ddb, source, _items(20))
    src, tgt = _handles(local, source, target)
    refuse = _failing_put(VICTIM, also_repairs=repair_fails)

    def before_put(Item: dict[str, Any], **kwargs: Any) -> None:
        if Item["pk"] == VICTIM["pk"] and Item["v"]["N"] == "7":
            ddb.put_item(TableName=source, Item={**VICTIM, "v": {"N": "700"}})
        refuse(Item=Item, **kwargs)

    tgt.client = Hooked(tgt.client, before={"put_item": before_put})
    result = run_backfill(src, tgt, BackfillOptions(segments=1, workers=2, state_path=tmp_path / "f.json"),
                          show_progress=False)
    listed = [key for key, _ in result.failures]
    assert len(listed) == result.counts["failed"], result.failures
    if repair_fails:
        assert listed == [VICTIM] and result.counts["resynced"] == 0
    else:
        assert listed == [] and result.counts["resynced"] == 1
        assert scan_all(ddb, target) == scan_all(ddb, source)


def test_rate_is_one_bucket_for_copies_and_repairs(local, ddb, make_table, tmp_path, monkeypatch) -> None:
    """--rate limits every write the backfill makes to TARGET together: its copies and the check's repairs
    take tokens from one bucket (a bucket per page would let each page's repairs run at the full rate again)."""
    import cdk_replication.cli.backfill as backfill_module
    import cdk_replication.cli.repair as repair_module

    buckets: list[Any] = []

    class CountingBucket:
        def __init__(self, rate: float | None) -> None:
            self.rate, self.taken = rate, 0
            buckets.append(self)

        def acquire(self, tokens: float = 1.0) -> None:
            self.taken += int(tokens)

    monkeypatch.setattr(backfill_module, "TokenBucket", CountingBucket)
    monkeypatch.setattr(repair_module, "TokenBucket", CountingBucket)
    source, target = make_table("bsrc"), make_table("btgt")
    put_many(ddb, source, _items(20))
    src, tgt = _handles(local, source, target)
    delete = _replicated_delete(ddb, source, target)

    def before_put(Item: dict[str, Any], **_: Any) -> None:
        if Item["pk"] == VICTIM["pk"] and Item["v"]["N"] == "7":
            delete()  # the copy brings k007 back; the check deletes it again (one repair write)

    tgt.client = Hooked(tgt.client, before={"put_item": before_put})
    result = run_backfill(src, tgt, BackfillOptions(segments=1, workers=2, page_size=5, rate=1000.0,
                                                    state_path=tmp_path / "r.json"), show_progress=False)
    assert result.counts["copied"] == 19 and result.counts["resynced"] == 1
    assert [b.rate for b in buckets] == [1000.0], "one bucket for the whole run"
    assert buckets[0].taken == 20 + 1  # 20 copies, 1 repair delete
