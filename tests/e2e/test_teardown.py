"""Issue 12, item 6: the documented order to stop replicating without losing anything, done in the local runtime
exactly in that order — stop the application's writes, drain the mapping, check the failure destination,
``cdk-replication verify``, disable the mapping, remove the stacks — after which both tables (RETAINed) still hold
identical data, the failure bucket (RETAINed) is still there, and a write made after the mapping was disabled is
not replicated."""

from __future__ import annotations

from cdk_replication.local import workload
from cdk_replication.local.bucket import FAILURE_PREFIX, LocalBucket


def _scan(table):
    pages = table.client().get_paginator("scan").paginate(TableName=table.name, ConsistentRead=True)
    return sorted((item for page in pages for item in page["Items"]), key=lambda item: int(item["Id"]["N"]))


def _visible(items, prefix):
    return [{k: v for k, v in item.items() if not k.startswith(prefix)} for item in items]


def test_stopping_replication_in_the_documented_order_loses_nothing(example_app, topology_of, operator_of, tmp_path):
    topology = topology_of(example_app["E2eTeardown"], bucket_root=tmp_path / "buckets")
    source, replica, mapping = topology.source, topology.replica, topology.mapping
    ops = workload.generate(40, seed=41)
    client = source.client()
    for op in ops:  # the application, until step 1
        workload.apply(client, source.name, op)

    # 1. Stop the application's writes (nothing below writes the source until step 6).
    # 2. Drain: every record written so far delivered, none in flight or waiting for a retry.
    topology.settle()
    assert mapping.is_idle() and mapping.stats.records_processed == len(ops)
    assert mapping.stats.records_discarded == 0
    # 3. The failure destination is empty (or every record in it redriven).
    bucket = topology.failure_destination
    assert isinstance(bucket, LocalBucket) and bucket.keys(FAILURE_PREFIX) == []
    # 4. verify is clean.
    operator = operator_of(topology.deployment, source.account)
    verify = operator.cli("verify", f"{source.region}:{source.name}", f"{replica.region}:{replica.name}", "--json")
    assert verify.code == 0 and verify.json()["inSync"], verify.err + verify.out
    # 5. Disable the mapping (aws lambda update-event-source-mapping --uuid U --no-enabled).
    mapping.disable()
    assert not mapping.enabled
    source_items, replica_items = _scan(source), _scan(replica)
    assert _visible(source_items, topology.prefix) == _visible(replica_items, topology.prefix)

    # From here on the source is not replicated: a write after the disable stays in the source.
    late = {"Id": {"N": "990201"}, "Name": {"S": "written after the mapping was disabled"}}
    client.put_item(TableName=source.name, Item=late)
    topology.settle()
    assert mapping.stats.records_processed == len(ops)
    assert replica.client().get_item(TableName=replica.name, Key={"Id": late["Id"]}).get("Item") is None

    # 6. Remove the stacks: the tables and the failure bucket are RETAINed.
    topology.deployment.close()
    assert _scan(replica) == replica_items
    assert _scan(source) == sorted([*source_items, late], key=lambda item: int(item["Id"]["N"]))
    assert bucket.directory.is_dir()
