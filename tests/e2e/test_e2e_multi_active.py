"""A multi-active table in two regions, deployed from the real constructs and run by the real replicators:
concurrent writes settle on one winner everywhere, deletes are versioned, nothing loops."""

from __future__ import annotations

import json
import random

from cdk_replication.local import deploy
from cdk_replication.local.compare import compare_tables


def test_two_writers_converge_on_one_winner_without_loops(multi_active_app, e2e_ddb):
    with deploy(multi_active_app, e2e_ddb) as dep:
        assert len(dep.functions) == 2 and len(dep.mappings) == 2
        env = dep.functions[0].environment
        prefix = env.get("REPLICATION_METADATA_PREFIX", "_rep_")
        regions = sorted({t.region for t in dep.tables})
        tables = {r: dep.table("Orders", region=r) for r in regions}
        clients = {r: t.client() for r, t in tables.items()}
        rng = random.Random(11)
        winner: dict[str, int] = {}
        clock = 1_750_000_000_000
        # Both regions write the same keys before either has replicated: real conflicts.
        for round_ in range(3):
            for i in range(40):
                key = f"order-{i:03d}"
                for region in rng.sample(regions, 2):
                    clock += rng.randrange(1, 5)
                    clients[region].put_item(TableName="Orders", Item={
                        "pk": {"S": key}, "updatedAt": {"N": str(clock)}, "by": {"S": region},
                        "round": {"N": str(round_)}, "blob": {"B": rng.randbytes(16)}})
                    winner[key] = clock
            dep.run_until_idle(timeout_s=240)
        # A newer delete in one region removes the item everywhere.
        for i in range(0, 40, 5):
            key = {"pk": {"S": f"order-{i:03d}"}}
            clients[regions[i % 2]].delete_item(TableName="Orders", Key=key)
        dep.run_until_idle(timeout_s=240)

        a, b = regions
        result = compare_tables(clients[a], "Orders", clients[b], "Orders", ["pk"], prefix,
                                tombstone_attribute=f"{prefix}deleted")
        assert result.equal, (result.missing[:5], result.different, result.unexpected[:5])
        assert result.source_items == 40 - 8
        for region, client in clients.items():
            item = client.get_item(TableName="Orders", Key={"pk": {"S": "order-001"}}, ConsistentRead=True)["Item"]
            assert int(item["updatedAt"]["N"]) == winner["order-001"], region  # the latest write won everywhere
        # No loops: once quiet, a replicator's own writes do not produce further deliveries.
        before = sum(m.stats.invocations for m in dep.mappings)
        dep.run_until_idle(timeout_s=60)
        assert sum(m.stats.invocations for m in dep.mappings) == before
        assert all(m.destination.failure_records() == [] for m in dep.mappings if m.destination is not None)
        stats = [json.dumps(m.stats.__dict__) for m in dep.mappings]
        assert all(m.stats.function_errors == 0 for m in dep.mappings), stats
