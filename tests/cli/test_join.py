"""``cdk-replication join``/``status``/``leave`` against DynamoDB Local, with the published SSM parameters
(contract A) served by a fake: the steps' order, the one-way and multi-active copies, resuming."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from cdk_replication._lambda.replicator.config import Config, ConflictStrategy, KeySchema, Mode, TableRef
from cdk_replication._lambda.replicator.metadata import MetadataCodec, State
from cdk_replication.cli.topology import published

WEST, EAST, EU = "us-west-2", "us-east-1", "eu-west-1"


class Parameters(dict):
    """(region, name) -> value: the parameter store of every account, as ``read_parameter`` reads it; each
    parameter's version counts its writes, as SSM's does."""

    def __init__(self) -> None:
        super().__init__()
        self.versions: dict[tuple[str, str], int] = {}

    def __setitem__(self, key: tuple[str, str], value: str) -> None:
        super().__setitem__(key, value)
        self.versions[key] = self.versions.get(key, 0) + 1

    def read(self, region: str, name: str) -> tuple[str, int] | None:
        return (self[(region, name)], self.versions[(region, name)]) if (region, name) in self else None

    def status(self, region: str, table: str, value: str) -> None:
        self[(region, f"/cdk-replication/{table}/status")] = value

    def replicator(self, region: str, table: str, targets: list[tuple[str, str]], mode: str = "ONE_WAY") -> None:
        doc = {"version": 1, "mode": mode, "metadataPrefix": "_rep_",
               "conflictAttribute": "updatedAt" if mode == "MULTI_ACTIVE" else None,
               "conflictStrategy": "TIMESTAMP" if mode == "MULTI_ACTIVE" else None,
               "source": f"arn:aws:dynamodb:{region}:111111111111:table/{table}",
               "targets": [{"table": f"arn:aws:dynamodb:{r}:111111111111:table/{t}", "status": "ACTIVE"}
                           for r, t in targets]}
        self[(region, f"/cdk-replication/{table}/replicator")] = json.dumps(doc)


@pytest.fixture()
def params(monkeypatch: pytest.MonkeyPatch) -> Parameters:
    store = Parameters()
    monkeypatch.setattr(published, "read_parameter", lambda conn, region, name: store.read(region, name))
    return store


@pytest.fixture()
def tables(local: Any) -> Callable[[str, str], Any]:
    """``tables(region, name)`` creates a table (pk S, stream on) in ``region`` and returns its client."""
    made: list[tuple[Any, str]] = []

    def make(region: str, name: str) -> Any:
        client = local.client("dynamodb", region=region)
        client.create_table(TableName=name, KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                            BillingMode="PAY_PER_REQUEST",
                            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"})
        made.append((client, name))
        return client

    yield make
    for client, name in made:
        client.delete_table(TableName=name)


def _items(client: Any, name: str) -> dict[str, dict[str, Any]]:
    return {i["pk"]["S"]: i for i in client.scan(TableName=name, ConsistentRead=True)["Items"]}


def _visible(items: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Items without metadata; tombstones left out."""
    return {k: {a: v for a, v in i.items() if not a.startswith("_rep_")} for k, i in items.items()
            if "_rep_deleted" not in i}


# --- one-way -------------------------------------------------------------------------------------------------


def _one_way(tables: Any, params: Parameters) -> tuple[str, Any, Any]:
    name = f"orders-{uuid.uuid4().hex[:8]}"
    source, replica = tables(WEST, name), tables(EU, name)
    for i in range(30):
        source.put_item(TableName=name, Item={"pk": {"S": f"k{i:02d}"}, "n": {"N": str(i)}})
    return name, source, replica


def test_join_refuses_a_location_not_deployed_as_joining(cli, tables, params):
    name, _, replica = _one_way(tables, params)
    params.replicator(WEST, name, [(EU, name)])
    run = cli("join", f"{WEST}:{name}", f"{EU}:{name}")
    assert run.code == 2 and "is not published, not JOINING" in run.err and "status=LocationStatus.JOINING" in run.err
    assert _items(replica, name) == {}


