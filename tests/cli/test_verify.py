"""``verify`` and ``verify --repair`` against DynamoDB Local, with values that lossy code gets wrong."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from cdk_replication.cli.repair import REPAIRED, SETTLED, Repairer
from cdk_replication.cli.tables import Connection, TableRef, describe_table
from cdk_replication.cli.verify import VerifyOptions
from cdk_replication.cli.pacing import Retrier
from .helpers import put_many, scan_all

BIG = "12345678901234567890123456789012345678"


def exotic(i: int) -> dict[str, Any]:
    """An item that exercises every type: 38-digit numbers, binary with NULs, sets, nesting, empty values."""
    return {
        "pk": {"S": f"p{i}"},
        "sk": {"N": BIG if i % 2 else str(i)},
        "big": {"N": f"-0.{BIG}"},
        "bin": {"B": bytes([0, i % 256, 255, 10])},
        "ss": {"SS": ["b", "a", ""] if i % 3 == 0 else ["z"]},
        "ns": {"NS": [BIG, "1", "-1E-130"]},
        "bs": {"BS": [b"\x00", b"\xff\xfe"]},
        "nested": {"M": {"list": {"L": [{"S": ""}, {"M": {}}, {"NULL": True}, {"BOOL": False},
                                        {"L": [{"N": "0.000000000000000000000000000000000001"}]}]},
                         "empty": {"M": {}}}},
        "empty_s": {"S": ""},
        "empty_l": {"L": []},
    }


def _key(pk: str, sk: str) -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"N": sk}}


@pytest.fixture()
def pair(ddb, make_table) -> tuple[str, str, dict[str, Any]]:
    """A source and a target with the same 40 exotic items, then exactly eight differences planted."""
    source = make_table("vsrc", sort=("sk", "N"))
    target = make_table("vtgt", sort=("sk", "N"))
    items = [exotic(i) for i in range(40)]
    put_many(ddb, source, items)
    target_items = copy.deepcopy(items)
    # Metadata differs on two items and a set is stored in another order: all three must count as identical.
    target_items[5]["_rep_version"] = {"N": "17"}
    target_items[6]["_rep_origin"] = {"S": "eu-west-1"}
    target_items[7]["ns"] = {"NS": ["-1E-130", BIG, "1"]}
    planted: dict[str, Any] = {"missing": [], "extra": [], "different": []}
    for i in (10, 11):  # missing in the target
        target_items[i] = None
        planted["missing"].append(_key(f"p{i}", items[i]["sk"]["N"]))
    # different: last digit of a 38-digit number, one byte, a set member, a deep empty string, a map key
    target_items[20]["big"] = {"N": f"-0.{BIG[:-1]}9"}
    target_items[21]["bin"] = {"B": bytes([0, 21, 255, 11])}
    target_items[22]["ss"] = {"SS": ["y"]}
    target_items[23]["nested"]["M"]["list"]["L"][0] = {"S": " "}
    target_items[24]["nested"]["M"]["empty"] = {"M": {"k": {"S": "v"}}}
    for i in (20, 21, 22, 23, 24):
        planted["different"].append(_key(f"p{i}", items[i]["sk"]["N"]))
    put_many(ddb, target, [it for it in target_items if it is not None])
    for extra in ({"pk": {"S": "only-in-target"}, "sk": {"N": "1"}, "b": {"B": b"\x01"}},
                  {"pk": {"S": "ghost"}, "sk": {"N": BIG}, "m": {"M": {}}}):
        put_many(ddb, target, [extra])
        planted["extra"].append({"pk": extra["pk"], "sk": extra["sk"]})
    return source, target, planted


def _sorted(keys: list[dict[str, Any]]) -> list[str]:
    return sorted(f"{k['pk']['S']}/{k['sk']['N']}" for k in keys)


def test_verify_finds_exactly_the_planted_differences(cli, pair) -> None:
    source, target, planted = pair
    run = cli("verify", source, target, "--json", "--segments", "3")
    assert run.code == 1, run.err
    doc = run.json()
    for kind in ("missing", "extra", "different"):
        assert _sorted(doc[kind]) == _sorted(planted[kind]), kind
    assert doc["sourceItems"] == 40 and doc["targetItems"] == 40
    assert doc["matching"] == 40 - 2 - 5
    assert doc["inSync"] is False
    attributes = {f"{k['pk']['S']}": a for k, a in zip(doc["different"], doc["differentAttributes"])}
    assert attributes == {"p20": ["big"], "p21": ["bin"], "p22": ["ss"], "p23": ["nested"], "p24": ["nested"]}

    text = cli("verify", source, target)
    assert text.code == 1
    assert "missing 2, extra 2, different 5" in text.out
    assert "pk=S:'p10'" in text.out
    assert "pk=S:'p21' sk=N:12345678901234567890123456789012345678 (attributes: bin)" in text.out


def test_metadata_prefix_can_be_turned_off(cli, pair) -> None:
    source, target, planted = pair
    doc = cli("verify", source, target, "--json", "--metadata-prefix", "").json()
    # Without a prefix the two items that differ only in metadata are different too.
    assert len(doc["different"]) == len(planted["different"]) + 2


def test_dry_run_writes_nothing_and_repair_fixes_exactly_the_differences(cli, ddb, pair) -> None:
    source, target, planted = pair
    before = scan_all(ddb, target)

    dry = cli("verify", source, target, "--repair", "--dry-run", "--json")
    assert dry.code == 1
    counts = dry.json()["repair"]["counts"]
    assert counts == {"would-put": 7, "would-delete": 2}
    assert scan_all(ddb, target) == before

    fixed = cli("verify", source, target, "--repair", "--json")
    assert fixed.code == 0, fixed.out
    assert fixed.json()["repair"]["counts"] == {"repaired": 9}
    after = scan_all(ddb, target)
    src = scan_all(ddb, source)
    touched = {(k["pk"]["S"], k["sk"]["N"]) for kind in planted.values() for k in kind}
    for key, item in after.items():
        if key in touched:
            assert item == src[key]  # repaired items are the source's, byte for byte
        else:
            assert item == before[key]  # everything else was left alone, metadata included
    assert set(after) == set(src)
    assert cli("verify", source, target).code == 0


def test_repair_does_not_clobber_a_write_made_between_its_read_and_its_write(local, ddb, make_table) -> None:
    """The replicator applies a newer source state right after the repair read the target: the repair's
    conditional put must fail and its next round must find the tables equal."""
    source, target = make_table("rsrc"), make_table("rtgt")
    key = {"pk": {"S": "k"}}
    ddb.put_item(TableName=source, Item={**key, "v": {"N": "1"}})
    ddb.put_item(TableName=target, Item={**key, "v": {"N": "0"}})
    conn = Connection(endpoint_url=local.endpoint_url)
    src = describe_table(conn, TableRef.parse(source), "source")
    tgt = describe_table(conn, TableRef.parse(target), "target")
    repairer = Repairer(src, tgt, VerifyOptions(), Retrier())
    real_get = repairer._get
    reads = {"target": 0}

    def get_then_replicate(handle: Any, k: dict[str, Any]) -> Any:
        item = real_get(handle, k)
        if handle is tgt:
            reads["target"] += 1
            if reads["target"] == 1:  # the source moves on and the replicator applies it at once
                newer = {**key, "v": {"N": "2"}}
                ddb.put_item(TableName=source, Item=newer)
                ddb.put_item(TableName=target, Item=newer)
        return item

    repairer._get = get_then_replicate  # type: ignore[method-assign]
    outcome, _ = repairer.repair_one(("k",))
    assert outcome == SETTLED
    assert ddb.get_item(TableName=target, Key=key)["Item"]["v"] == {"N": "2"}

    # Without interference the same routine writes and confirms.
    ddb.put_item(TableName=target, Item={**key, "v": {"N": "0"}})
    repairer._get = real_get  # type: ignore[method-assign]
    assert repairer.repair_one(("k",))[0] == REPAIRED
    assert ddb.get_item(TableName=target, Key=key)["Item"]["v"] == {"N": "2"}


def test_multi_active_repair_never_undoes_a_newer_write(cli, ddb, make_table) -> None:
    """Last-writer-wins on a numeric ``ts``; the replicator's tombstones (``_rep_deleted``) count as deletes."""
    source, target = make_table("msrc"), make_table("mtgt")

    def item(pk: str, ts: int, x: str, **extra: Any) -> dict[str, Any]:
        return {"pk": {"S": pk}, "ts": {"N": str(ts)}, "x": {"S": x}, **extra}

    def tombstone(pk: str, ts: int) -> dict[str, Any]:
        return {"pk": {"S": pk}, "ts": {"N": str(ts)}, "_rep_deleted": {"BOOL": True},
                "_rep_origin": {"S": "eu-west-1"}, "_rep_expiresAt": {"N": "1999999999"}}

    put_many(ddb, source, [
        item("source-newer", 2000, "s"),
        item("target-newer", 1000, "s"),
        item("missing", 1000, "s"),
        item("deleted-later-in-target", 1000, "s"),
        tombstone("deleted-in-source", 3000),
        tombstone("deleted-in-both", 3000),
    ])
    put_many(ddb, target, [
        item("source-newer", 1000, "t"),
        item("target-newer", 3000, "t"),
        item("target-only", 3000, "t"),
        tombstone("deleted-later-in-target", 2000),
        tombstone("deleted-in-both", 3000),
    ])
    found = cli("verify", source, target, "--json").json()
    assert (found["sourceTombstones"], found["targetTombstones"]) == (2, 2)
    assert sorted(k["pk"]["S"] for k in found["missing"]) == ["deleted-later-in-target", "missing"]
    assert sorted(k["pk"]["S"] for k in found["extra"]) == ["target-only"]
    assert sorted(k["pk"]["S"] for k in found["different"]) == ["source-newer", "target-newer"]

    run = cli("verify", source, target, "--repair", "--conflict-attribute", "ts", "--json")
    assert run.code == 1  # the target's newer states remain: by design
    outcomes = {i["key"]["pk"]["S"]: i["outcome"] for i in run.json()["repair"]["items"]}
    assert outcomes == {"source-newer": "repaired", "missing": "repaired", "target-newer": "kept",
                        "target-only": "kept", "deleted-later-in-target": "kept"}
    after = scan_all(ddb, target)
    assert {k[0]: v["x"]["S"] for k, v in after.items() if "x" in v} == {
        "source-newer": "s", "missing": "s", "target-newer": "t", "target-only": "t"}
    assert after[("deleted-later-in-target",)]["_rep_deleted"] == {"BOOL": True}  # the newer delete stands


