"""The one-way join's repair of a replica imported from an export (test_join_export.py) with EXACTLY the
permissions docs/cli.md's Permissions table lists for ``join`` (test_join_review_iam.py's policy), for a replica
fed by DynamoDB Streams and one fed by Kinesis (where the repair of a delete writes a tombstone that expires on
NEW's TTL attribute, read with ``DescribeTimeToLive``)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from .test_join_review_iam import (  # noqa: F401  (served is a fixture)
    ACCOUNT,
    EU,
    WEST,
    _arn,
    _cli,
    _docs_policy,
    _login,
    _one_way_tables,
    served,
)


@pytest.mark.parametrize("change_source", ["DYNAMODB_STREAMS", "KINESIS"])
def test_one_way_join_repairs_an_imported_replica_with_the_documented_permissions(served, ddb_local, monkeypatch,
                                                                                  change_source):
    gateway, store = served
    name, clients = _one_way_tables(ddb_local)
    kinesis = change_source == "KINESIS"
    if kinesis:
        clients[EU].update_time_to_live(TableName=name, TimeToLiveSpecification={"Enabled": True,
                                                                                 "AttributeName": "expires"})
    for pk in ("kept", "updated", "deleted"):
        item = {"pk": {"S": pk}, "v": {"S": "t0"}}
        clients[WEST].put_item(TableName=name, Item=item)
        clients[EU].put_item(TableName=name, Item=item)  # the import of the export taken at T0
    clients[WEST].put_item(TableName=name, Item={"pk": {"S": "updated"}, "v": {"S": "after-t0"}})
    clients[WEST].delete_item(TableName=name, Key={"pk": {"S": "deleted"}})
    if kinesis:  # after T1: the replicator's write of a later change, stamped with its change time
        clients[WEST].put_item(TableName=name, Item={"pk": {"S": "later"}, "v": {"S": "t2"}})
        clients[EU].put_item(TableName=name, Item={"pk": {"S": "later"}, "v": {"S": "t2"},
                                                   "_rep_changedAt": {"N": "1700000000000000"}})
    store.put(f"/cdk-replication/{name}/replicator", json.dumps({
        "version": 1, "mode": "ONE_WAY", "changeSource": change_source, "source": _arn(WEST, name),
        "function": "rep", "metadataPrefix": "_rep_", "conflictAttribute": None, "conflictStrategy": None,
        "targets": [{"table": _arn(EU, name), "status": "JOINING", "transform": None}]}), region=WEST,
        account=ACCOUNT)
    store.put(f"/cdk-replication/{name}/status", "JOINING", region=EU, account=ACCOUNT)
    policy = _docs_policy("join", [WEST], EU, name, "ONE_WAY")
    if kinesis:  # the row's "one-way fed by Kinesis" entry
        policy["Statement"].append({"Effect": "Allow", "Action": ["dynamodb:DescribeTimeToLive"],
                                    "Resource": [_arn(EU, name)]})
    _login(gateway, monkeypatch, policy, f"export-{change_source}")

    code, out, err = _cli(gateway, "join", f"{WEST}:{name}", f"{EU}:{name}", "--json")

    assert code == 0, err + out
    assert json.loads(out)["verify"][f"{WEST}:{name}"]["repair"]["counts"] == {"repaired": 2}, out
    held = {i["pk"]["S"]: i for i in clients[EU].scan(TableName=name)["Items"]}
    assert held["updated"]["v"] == {"S": "after-t0"}
    if kinesis:  # the repair's delete: a tombstone (a late duplicate of an older change cannot bring it back)
        assert held["deleted"]["_rep_deleted"] == {"BOOL": True} and "expires" in held["deleted"], held["deleted"]
    else:
        assert "deleted" not in held