def test_join_refuses_to_copy_before_the_replicator_sends_to_the_new_table(cli, tables, params):
    """The out-of-order step: the replica is deployed JOINING but the source's replicator does not list it yet
    (its deploy has not finished): copying now would lose what changes before it does."""
    name, _, replica = _one_way(tables, params)
    params.status(EU, name, "JOINING")
    params.replicator(WEST, name, [])
    run = cli("join", f"{WEST}:{name}", f"{EU}:{name}", "--json")
    assert run.code == 2, run.err
    assert f"the replicator of {name} ({WEST}) does not send to {name} ({EU}) yet" in run.json()["error"]
    assert "would lose the changes made in between" in run.json()["error"]
    assert _items(replica, name) == {}


def test_one_way_join_copies_verifies_and_says_the_next_step(cli, tables, params):
    name, source, replica = _one_way(tables, params)
    params.status(EU, name, "JOINING")
    params.replicator(WEST, name, [(EU, name)])
    status = cli("status", f"{WEST}:{name}", f"{EU}:{name}", "--json")
    assert status.code == 0 and status.json()["locations"][1]["nextStep"].startswith("copy: cdk-replication join")

    run = cli("join", f"{WEST}:{name}", f"{EU}:{name}", "--json")
    assert run.code == 0, run.err + run.out
    report = run.json()
    assert report["inSync"] and "status=LocationStatus.ACTIVE" in report["nextStep"]
    assert _visible(_items(replica, name)) == _visible(_items(source, name))

    status = cli("status", f"{WEST}:{name}", f"{EU}:{name}", "--json").json()["locations"]
    assert status[0]["writer"] and status[1]["sentToBy"] == {f"{WEST}:{name}": True}
    assert "status=LocationStatus.ACTIVE" in status[1]["nextStep"]
    again = cli("join", f"{WEST}:{name}", f"{EU}:{name}", "--json").json()
    assert again["copy"][report["writers"][0]]["resumed"] and again["inSync"]  # the copy is not made twice


def test_one_way_join_verifies_again_on_a_rerun_after_a_difference(cli, tables, params):
    name, source, replica = _one_way(tables, params)
    params.status(EU, name, "JOINING")
    params.replicator(WEST, name, [(EU, name)])
    assert cli("join", f"{WEST}:{name}", f"{EU}:{name}").code == 0
    replica.delete_item(TableName=name, Key={"pk": {"S": "k03"}})  # as if the replica lagged behind
    run = cli("join", f"{WEST}:{name}", f"{EU}:{name}")
    # The copy is not repeated; the verification runs again and, one-way, repairs what persists.
    assert run.code == 0 and "1 missing" in run.out and "repair: 1 repaired" in run.out, run.out
    assert "(earlier run)" in run.out and _visible(_items(replica, name)) == _visible(_items(source, name))


# --- multi-active --------------------------------------------------------------------------------------------


def _codec(region: str, name: str) -> MetadataCodec:
    return MetadataCodec(Config(mode=Mode.MULTI_ACTIVE, source=TableRef(name, region, "111111111111"), targets=(),
                                key=KeySchema("pk"), conflict_attribute="updatedAt",
                                conflict_strategy=ConflictStrategy.TIMESTAMP))


def _multi_active(tables: Any, params: Parameters, joining: bool = True) -> tuple[str, dict[str, Any]]:
    """Regions WEST and EAST (EU joining). WEST deleted ``gone`` (its tombstone has not reached EAST yet); EAST
    wrote ``late`` (not in WEST yet); both hold ``both`` and ``tie`` (same version: WEST's origin... see the
    conflict rules, the greater origin wins)."""
    name = f"orders-{uuid.uuid4().hex[:8]}"
    clients = {r: tables(r, name) for r in (WEST, EAST, EU)}
    for region in (WEST, EAST):
        others = [(r, name) for r in (WEST, EAST, EU) if r != region]
        params.replicator(region, name, others, mode="MULTI_ACTIVE")
    params.replicator(EU, name, [(WEST, name), (EAST, name)], mode="MULTI_ACTIVE")
    params.status(EU, name, "JOINING" if joining else "ACTIVE")
    for region in (WEST, EAST):
        clients[region].put_item(TableName=name, Item={"pk": {"S": "both"}, "updatedAt": {"N": "5"}, "v": {"S": "b"}})
    clients[EAST].put_item(TableName=name, Item={"pk": {"S": "gone"}, "updatedAt": {"N": "1"}, "v": {"S": "old"}})
    tombstone = _codec(WEST, name).stamp(State({"pk": {"S": "gone"}, "updatedAt": {"N": "2"}}, None, True, WEST, 7))
    tombstone["updatedAt"] = {"N": "2"}
    clients[WEST].put_item(TableName=name, Item=tombstone)
    clients[EAST].put_item(TableName=name, Item={"pk": {"S": "late"}, "updatedAt": {"N": "9"}, "v": {"S": "e"}})
    return name, clients


