"""Review of issue 14's topology commands under the local gateway's IAM: an operator holding EXACTLY the
permissions docs/cli.md's Permissions table lists for ``join``, ``status`` and ``leave`` (per side, on the
tables' and parameters' ARNs), the published parameters served by the gateway's SSM."""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from cdk_replication._lambda.replicator.config import Config, ConflictStrategy, KeySchema, Mode, TableRef
from cdk_replication._lambda.replicator.metadata import MetadataCodec, State
from cdk_replication.cli import main
from cdk_replication.local import DynamoDBLocal, Gateway
from cdk_replication.local.parameters import ParameterService, ParameterStore, parameter_arn

ACCOUNT = "666666666666"
WEST, EAST, EU = "us-west-2", "us-east-1", "eu-west-1"
OPERATOR = f"arn:aws:iam::{ACCOUNT}:user/join-operator"


def _arn(region: str, name: str) -> str:
    return f"arn:aws:dynamodb:{region}:{ACCOUNT}:table/{name}"


def _allow(actions: list[str], resources: list[str]) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": actions, "Resource": resources}


def _docs_policy(command: str, writers: list[str], table: str, name: str, mode: str,
                 without: tuple[str, ...] = ()) -> dict[str, Any]:
    """docs/cli.md's Permissions row of ``command``, as one identity policy: ``writers`` (source side) and
    ``table`` (target side) are regions; ``without``: target-side actions left out."""
    dynamo = lambda actions: [f"dynamodb:{a}" for a in actions]  # noqa: E731
    source_tables = [_arn(r, name) for r in writers]
    replicator = [parameter_arn(f"/cdk-replication/{name}/replicator", r, ACCOUNT) for r in writers]
    # Multi-active, NEW (LEAVING) is a writer too: its own replicator parameter is read (does it send to all?).
    status = [parameter_arn(f"/cdk-replication/{name}/{p}", table, ACCOUNT)
              for p in ("status", "replicator")[:2 if mode == "MULTI_ACTIVE" else 1]]
    # Multi-active, DescribeTimeToLive on every table: the tombstones' TTL attribute, for a published document
    # without ttlAttribute (these tests' documents have none).
    ttl = ["DescribeTimeToLive"] if mode == "MULTI_ACTIVE" else []
    if command == "join":
        source = ["DescribeTable", "Scan", "GetItem"] + (["BatchGetItem"] if mode == "ONE_WAY" else ttl)
        target = ["DescribeTable", "Scan", "GetItem", "PutItem"] + (
            ["BatchGetItem", "DeleteItem", "ListTagsOfResource"] if mode == "ONE_WAY" else ttl)
    else:  # leave
        source = target = ["DescribeTable", "Scan", "GetItem"] + ttl
    return {"Version": "2012-10-17", "Statement": [
        _allow(dynamo(source), source_tables), _allow(["ssm:GetParameter"], replicator),
        _allow(dynamo([a for a in target if a not in without]), [_arn(table, name)]), _allow(["ssm:GetParameter"], status)]}


