"""A source table created outside the app: the deploy refuses to start without it, then replicates it."""

from __future__ import annotations

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