def test_multi_active_join_refuses_when_a_region_is_not_named(cli, tables, params):
    name, clients = _multi_active(tables, params)
    run = cli("join", f"{WEST}:{name}", f"{EU}:{name}")
    assert run.code == 2 and f"{EAST}:{name} is a writer region of this table too" in run.err
    assert _items(clients[EU], name) == {}


def test_multi_active_join_copies_every_region_with_tombstones_under_the_conflict_rules(cli, tables, params):
    name, clients = _multi_active(tables, params)
    run = cli("join", f"{WEST}:{name}", f"{EAST}:{name}", f"{EU}:{name}", "--json")
    # EAST still holds "gone" (WEST's delete has not reached it): the new region matches WEST, not EAST.
    assert run.code == 1, run.err + run.out
    report = run.json()
    assert all(c["done"] for c in report["copy"].values())
    copied = _items(clients[EU], name)
    assert set(_visible(copied)) == {"both", "late"}  # EAST's write that WEST had not received is there
    assert "_rep_deleted" in copied["gone"]  # WEST's delete: a tombstone, never EAST's older live item
    assert copied["late"]["_rep_origin"] == {"S": EAST} and copied["both"]["_rep_marker"]
    codec = _codec(EU, name)
    assert all(codec.stamped_by_replicator(i) for i in copied.values())  # fresh markers: echoes, never sent back

    clients[EAST].put_item(TableName=name, Item=_items(clients[WEST], name)["gone"])  # EAST catches up
    clients[WEST].put_item(TableName=name, Item=_items(clients[EAST], name)["late"])
    again = cli("join", f"{WEST}:{name}", f"{EAST}:{name}", f"{EU}:{name}", "--json")
    assert again.code == 0 and again.json()["inSync"], again.out


def test_leave_refuses_unless_leaving_then_checks_the_drain(cli, tables, params):
    name, clients = _multi_active(tables, params, joining=False)
    specs = (f"{WEST}:{name}", f"{EAST}:{name}", f"{EU}:{name}")
    refused = cli("leave", *specs)
    assert refused.code == 2 and "not LEAVING" in refused.err and "LocationStatus.LEAVING" in refused.err
    params.status(EU, name, "LEAVING")
    assert cli("leave", *specs).code == 1  # EU holds nothing yet: what it would lose is not elsewhere... it differs
    for item in _items(clients[WEST], name).values():
        for region in (EAST, EU):
            clients[region].put_item(TableName=name, Item=item)
    for item in _items(clients[EAST], name).values():
        for region in (WEST, EU):
            clients[region].put_item(TableName=name, Item=item)
    drained = cli("leave", *specs, "--json")
    assert drained.code == 0 and drained.json()["drained"], drained.out
    assert "remove the location from the app, deploy, then `cdk destroy`" in drained.json()["nextStep"]


def test_leave_of_a_one_way_replica_has_nothing_to_drain(cli, tables, params):
    name, _, _ = _one_way(tables, params)
    params.replicator(WEST, name, [(EU, name)])
    run = cli("leave", f"{WEST}:{name}", f"{EU}:{name}", "--json")
    assert run.code == 0 and run.json()["drained"] and "nothing to drain" in run.json()["nextStep"], run.out