@pytest.fixture()
def served(ddb_local: DynamoDBLocal, monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> Iterator[Any]:
    store = ParameterStore()
    with Gateway(ddb_local) as gateway:
        gateway.add_service(ParameterService(store))
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB",
                     "AWS_ENDPOINT_URL_SSM"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.chdir(tmp_path)
        yield gateway, store


def _cli(gateway: Gateway, *args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main([args[0], "--endpoint-url", gateway.endpoint_url, "--quiet", *args[1:]], stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def _login(gateway: Gateway, monkeypatch: pytest.MonkeyPatch, policy: dict[str, Any], who: str) -> None:
    creds = gateway.register_principal(f"{OPERATOR}-{who}", [policy])
    for key, value in creds.as_env().items():
        monkeypatch.setenv(key, value)


def _one_way_tables(ddb_local: DynamoDBLocal) -> tuple[str, dict[str, Any]]:
    """A new table name in WEST and EU (no stream: no replicator runs here); returns the name and the clients."""
    name = f"iam-{uuid.uuid4().hex[:8]}"
    clients = {}
    for region in (WEST, EU):
        clients[region] = ddb_local.client(region=region, account=ACCOUNT)
        clients[region].create_table(TableName=name, KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                                     AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                                     BillingMode="PAY_PER_REQUEST")
    return name, clients


def _multi_active(ddb_local: DynamoDBLocal, store: ParameterStore, ttl: str | None) -> tuple[str, dict[str, Any]]:
    """WEST and EAST hold a live item and WEST's tombstone (converged); EU joins. ``ttl``: the tables' TTL
    attribute, which the replicators write tombstones' expiry to (``None``: the default ``_rep_expiresAt``)."""
    name = f"iam-{uuid.uuid4().hex[:8]}"
    clients = {}
    for region in (WEST, EAST, EU):
        client = ddb_local.client(region=region, account=ACCOUNT)
        client.create_table(TableName=name, KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                            BillingMode="PAY_PER_REQUEST",
                            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"})
        if ttl:
            client.update_time_to_live(TableName=name, TimeToLiveSpecification={"Enabled": True,
                                                                                "AttributeName": ttl})
        clients[region] = client
        targets = [{"table": _arn(r, name), "status": "JOINING" if r == EU else "ACTIVE"}
                   for r in (WEST, EAST, EU) if r != region]
        store.put(f"/cdk-replication/{name}/replicator", json.dumps({
            "version": 1, "mode": "MULTI_ACTIVE", "changeSource": "DYNAMODB_STREAMS", "source": _arn(region, name),
            "function": f"rep-{region}", "metadataPrefix": "_rep_", "conflictAttribute": "updatedAt",
            "conflictStrategy": "TIMESTAMP", "targets": targets}, sort_keys=True), region=region, account=ACCOUNT)
    store.put(f"/cdk-replication/{name}/status", "JOINING", region=EU, account=ACCOUNT)
    config = Config(mode=Mode.MULTI_ACTIVE, source=TableRef(name, WEST, ACCOUNT), targets=(), key=KeySchema("pk"),
                    conflict_attribute="updatedAt", conflict_strategy=ConflictStrategy.TIMESTAMP,
                    **({"ttl_attribute": ttl} if ttl else {}))
    tombstone = MetadataCodec(config).stamp(State({"pk": {"S": "gone"}, "updatedAt": {"N": "2"}}, None, True,
                                                  WEST, 7))
    for region in (WEST, EAST):
        clients[region].put_item(TableName=name, Item={"pk": {"S": "live"}, "updatedAt": {"N": "5"}})
        clients[region].put_item(TableName=name, Item=tombstone)
    return name, clients


def test_multi_active_join_status_and_leave_work_with_the_documented_permissions(served, ddb_local, monkeypatch):
    """docs/cli.md's rows suffice for a multi-active join and leave with the construct's default TTL attribute."""
    gateway, store = served
    name, clients = _multi_active(ddb_local, store, ttl=None)
    specs = [f"{WEST}:{name}", f"{EAST}:{name}", f"{EU}:{name}"]
    _login(gateway, monkeypatch, _docs_policy("join", [WEST, EAST], EU, name, "MULTI_ACTIVE"), "join")
    code, out, err = _cli(gateway, "join", *specs, "--json")
    assert code == 0, err + out
    copied = {i["pk"]["S"]: i for i in clients[EU].scan(TableName=name)["Items"]}
    assert "_rep_deleted" in copied["gone"] and "_rep_deleted" not in copied["live"]

    store.put(f"/cdk-replication/{name}/status", "LEAVING", region=EU, account=ACCOUNT)
    _login(gateway, monkeypatch, _docs_policy("leave", [WEST, EAST], EU, name, "MULTI_ACTIVE"), "leave")
    code, out, err = _cli(gateway, "leave", *specs, "--json")
    assert code == 0 and json.loads(out)["drained"], err + out


def test_multi_active_join_with_the_documented_permissions_and_a_custom_ttl_attribute(served, ddb_local,
                                                                                      monkeypatch):
    """As above with ``replica_table_options.time_to_live_attribute="expires"``: the copy cannot read the
    writers' TTL attribute (denied, silently taken for ``_rep_expiresAt``), so WEST's tombstone no longer matches
    its marker and NEW gets ``gone`` as a live item (rule 5)."""
    gateway, store = served
    name, clients = _multi_active(ddb_local, store, ttl="expires")
    _login(gateway, monkeypatch, _docs_policy("join", [WEST, EAST], EU, name, "MULTI_ACTIVE"), "join")
    code, out, err = _cli(gateway, "join", f"{WEST}:{name}", f"{EAST}:{name}", f"{EU}:{name}", "--json")
    copied = {i["pk"]["S"]: i for i in clients[EU].scan(TableName=name)["Items"]}
    assert "gone" not in copied or "_rep_deleted" in copied["gone"], copied["gone"]
    assert code == 0, err + out


def test_status_works_with_the_documented_permissions(served, ddb_local, monkeypatch):
    gateway, store = served
    name, _ = _multi_active(ddb_local, store, ttl=None)
    regions = (WEST, EAST, EU)
    parameters = [parameter_arn(f"/cdk-replication/{name}/{p}", r, ACCOUNT) for r in regions
                  for p in ("status", "replicator")]
    policy = {"Version": "2012-10-17", "Statement": [
        _allow(["dynamodb:DescribeTable"], [_arn(r, name) for r in regions]),
        _allow(["ssm:GetParameter"], parameters)]}
    _login(gateway, monkeypatch, policy, "status")
    code, out, err = _cli(gateway, "status", *(f"{r}:{name}" for r in regions), "--json")
    assert code == 0, err + out
    new = json.loads(out)["locations"][2]
    assert new["status"] == "JOINING" and new["nextStep"].startswith("copy: cdk-replication join"), new


def test_one_way_join_works_with_the_documented_permissions(served, ddb_local, monkeypatch):
    gateway, store = served
    name, clients = _one_way_tables(ddb_local)
    for i in range(20):
        clients[WEST].put_item(TableName=name, Item={"pk": {"S": f"k{i}"}, "n": {"N": str(i)}})
    store.put(f"/cdk-replication/{name}/replicator", json.dumps({
        "version": 1, "mode": "ONE_WAY", "changeSource": "DYNAMODB_STREAMS", "source": _arn(WEST, name),
        "function": "rep", "metadataPrefix": "_rep_", "conflictAttribute": None, "conflictStrategy": None,
        "targets": [{"table": _arn(EU, name), "status": "JOINING", "transform": None}]}), region=WEST,
        account=ACCOUNT)
    store.put(f"/cdk-replication/{name}/status", "JOINING", region=EU, account=ACCOUNT)
    _login(gateway, monkeypatch, _docs_policy("join", [WEST], EU, name, "ONE_WAY"), "one-way")
    code, out, err = _cli(gateway, "join", f"{WEST}:{name}", f"{EU}:{name}", "--json")
    assert code == 0, err + out
    assert clients[EU].scan(TableName=name)["Count"] == 20


def test_multi_active_join_needs_no_batch_get_item_on_the_new_table(served, ddb_local, monkeypatch):
    """cmd_join probes BatchGetItem on NEW in both modes; only the one-way backfill uses it. docs/cli.md lists it
    unconditionally for the target, so the documented policy is wider than the command needs."""
    gateway, store = served
    name, _ = _multi_active(ddb_local, store, ttl=None)
    policy = _docs_policy("join", [WEST, EAST], EU, name, "MULTI_ACTIVE", without=("BatchGetItem",))
    _login(gateway, monkeypatch, policy, "no-batch")
    code, out, err = _cli(gateway, "join", f"{WEST}:{name}", f"{EAST}:{name}", f"{EU}:{name}", "--json")
    assert code == 0, err + out


ADMIN = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["dynamodb:*", "ssm:GetParameter"],
                                                 "Resource": "*"}]}


def test_join_copies_again_after_the_writer_stopped_sending_to_the_new_table_in_between(served, ddb_local,
                                                                                       monkeypatch):
    """join copies (done) and verifies; then the source's stack is rolled back (or an older app deployed): its
    parameter, and its replicator, no longer list NEW, and join refuses, as it should. The source changes
    meanwhile (nothing sends those changes to NEW). The stack is deployed again: the parameter lists NEW once
    more (a new version), and join, re-run as its message says, skips the copy ("done" in the state file) and
    only verifies: the changes made in between are never copied, and join says "wait until the replicators have
    caught up" for ever. The parameter's version (or LastModifiedDate) at the copy tells the two apart."""
    gateway, store = served
    name, clients = _one_way_tables(ddb_local)
    clients[WEST].put_item(TableName=name, Item={"pk": {"S": "before"}})

    def publish(targets: list[str]) -> None:
        store.put(f"/cdk-replication/{name}/replicator", json.dumps({
            "version": 1, "mode": "ONE_WAY", "changeSource": "DYNAMODB_STREAMS", "source": _arn(WEST, name),
            "function": "rep", "metadataPrefix": "_rep_", "conflictAttribute": None, "conflictStrategy": None,
            "targets": [{"table": _arn(r, name), "status": "JOINING", "transform": None} for r in targets]}),
            region=WEST, account=ACCOUNT)

    store.put(f"/cdk-replication/{name}/status", "JOINING", region=EU, account=ACCOUNT)
    publish([EU])
    _login(gateway, monkeypatch, ADMIN, "admin")
    specs = (f"{WEST}:{name}", f"{EU}:{name}")
    assert _cli(gateway, "join", *specs)[0] == 0
    publish([])  # rolled back: the replicator no longer sends to NEW
    assert _cli(gateway, "join", *specs)[0] == 2
    clients[WEST].put_item(TableName=name, Item={"pk": {"S": "meanwhile"}})  # reaches NEW by no record
    publish([EU])  # deployed again

    code, out, err = _cli(gateway, "join", *specs, "--json")
    copied = {i["pk"]["S"] for i in clients[EU].scan(TableName=name)["Items"]}
    assert code == 0 and copied == {"before", "meanwhile"}, (copied, out + err)


def test_multi_active_join_refuses_when_the_ttl_attribute_cannot_be_read(served, ddb_local, monkeypatch):
    """Without DescribeTimeToLive and with documents that do not name ttlAttribute, join stops (exit 2, the
    permission named) before writing anything, rather than guess the default and copy a tombstone as an item."""
    gateway, store = served
    name, clients = _multi_active(ddb_local, store, ttl="expires")
    policy = _docs_policy("join", [WEST, EAST], EU, name, "MULTI_ACTIVE", without=("DescribeTimeToLive",))
    policy["Statement"][0]["Action"].remove("dynamodb:DescribeTimeToLive")  # the writers' too
    _login(gateway, monkeypatch, policy, "no-ttl")
    code, out, err = _cli(gateway, "join", f"{WEST}:{name}", f"{EAST}:{name}", f"{EU}:{name}")
    assert code == 2 and "dynamodb:DescribeTimeToLive" in err, err + out
    assert clients[EU].scan(TableName=name)["Count"] == 0


def test_multi_active_join_reads_a_published_ttl_attribute_without_describe_time_to_live(served, ddb_local,
                                                                                         monkeypatch):
    """A document naming ``ttlAttribute`` needs no DescribeTimeToLive: the tombstone is copied as a tombstone."""
    gateway, store = served
    name, clients = _multi_active(ddb_local, store, ttl="expires")
    for region in (WEST, EAST, EU):
        parameter = f"/cdk-replication/{name}/replicator"
        doc = json.loads(store.get(parameter, region=region, account=ACCOUNT).value)
        store.put(parameter, json.dumps({**doc, "ttlAttribute": "expires"}), region=region, account=ACCOUNT)
    policy = _docs_policy("join", [WEST, EAST], EU, name, "MULTI_ACTIVE", without=("DescribeTimeToLive",))
    policy["Statement"][0]["Action"].remove("dynamodb:DescribeTimeToLive")
    _login(gateway, monkeypatch, policy, "published-ttl")
    code, out, err = _cli(gateway, "join", f"{WEST}:{name}", f"{EAST}:{name}", f"{EU}:{name}", "--json")
    copied = {i["pk"]["S"]: i for i in clients[EU].scan(TableName=name)["Items"]}
    assert "_rep_deleted" in copied["gone"] and "_rep_deleted" not in copied["live"], copied
    assert code == 0, err + out
