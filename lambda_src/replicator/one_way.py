"""ONE_WAY mode: the targets are mirrors that only the replicator writes.

Each item's records of the batch coalesce to its last state (rule 2 allows it: the earlier states would be
overwritten in the same order anyway), and the images are copied exactly as the stream holds them.

A target with a transform (transform.py) gets the transformed last state under the transformed key: written
when the last state matches the filter, otherwise (or after a REMOVE) deleted. The delete is left out when
the replica cannot hold the item: no image of the item's records in the batch matches (old images included)
and the state before the first one is known (an INSERT, or an old image). Records of one item arrive in
stream order and Lambda re-delivers from the first record not applied, so the replica holds the state after
one of these records or a state that later records (still to come) overwrite; skipping is therefore safe,
and a delete of an item the replica never held sends nothing (not even its key) to the target.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Executor, Future

from .attributes import Item, ItemKey, item_key, key_item
from .batch_writer import chunks, write_batch
from .clients import ClientFactory
from .config import Config, TableRef, TtlDeletes
from .operations import Delete, NotSent, Operation, Put, WriteFailure
from .plan import ItemPlan, TargetFailure
from .records import Change
from .retry import Deadline
from .secrets import HMAC_KEY_UNAVAILABLE, KeyUnavailable, TargetTransforms
from .telemetry import InvocationMetrics
from .transform import Transform


class OneWayReplication:
    """Plans and applies a batch for ONE_WAY mode with BatchWriteItem."""

    def __init__(self, config: Config, clients: ClientFactory, transforms: TargetTransforms | None = None) -> None:
        self._config = config
        self._clients = clients
        self._transforms = transforms or TargetTransforms(config)

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
        for target in self._config.targets:
            try:
                transform = self._transforms.get(target)
            except KeyUnavailable as exc:  # this target's records fail; the other targets are written
                plan.writes[target] = NotSent(key, WriteFailure(HMAC_KEY_UNAVAILABLE, str(exc)))
                continue
            op = self._operation(key, last, changes, transform)
            if op is not None:
                plan.writes[target] = op
        return plan

    def _operation(
        self, key: ItemKey, last: Change, changes: Sequence[Change], transform: Transform | None
    ) -> Operation | None:
        """The write that brings one target to ``last``'s state (``None``: nothing to send)."""
        if transform is None:
            return Delete(key) if last.is_remove else Put(key, last.new_image or {})
        replica_key = item_key(transform.key(key_item(key)), self._config.key.names)
        item = None if last.is_remove else transform.apply(last.new_image)
        if item is not None:
            return Put(replica_key, item)
        return None if never_held(changes, transform) else Delete(replica_key)

    def apply(
        self, plans: Sequence[ItemPlan], pool: Executor, deadline: Deadline, metrics: InvocationMetrics
    ) -> dict[ItemKey, list[TargetFailure]]:
        futures: list[tuple[TableRef, Future[dict[ItemKey, WriteFailure]]]] = []
        # A transformed target's writes carry the replica's key; failures are reported by the source's.
        source_keys: dict[tuple[TableRef, ItemKey], ItemKey] = {}
        for target in self._config.targets:
            # NotSent writes failed while planned: reported below, never sent.
            ops = [plan.writes[target] for plan in plans if isinstance(plan.writes.get(target), (Put, Delete))]
            for plan in plans:
                if target in plan.writes:
                    source_keys[(target, plan.writes[target].key)] = plan.key
            client = self._clients.for_table(target)
            for chunk in chunks(ops):
                futures.append(
                    (
                        target,
                        pool.submit(write_batch, client, target.request_name, chunk, self._config.key.names, deadline),
                    )
                )
        failures: dict[ItemKey, list[TargetFailure]] = {}
        for plan in plans:
            for target, op in plan.writes.items():
                if isinstance(op, NotSent):
                    failures.setdefault(plan.key, []).append(TargetFailure(target, op.failure))
        for target, future in futures:
            for key, failure in future.result().items():
                failures.setdefault(source_keys[(target, key)], []).append(TargetFailure(target, failure))
        return failures


def never_held(changes: Sequence[Change], transform: Transform) -> bool:
    """Whether the replica cannot hold the item (module docstring): every record's state before it is known (an
    INSERT, or an old image) and no image of the records matches the filter."""
    images: list[Item | None] = []
    for change in changes:
        if change.event_name != "INSERT" and change.old_image is None:
            return False  # a stream without old images: the replica may hold the earlier state
        images += [change.old_image, change.new_image]
    return not any(transform.matches(image) for image in images)