def test_repair_of_an_item_with_hundreds_of_attributes(cli, ddb, make_table) -> None:
    source, target = make_table("wsrc"), make_table("wtgt")
    wide = {"pk": {"S": "wide"}} | {f"a{i:03d}": {"N": str(i)} for i in range(250)}
    ddb.put_item(TableName=source, Item=wide)
    ddb.put_item(TableName=target, Item={**wide, "a249": {"N": "-1"}})
    run = cli("verify", source, target, "--repair", "--json")
    assert run.code == 0, run.out
    assert run.json()["repair"]["counts"] == {"repaired": 1}
    assert ddb.get_item(TableName=target, Key={"pk": {"S": "wide"}})["Item"] == wide


def test_repair_of_a_kinesis_fed_replica_stamps_the_time_of_its_source_read(cli, ddb, make_table) -> None:
    """A stale item of a replica fed by Kinesis is repaired to the source's state stamped with (at most) the
    time of the source read and ``settled``, as the replicator settles a tie, so the replicator still refuses
    late duplicates of changes up to that time; an item the target lacked gets the same stamp (it used to get
    none, and any late duplicate overwrote it). tests/cli/test_repair_kinesis.py holds the late duplicates."""
    source = make_table("ksrc")
    target = make_table("ktgt", stream=False)
    put_many(ddb, source, [{"pk": {"S": "k"}, "v": {"N": "2"}}, {"pk": {"S": "new"}, "v": {"N": "1"}}])
    put_many(ddb, target, [{"pk": {"S": "k"}, "v": {"N": "1"}, "_rep_changedAt": {"N": "1700000000000001"}}])

    assert cli("verify", source, target, "--repair").code == 0

    after = scan_all(ddb, target)
    for key, value in (("k", "2"), ("new", "1")):
        item = after[(key,)]
        assert {k: v for k, v in item.items() if not k.startswith("_rep_")} == {"pk": {"S": key}, "v": {"N": value}}
        assert int(item["_rep_changedAt"]["N"]) > 1700000000000001 and item["_rep_state"] == {"S": "settled"}
