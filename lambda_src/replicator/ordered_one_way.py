"""ONE_WAY mode fed by a Kinesis data stream: writes ordered by when DynamoDB made each change.

Kinesis Data Streams for DynamoDB may deliver one item's changes out of order and more than once; only the
change's ``ApproximateCreationDateTime`` (microseconds) gives their real order. So every write here is a
conditional PutItem that stamps the change time on the target item (``<prefix>changedAt``) and succeeds only
if the target holds an older change or none (an item loaded by an import or a backfill carries no change
time, and the first change replaces it, as when a stream is applied from TRIM_HORIZON over a copy).

Two changes of one item can carry the same time (millisecond precision, or a tie in microseconds). Then
their images order them: the later change's old image is the earlier change's new image. So each write also
stamps ``<prefix>state``, a digest of the state written, and a change with a time equal to the stored one
applies only if its old image is that state (it is the stored change's successor); a duplicate of the stored
change is refused.

A delete is written as a tombstone (the key, ``<prefix>deleted`` and the change time, expiring after
``REPLICATION_TOMBSTONE_TTL_SECONDS`` through the table's TTL attribute): a plain delete would let a late
duplicate of an earlier write bring the item back (rule 5). Readers of such a replica filter
``attribute_not_exists(<prefix>deleted)``; ``cdk-replication verify`` counts tombstones as absent items.

Because a write never replaces a newer change, the records of a batch need no ordering among themselves:
each item's newest change in the batch is written, and a failed write reports the item's first record so
that Lambda re-delivers every record of it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field

from .attributes import Item, ItemKey, digest, key_item
from .clients import ClientFactory
from .conditional_writer import conditional_put
from .config import Config, TableRef, TtlDeletes
from .metadata import DELETED  # the tombstone flag (BOOL) multi-active uses too
from .operations import WriteFailure
from .plan import ItemPlan, TargetFailure
from .records import Change
from .retry import Deadline
from .telemetry import InvocationMetrics

#: Metadata attribute (after the prefix) holding the source change time in epoch microseconds (N).
CHANGED_AT = "changedAt"
#: Metadata attribute (after the prefix) holding the digest of the state written (S), to order equal times.
STATE = "state"
#: ``<prefix>state`` of "no item" (a tombstone, or the state before an INSERT).
ABSENT = "-"
#: Conflict counter: the target already held this change or a newer one (a duplicate or a late record).
SUPERSEDED = "Superseded"


@dataclass(frozen=True)
class PutIfLater:
    """Write ``item`` (a state or a tombstone, stamped with ``change_time_us``) unless the target holds a
    change made after that time, or made at that time and not the one this change follows (``previous``:
    the digest of the state before this change)."""

    key: ItemKey
    change_time_us: int
    previous: str
    item: Item = field(repr=False)


class StateDigests:
    """Digests of the states a change moves an item between, over the user attributes only."""

    def __init__(self, metadata_prefix: str) -> None:
        self._prefix = metadata_prefix

    def of(self, image: Item | None) -> str:
        if image is None:
            return ABSENT
        return digest({k: v for k, v in image.items() if not k.startswith(self._prefix)})

    def before(self, change: Change) -> str:
        return ABSENT if change.event_name == "INSERT" else self.of(change.old_image)

    def after(self, change: Change) -> str:
        return ABSENT if change.is_remove else self.of(change.new_image)


def latest_change(changes: Sequence[Change], digests: StateDigests) -> Change:
    """The change made last. Among changes with the latest time, the one no other change follows (none
    has its new state as old state); a duplicate, or a chain that cannot be told apart, goes to the record
    delivered last."""
    latest_time = max(c.change_time_us or 0 for c in changes)
    tied = [c for c in changes if (c.change_time_us or 0) == latest_time]
    if len(tied) > 1:
        followed = {digests.before(c) for c in tied}
        tails = [c for c in tied if digests.after(c) not in followed or digests.after(c) == digests.before(c)]
        if tails:
            tied = tails
    return max(tied, key=lambda c: c.index)


class OrderedOneWayReplication:
    """Plans and applies a batch of Kinesis change records for ONE_WAY mode with conditional PutItem."""

    def __init__(self, config: Config, clients: ClientFactory, logger: logging.Logger) -> None:
        self._config = config
        self._clients = clients
        self._logger = logger
        prefix = config.metadata_prefix
        self.changed_at_attr = prefix + CHANGED_AT
        self.state_attr = prefix + STATE
        self.deleted_attr = prefix + DELETED
        self.digests = StateDigests(prefix)

    def plan(self, key: ItemKey, changes: Sequence[Change]) -> ItemPlan:
        plan = ItemPlan(key=key, changes=list(changes), covers_from=changes[0].index)
        if self._config.ttl_deletes is TtlDeletes.SKIP:
            plan.skipped = [c for c in changes if c.is_remove and c.by_ttl]
        skipped = {c.index for c in plan.skipped}
        applied = [c for c in changes if c.index not in skipped]
        if not applied:
            return plan
        last = latest_change(applied, self.digests)
        assert last.change_time_us is not None, "Kinesis change records always carry a change time"
        op = PutIfLater(key, last.change_time_us, self.digests.before(last), self._item(last))
        plan.writes = {target: op for target in self._config.targets}
        return plan

    def _item(self, change: Change) -> Item:
        stamp = {
            self.changed_at_attr: {"N": str(change.change_time_us)},
            self.state_attr: {"S": self.digests.after(change)},
        }
        if not change.is_remove:
            return {**(change.new_image or {}), **stamp}
        # Only the key: a tombstone stands for "no item" and must not keep the deleted data.
        tombstone = key_item(change.key)
        tombstone[self.deleted_attr] = {"BOOL": True}
        tombstone[self._config.ttl_attribute] = {"N": str(int(time.time()) + self._config.tombstone_ttl_seconds)}
        tombstone.update(stamp)
        return tombstone

    def apply(
        self, plans: Sequence[ItemPlan], pool: Executor, deadline: Deadline, metrics: InvocationMetrics
    ) -> dict[ItemKey, list[TargetFailure]]:
        futures: list[tuple[ItemPlan, TableRef, Future[tuple[bool, Item | None, WriteFailure | None]]]] = []
        for plan in plans:
            for target, op in plan.writes.items():
                assert isinstance(op, PutIfLater)
                condition = (
                    "attribute_not_exists(#t) OR #t < :t OR (#t = :t AND #s = :p)",
                    {"#t": self.changed_at_attr, "#s": self.state_attr},
                    {":t": {"N": str(op.change_time_us)}, ":p": {"S": op.previous}},
                )
                client = self._clients.for_table(target)
                # A failed condition only means "superseded": the stored item is not needed, so not returned.
                futures.append(
                    (plan, target, pool.submit(conditional_put, client, target, op.item, condition, deadline, False))
                )
        failures: dict[ItemKey, list[TargetFailure]] = {}
        for plan, target, future in futures:
            written, _stored, failure = future.result()
            if failure is not None:
                failures.setdefault(plan.key, []).append(TargetFailure(target, failure))
            elif not written:
                metrics.conflicts[SUPERSEDED] += 1
        return failures
