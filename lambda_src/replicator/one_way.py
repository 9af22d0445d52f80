"""ONE_WAY mode: the targets are mirrors that only the replicator writes.

Each item's records of the batch coalesce to its last state (rule 2 allows it: the earlier states would be
overwritten in the same order anyway), and the images are copied exactly as the stream holds them.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Executor, Future

from .attributes import ItemKey
from .batch_writer import chunks, write_batch
from .clients import ClientFactory
from .config import Config, TableRef, TtlDeletes
from .operations import Delete, Operation, Put, WriteFailure
from .plan import ItemPlan, TargetFailure
from .records import Change
from .retry import Deadline
from .telemetry import InvocationMetrics


class OneWayReplication:
    """Plans and applies a batch for ONE_WAY mode with BatchWriteItem."""

    def __init__(self, config: Config, clients: ClientFactory) -> None:
        self._config = config
        self._clients = clients

    def plan(self, key: ItemKey, changes: Sequence[Change]) -> ItemPlan:
        plan = ItemPlan(key=key, changes=list(changes), covers_from=changes[0].index)
        if self._config.ttl_deletes is TtlDeletes.SKIP:
            # Replicas that expire items on their own: a TTL delete is left to the replica's TTL.
            plan.skipped = [c for c in changes if c.is_remove and c.by_ttl]
        skipped = {c.index for c in plan.skipped}
        applied = [c for c in changes if c.index not in skipped]
        if not applied:
            return plan
        last = applied[-1]
        op: Operation = Delete(key) if last.is_remove else Put(key, last.new_image or {})
        plan.writes = {target: op for target in self._config.targets}
        return plan

    def apply(
        self, plans: Sequence[ItemPlan], pool: Executor, deadline: Deadline, metrics: InvocationMetrics
    ) -> dict[ItemKey, list[TargetFailure]]:
        futures: list[tuple[TableRef, Future[dict[ItemKey, WriteFailure]]]] = []
        for target in self._config.targets:
            ops = [plan.writes[target] for plan in plans if target in plan.writes]
            client = self._clients.for_table(target)
            for chunk in chunks(ops):
                futures.append(
                    (
                        target,
                        pool.submit(write_batch, client, target.request_name, chunk, self._config.key.names, deadline),
                    )
                )
        failures: dict[ItemKey, list[TargetFailure]] = {}
        for target, future in futures:
            for key, failure in future.result().items():
                failures.setdefault(key, []).append(TargetFailure(target, failure))
        return failures
