"""A multi-active topology on DynamoDB Local: one table with a stream and one replicator per region."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rep_helpers import FakeContext, Table, create_table, replication_env, sort_items

from replicator.processor import Processor

PREFIX = "_rep_"
DELETED = PREFIX + "deleted"


@dataclass
class Mesh:
    """Tables by region, each region's processor, and a pump that runs every replicator until quiet."""

    tables: dict[str, Table]
    processors: dict[str, Processor]
    results: list[dict[str, Any]] = field(default_factory=list)

    def write(self, region: str) -> Any:
        return self.tables[region].client

    def name(self, region: str) -> str:
        return self.tables[region].name

    def deliver(self, region: str, records: list[dict[str, Any]]) -> dict[str, Any]:
        result = self.processors[region].process({"Records": records}, FakeContext())
        self.results.append(result)
        return result

    def pump(self, rounds: int = 6, only: str | None = None) -> int:
        """Deliver every new stream record to its region's replicator until no region has new records.

        Returns how many records were delivered. Fails if a batch reports failures or it never quiesces.
        """
        delivered = 0
        for _ in range(rounds):
            moved = 0
            for region, table in self.tables.items():
                if only is not None and region != only:
                    continue
                records = table.new_records()
                if records:
                    result = self.deliver(region, records)
                    assert result == {"batchItemFailures": []}, (region, result)
                    moved += len(records)
            delivered += moved
            if moved == 0 or only is not None:
                return delivered
        raise AssertionError(f"replication did not quiesce within {rounds} rounds")

    def live(self, region: str) -> list[dict[str, Any]]:
        """The items an application sees as present (tombstones left out), metadata stripped."""
        return sort_items(
            {k: v for k, v in item.items() if not k.startswith(PREFIX)}
            for item in self.tables[region].items()
            if DELETED not in item
        )

    def tombstones(self, region: str) -> list[dict[str, Any]]:
        return sort_items(
            {k: v for k, v in item.items() if not k.startswith(PREFIX) or k == PREFIX + "origin"}
            for item in self.tables[region].items()
            if DELETED in item
        )

    def assert_converged(self) -> list[dict[str, Any]]:
        regions = list(self.tables)
        first = self.live(regions[0])
        for region in regions[1:]:
            assert self.live(region) == first, f"{region} differs from {regions[0]}: {self.live(region)} != {first}"
            assert self.tombstones(region) == self.tombstones(regions[0]), f"{region} tombstones differ"
        return first


def build_mesh(
    ddb_local: Any, make_processor: Callable[..., Processor], regions: list[str], **extra: str
) -> Mesh:
    tables = {r: create_table(ddb_local, "mesh", r) for r in regions}
    processors = {}
    for region in regions:
        others = [t.ref() for r, t in tables.items() if r != region]
        env = replication_env(tables[region], others, mode="MULTI_ACTIVE", **extra)
        processors[region] = make_processor(env, region)
    return Mesh(tables, processors)