def test_multi_active_join_interrupted_resumes_where_it_stopped(cli, tables, params, monkeypatch):
    from cdk_replication.cli.topology import copy

    name, clients = _multi_active(tables, params)
    clients[EAST].put_item(TableName=name, Item=_items(clients[WEST], name)["gone"])  # converged regions
    clients[WEST].put_item(TableName=name, Item=_items(clients[EAST], name)["late"])
    real, calls = copy.send_current_state, []

    def interrupted(*args: Any) -> Any:
        calls.append(args)
        if len(calls) == 2:
            raise KeyboardInterrupt  # Ctrl-C in the middle of the first region's page
        return real(*args)

    monkeypatch.setattr(copy, "send_current_state", interrupted)
    specs = (f"{WEST}:{name}", f"{EAST}:{name}", f"{EU}:{name}")
    stopped = cli("join", *specs, "--segments", "1")
    assert stopped.code == 130 and "re-run the same command" in stopped.err, stopped.err
    monkeypatch.setattr(copy, "send_current_state", real)
    resumed = cli("join", *specs, "--json")
    assert resumed.code == 0 and resumed.json()["inSync"], resumed.out
    assert set(_visible(_items(clients[EU], name))) == {"both", "late"}


def test_a_join_state_file_of_an_earlier_table_of_the_same_name_is_refused(cli, tables, params, local):
    name, source, replica = _one_way(tables, params)
    params.status(EU, name, "JOINING")
    params.replicator(WEST, name, [(EU, name)])
    assert cli("join", f"{WEST}:{name}", f"{EU}:{name}").code == 0
    replica.delete_table(TableName=name)  # the replica table is deleted and created again: empty
    replica.get_waiter("table_not_exists").wait(TableName=name)
    time.sleep(1.1)  # DynamoDB Local's creation times have a resolution of a second
    replica.create_table(TableName=name, KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                         AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                         BillingMode="PAY_PER_REQUEST")
    refused = cli("join", f"{WEST}:{name}", f"{EU}:{name}")
    assert refused.code == 2 and "belongs to another run (tableCreated" in refused.err, refused.err
    again = cli("join", f"{WEST}:{name}", f"{EU}:{name}", "--restart")
    assert again.code == 0 and _visible(_items(replica, name)) == _visible(_items(source, name))


def test_multi_active_join_does_not_trust_a_copy_during_which_a_writer_parameter_changed(cli, tables, params,
                                                                                        monkeypatch):
    """WEST's replicator parameter is published again while its copy runs (a deploy: it may have stopped
    sending to EU in between): the copy is not done, and the next run copies WEST again."""
    from cdk_replication.cli.topology import copy

    name, clients = _multi_active(tables, params)
    clients[EAST].put_item(TableName=name, Item=_items(clients[WEST], name)["gone"])  # converged regions
    clients[WEST].put_item(TableName=name, Item=_items(clients[EAST], name)["late"])
    real, key = copy.send_current_state, (WEST, f"/cdk-replication/{name}/replicator")

    def redeployed(*args: Any) -> Any:
        if params.versions[key] == 1:
            params[key] = params[key]  # the same document, a new version
        return real(*args)

    monkeypatch.setattr(copy, "send_current_state", redeployed)
    specs = (f"{WEST}:{name}", f"{EAST}:{name}", f"{EU}:{name}")
    first = cli("join", *specs, "--json")
    report = first.json()
    assert first.code == 1 and "changed during the copy" in report["nextStep"], first.out
    assert not report["copy"][f"{WEST}:{name}"]["done"]
    monkeypatch.setattr(copy, "send_current_state", real)
    again = cli("join", *specs, "--json")
    assert again.code == 0 and again.json()["inSync"], again.out
    assert "copied again" in again.json()["copy"][f"{WEST}:{name}"]["copiedAgain"]


def test_join_refuses_a_table_named_as_writer_and_new(cli, tables, params):
    """The same table twice (same region, name and credentials) is refused before anything is read or written;
    another account's table of the same region and name is another table (test_join_review.py)."""
    name, source, _ = _one_way(tables, params)
    params.status(WEST, name, "JOINING")
    params.replicator(WEST, name, [(WEST, name)])
    run = cli("join", f"{WEST}:{name}", f"{WEST}:{name}")
    assert run.code == 2 and ("named twice" in run.err or "the same table" in run.err), run.err
