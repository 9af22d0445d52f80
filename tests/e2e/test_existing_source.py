"""A source table created outside the app: the deploy refuses to start without it, then replicates it."""

from __future__ import annotations

import json

import pytest

from cdk_replication.local import TemplateError, deploy


def test_existing_source_must_exist_then_replicates(existing_source_app, e2e_ddb, topology_of):
    with pytest.raises(TemplateError, match="'Legacy' in 666666666666/us-east-2.*create the imported table"):
        deploy(existing_source_app, e2e_ddb)
    client = e2e_ddb.client(region="us-east-2", account="666666666666")
    client.create_table(
        TableName="Legacy", KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}], BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"})
    # Items written before the replicator existed are in the stream too (TRIM_HORIZON).
    for i in range(150):
        client.put_item(TableName="Legacy", Item={"id": {"S": f"legacy-{i}"}, "n": {"N": str(i)}})
    topology = topology_of(existing_source_app)
    assert topology.source.stack_name is None  # imported, not created by the deploy
    topology.settle()
    result = topology.compare()
    assert result.equal and result.source_items == 150


def test_existing_source_declared_without_its_sort_key_writes_nothing_and_fails_loudly(
    existing_sort_key_app, e2e_ddb, topology_of
):
    """The table is keyed (CustomerId, OrderId); the construct was told CustomerId only, so its replica is keyed
    by CustomerId. Before the fix every order of a customer was written over the previous one (the replica held
    one item per customer and the batch reported success); now no record is written, each is reported, logged
    with both key sets, counted, and its position lands in the failure queue."""
    client = e2e_ddb.client(region="us-east-2", account="666666666666")
    client.create_table(
        TableName="LegacyOrders",
        KeySchema=[{"AttributeName": "CustomerId", "KeyType": "HASH"}, {"AttributeName": "OrderId", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": "CustomerId", "AttributeType": "S"},
                              {"AttributeName": "OrderId", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"})
    for customer in range(3):
        for order in range(4):
            client.put_item(TableName="LegacyOrders", Item={"CustomerId": {"S": f"c{customer}"},
                                                            "OrderId": {"S": f"o{order}"}, "n": {"N": str(order)}})
    topology = topology_of(existing_sort_key_app)
    topology.settle()

    replica = topology.replica.client().scan(TableName=topology.replica.name)["Items"]
    assert replica == []  # before the fix: 3 items, each customer's last order standing for all four
    stats = topology.mapping.stats
    assert stats.records_discarded == 12
    infos = [body["DDBStreamBatchInfo"] for body in topology.failures()]
    assert sum(info["batchSize"] for info in infos) == 12
    lines = [json.loads(line) for line in topology.function.logs() if line.startswith("{")]
    refused = [line for line in lines if line.get("errorCode") == "KeySchemaMismatch" and "configuredKey" in line]
    assert refused and all(line["configuredKey"] == ["CustomerId"] for line in refused)
    assert all(line["recordKey"] == ["CustomerId", "OrderId"] for line in refused)
    counted = [line for line in lines if line.get("ErrorCode") == "KeySchemaMismatch"]
    assert counted and all(line["WriteFailures"] >= 1 for line in counted)
