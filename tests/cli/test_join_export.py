"""``cdk-replication join`` of a one-way replica loaded from a native export (issue 14, item 1): the import fills
NEW with SOURCE's state at the export time T0, and the replicator sends to NEW only from the deploy that sets
``export_arn`` (T1). The changes made between T0 and T1 (updates, deletes, inserts) reach NEW by no record;
``join``'s copy (a backfill: it skips the keys NEW already holds) brings only the inserts, so its verify step
repairs the rest (``verify --repair``'s one-way rules). Same fixtures as test_join.py."""

from __future__ import annotations

import random
import threading
from typing import Any

from .test_join import (  # noqa: F401  (params and tables are fixtures)
    EU,
    WEST,
    Parameters,
    _items,
    _visible,
    params,
    tables,
)


def _imported_at_t0(tables: Any, params: Parameters) -> tuple[str, Any, Any]:
    """SOURCE with 40 items, NEW as the import of an export taken at T0 leaves it; then, before the replicator
    sends to NEW (T1): k00-k09 updated, k10-k14 deleted, n00-n04 created in SOURCE. The replica is JOINING and
    the published replicator parameter lists it (``export_arn`` set and deployed)."""
    import uuid

    name = f"orders-{uuid.uuid4().hex[:8]}"
    source, replica = tables(WEST, name), tables(EU, name)
    for i in range(40):
        item = {"pk": {"S": f"k{i:02d}"}, "n": {"N": str(i)}, "v": {"S": "t0"}}
        source.put_item(TableName=name, Item=item)
        replica.put_item(TableName=name, Item=item)  # the import: SOURCE's state at T0
    for i in range(10):
        source.update_item(TableName=name, Key={"pk": {"S": f"k{i:02d}"}}, UpdateExpression="SET v = :v, w = :w",
                           ExpressionAttributeValues={":v": {"S": "after-t0"}, ":w": {"N": "1"}})
    for i in range(10, 15):
        source.delete_item(TableName=name, Key={"pk": {"S": f"k{i:02d}"}})
    for i in range(5):
        source.put_item(TableName=name, Item={"pk": {"S": f"n{i:02d}"}, "v": {"S": "new"}})
    params.status(EU, name, "JOINING")
    params.replicator(WEST, name, [(EU, name)])
    return name, source, replica


def test_one_way_join_of_an_imported_replica_repairs_what_changed_since_the_export(cli, tables, params):
    name, source, replica = _imported_at_t0(tables, params)

    run = cli("join", f"{WEST}:{name}", f"{EU}:{name}", "--json")

    assert run.code == 0, run.err + run.out
    assert _visible(_items(replica, name)) == _visible(_items(source, name))
    report = run.json()
    assert report["inSync"]
    verified = report["verify"][f"{WEST}:{name}"]
    # The backfill copied the 5 inserts; the repair wrote the 10 updates and deleted the 5 deleted items.
    assert verified["repair"]["counts"] == {"repaired": 15}, verified
    assert report["copy"][f"{WEST}:{name}"]["counts"]["copied"] == 5
    text = cli("join", f"{WEST}:{name}", f"{EU}:{name}")
    assert text.code == 0 and "in sync" in text.out, text.out


def test_one_way_join_exits_1_and_lists_a_key_the_repair_could_not_settle(cli, tables, params, monkeypatch):
    """A key that kept changing through every round of its repair (here: simulated) is listed, and the join is
    not in sync (exit 1); the re-run repairs it."""
    from cdk_replication.cli.outcomes import UNSETTLED
    from cdk_replication.cli.repair import Repairer

    name, source, replica = _imported_at_t0(tables, params)
    real = Repairer.repair_target
    stuck = ("k03",)  # a KeyId: the key's values

    def unsettled(self: Repairer, key_id: Any) -> tuple[str, str | None]:
        if key_id == stuck:
            return UNSETTLED, "still changing after 3 rounds; run verify again"
        return real(self, key_id)

    monkeypatch.setattr(Repairer, "repair_target", unsettled)
    run = cli("join", f"{WEST}:{name}", f"{EU}:{name}", "--json")
    report = run.json()
    assert run.code == 1 and not report["inSync"], run.out
    repair = report["verify"][f"{WEST}:{name}"]["repair"]
    assert repair["counts"] == {"repaired": 14, "unsettled": 1}, repair
    assert repair["listed"] == [{"key": {"pk": {"S": "k03"}}, "outcome": "unsettled",
                                 "reason": "still changing after 3 rounds; run verify again"}], repair
    assert report["nextStep"].startswith("the repair left 1 key different"), report["nextStep"]
    monkeypatch.setattr(Repairer, "repair_target", real)
    again = cli("join", f"{WEST}:{name}", f"{EU}:{name}")
    assert again.code == 0 and "repair: 1 repaired" in again.out, again.out
    assert _visible(_items(replica, name)) == _visible(_items(source, name))


def test_one_way_join_of_an_imported_replica_under_live_writes(cli, tables, params):
    """As above while the application writes to SOURCE during the whole join and the replicator (simulated: the
    same change applied to NEW right after, as it sends from T1 on) applies each change to NEW: the repair's
    conditional writes and re-reads never undo a change the replicator applied, and no change is lost. The
    application writes some stale keys (updated: k05-k09, deleted: k10-k12), some current ones and some new ones;
    k00-k04 and k13-k14 stay stale until the repair."""
    name, source, replica = _imported_at_t0(tables, params)
    stop, errors, done = threading.Event(), [], [0]

    def application() -> None:
        rnd = random.Random(14)
        keys = [f"k{i:02d}" for i in (*range(5, 13), *range(20, 25), *range(40, 45))]  # k40-k44: inserts
        try:
            while not stop.is_set():
                key = {"pk": {"S": rnd.choice(keys)}}
                if rnd.random() < 0.3:
                    source.delete_item(TableName=name, Key=key)
                    replica.delete_item(TableName=name, Key=key)  # the replicator's record of the delete
                else:
                    new = source.update_item(TableName=name, Key=key, UpdateExpression="SET v = :v",
                                             ExpressionAttributeValues={":v": {"S": f"live-{done[0]}"}},
                                             ReturnValues="ALL_NEW")["Attributes"]
                    replica.put_item(TableName=name, Item=new)  # the replicator's record: the new image
                done[0] += 1
                stop.wait(0.002)  # a steady stream, not a flood (the machine is shared)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    writer = threading.Thread(target=application)
    writer.start()
    try:
        run = cli("join", f"{WEST}:{name}", f"{EU}:{name}", "--json", "--workers", "4")
    finally:
        stop.set()
        writer.join()
    assert not errors, errors
    assert done[0] >= 20, "the application must have written during the join"
    assert run.code in (0, 1), run.err + run.out
    if run.code == 1:  # a key the application kept changing through every round of its repair: unsettled
        assert run.json()["verify"][f"{WEST}:{name}"]["repair"]["counts"].get("unsettled"), run.out
        assert cli("join", f"{WEST}:{name}", f"{EU}:{name}").code == 0
    assert _visible(_items(replica, name)) == _visible(_items(source, name))
