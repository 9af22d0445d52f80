"""MULTI_ACTIVE mode: every region writes; each region's replicator sends its local writes to all others.

For each item of the batch the planner works out:

1. which records are local writes (to be sent) and which are the replicator's own writes coming back
   (echoes, never sent on: rule 3), from each record's old and new images (see :mod:`.metadata`);
2. the winning state among everything the batch shows for the item (old and new images), by the order
   (conflict attribute, delete-beats-write, origin region) that every region applies identically (rule 4);
3. what to write: the winner to every other region if a local write produced it; and to this region's own
   table a tombstone after a local delete, or the winner put back after a local write that lost (rule 5,
   and rule 4 for this region).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import Executor, Future
from dataclasses import dataclass

from .attributes import MAX_ITEM_BYTES, Item, ItemKey, item_size, key_for_log
from .clients import ClientFactory
from .conditional_writer import Outcome, put_if_newer, put_if_unchanged
from .config import Config, TableRef
from . import metadata
from .metadata import ECHO_WINDOW_SECONDS, ConflictValueError, MetadataCodec, State, compare
from .operations import PutIfNewer, PutIfUnchanged
from .plan import Blocked, ItemPlan, TargetFailure
from .records import Change
from .retry import Deadline
from .telemetry import InvocationMetrics, log

@dataclass(frozen=True)
class _Step:
    """One record's effect on an item: the state it produced, whether it is this region's own write (to send
    on) or an echo, and what the source table holds after it (``restored``: a restored tombstone without a
    logical expiry, whose TTL is renewed)."""

    state: State
    local: bool
    table_image: Item | None
    table_state: State | None
    restored: bool = False


def _latest(candidates: Sequence[tuple[State, bool]]) -> tuple[State, bool]:
    """The winning state; on equal order the later record wins (stream order)."""
    best = candidates[0]
    for candidate in candidates[1:]:
        if compare(candidate[0], best[0]) >= 0:
            best = candidate
    return best


class MultiActiveReplication:
    """Plans and applies a batch for MULTI_ACTIVE mode with conditional PutItem."""

    def __init__(self, config: Config, clients: ClientFactory, logger: logging.Logger) -> None:
        self._config = config
        self._clients = clients
        self._logger = logger
        self._codec = MetadataCodec(config)
        self._region = config.source.region

    # --- planning -----------------------------------------------------------------------------------------

    def _is_echo(self, change: Change) -> bool:
        """The write was made by a replicator: its new image carries a marker that matches its content, the
        marker was written moments before the record, and this very write set that marker (an application
        write that changes a user attribute, even one that copies our metadata back, fails the first; a backup
        restored verbatim fails the second)."""
        new, old = change.new_image, change.old_image
        assert new is not None
        if not self._codec.stamped_by_replicator(new):
            return False
        if self._restored(change):
            return False
        if old is None:
            return True
        marker = self._codec.marker_attr
        if old.get(marker) != new.get(marker):
            return True
        # Same marker on both sides: only a rewrite that left the user attributes as they were is ours
        # (for example a tombstone's expiry refreshed); anything else is an application write.
        return self._codec.user_attributes(old) == self._codec.user_attributes(new)

    def _restored(self, change: Change) -> bool:
        """The new image's marker (which must match its content: check that first) is too old to have been
        written by the write this record shows: the record was created more than ``ECHO_WINDOW_SECONDS``
        after the marker (or, without a record time, the marker is older than any record that can still be
        delivered: the tombstone lifetime, which exceeds stream retention plus the maximum record age).
        Markers without a time (written by an earlier version) are taken as they were before: possibly an
        echo."""
        assert change.new_image is not None
        stamped = self._codec.stamped_at(change.new_image)
        if stamped is None:
            return False
        if change.created_at is not None:
            return stamped < change.created_at - ECHO_WINDOW_SECONDS
        return stamped < metadata.clock() - self._config.tombstone_ttl_seconds

    def _skip_remove(self, change: Change) -> str | None:
        """Why a REMOVE needs nothing sent, or ``None`` when it is a delete to replicate.

        A delete by DynamoDB's TTL is replicated like any delete (config.load_config says why), except when the
        expired item has no usable conflict value: such an item was never replicated (its writes were
        reported), so there is no version to keep, and each copy that exists expires on its own.
        """
        if self._codec.is_tombstone(change.old_image):
            return "tombstone removed"  # by TTL or by hand: the delete it stood for is long settled
        if change.by_ttl and change.old_image is not None:
            try:
                self._codec.version_of(change.old_image)
            except ConflictValueError as exc:
                log(
                    self._logger,
                    logging.WARNING,
                    "TTL delete of an item without a usable conflict value: not replicated",
                    sourceTable=self._config.source.describe(),
                    key=key_for_log(change.key),
                    sequenceNumber=change.sequence_number,
                    reason=exc.code,
                )
                return "TTL delete without a version"
        return None

    def plan(self, key: ItemKey, changes: Sequence[Change]) -> ItemPlan:
        plan = ItemPlan(key=key, changes=list(changes), covers_from=changes[0].index)
        # (state, produced by a local write of this batch?) in stream order.
        candidates: list[tuple[State, bool]] = []
        last: _Step | None = None  # the last planned record: what the source table holds after it
        last_skipped = False
        # The item each local state is written as, stamped once (by the size check): the digest in the marker
        # is the costliest part of planning a write.
        stamped_items: dict[int, Item] = {}
        for change in changes:
            old_state = self._codec.state_of(change.old_image, self._region) if change.old_image else None
            try:
                step = self._step(change)
                if step is not None and step.local:
                    stamped_items[id(step.state)] = self._checked_stamp(step.state)
            except ConflictValueError as exc:
                plan.blocked = Blocked(change, exc.code, str(exc))
                break
            if step is None or not step.local:
                plan.skipped.append(change)  # a REMOVE that needs nothing sent, or an echo
            if step is None:
                last_skipped = True
                continue
            last, last_skipped = step, False
            if old_state is not None and change is changes[0]:
                # The state before the batch. Later old images are earlier records' new images, already in
                # the list; adding them again would let a copy shadow the local write that produced it.
                candidates.append((old_state, False))
            candidates.append((step.state, step.local))
        if not candidates:
            return plan
        best, best_local = _latest(candidates)
        if best_local:
            stamped = stamped_items[id(best)]
            for target in self._config.targets:
                plan.writes[target] = PutIfNewer(key, best, stamped)
        if plan.blocked is None and not last_skipped:
            assert last is not None
            self._plan_local_write(plan, best, last.table_image, last.table_state, last.restored)
        return plan

    def _step(self, change: Change) -> _Step | None:
        """What one record does to the item; ``None`` for a REMOVE that needs nothing sent.

        Raises:
            ConflictValueError: the record cannot be versioned.
        """
        codec = self._codec
        if change.is_remove:
            if self._skip_remove(change) is not None:
                return None
            if change.old_image is None:
                raise ConflictValueError("MissingOldImage", "a REMOVE record without OldImage cannot be versioned")
            state = codec.tombstone_state(
                change.old_image, self._region, int(change.sequence_number), change.created_at
            )
            return _Step(state, local=True, table_image=None, table_state=None)
        image = change.new_image
        assert image is not None
        if self._is_echo(change):
            state = codec.state_of(image, self._region)
            return _Step(state, local=False, table_image=image, table_state=state)
        if codec.stamped_by_replicator(image) and self._restored(change):
            # A backup restored verbatim (its marker is too old to be an echo): the state it holds is sent as it
            # is, like a local write. A restored tombstone keeps the logical expiry in its marker (and the TTL a
            # lifetime after it); one written before markers carried it has only its TTL, which may have
            # passed, and is renewed here.
            # A stamped write with a fresh marker that is not an echo (an UpdateItem back to the content the
            # marker was computed for, or of a tombstone's TTL attribute) is an ordinary write of this region,
            # below: taken for a restore, it would carry the marker's state.
            state = codec.restored_state(image, change.created_at)
            restored = state.deleted and state.expires is None
            return _Step(state, local=True, table_image=image, table_state=state, restored=restored)
        written = None if change.created_at is None else int(change.created_at)
        state = State(
            codec.user_attributes(image),
            codec.version_of(image),
            False,
            self._region,
            int(change.sequence_number),
            written=written,
        )
        return _Step(state, local=True, table_image=image, table_state=state)

    def _checked_stamp(self, state: State) -> Item:
        """The item to send for ``state`` (:meth:`MetadataCodec.stamp`), once it is known to fit.

        Raises:
            ConflictValueError: too large with our metadata.
        """
        stamped = self._codec.stamp(state)
        size = item_size(stamped)
        if size > MAX_ITEM_BYTES:
            raise ConflictValueError(
                "ItemTooLarge", f"{size} bytes with replication metadata; DynamoDB allows {MAX_ITEM_BYTES}"
            )
        return stamped

    def _plan_local_write(
        self, plan: ItemPlan, best: State, image: Item | None, state: State | None, restored: bool = False
    ) -> None:
        """Bring this region's own table to ``best`` when it holds less: nothing (a local delete, which
        needs a tombstone), a local write that lost, a write onto a tombstone that kept its expiry, or a
        restored tombstone without a logical expiry, whose TTL (from the backup) may have passed."""
        codec = self._codec
        if state is None:
            # Deleted here: normally the delete's own tombstone; a state that outranks the delete is put back.
            reason, lost = ("Tombstone", None) if best.deleted else ("Repair", None)
        elif compare(state, best) < 0:
            reason, lost = "Repair", state
        elif image is not None and (restored or codec.has_stale_tombstone_attributes(image)):
            reason, lost = "Restamp", None
        else:
            return
        plan.writes[self._config.source] = PutIfUnchanged(plan.key, best, codec.stamp(best), image, reason, lost)

    # --- applying -----------------------------------------------------------------------------------------

    def apply(
        self, plans: Sequence[ItemPlan], pool: Executor, deadline: Deadline, metrics: InvocationMetrics
    ) -> dict[ItemKey, list[TargetFailure]]:
        futures: list[tuple[ItemPlan, TableRef, PutIfNewer | PutIfUnchanged, Future[Outcome]]] = []
        for plan in plans:
            for table, op in plan.writes.items():
                client = self._clients.for_table(table)
                if isinstance(op, PutIfNewer):
                    future = pool.submit(put_if_newer, client, table, op, self._codec, deadline)
                else:
                    assert isinstance(op, PutIfUnchanged)
                    future = pool.submit(put_if_unchanged, client, table, op, self._codec, deadline)
                futures.append((plan, table, op, future))
        failures: dict[ItemKey, list[TargetFailure]] = {}
        for plan, table, op, future in futures:
            outcome = future.result()
            if outcome.failure is not None:
                failures.setdefault(plan.key, []).append(TargetFailure(table, outcome.failure))
                continue
            self._account(plan, table, op, outcome, metrics)
        return failures

    def _account(
        self, plan: ItemPlan, table: TableRef, op: PutIfNewer | PutIfUnchanged, outcome: Outcome, metrics: InvocationMetrics
    ) -> None:
        """Count and log conflicts and local repairs (successes that an operator may want to see)."""
        fields = {
            "sourceTable": self._config.source.describe(),
            "targetTable": table.describe(),
            "key": key_for_log(plan.key),
            "sequenceNumber": plan.changes[-1].sequence_number,
        }
        if outcome.conflict is None and op.state.deleted:
            metrics.tombstones += 1
        if outcome.conflict == "TargetNewer":
            metrics.conflicts["TargetNewer"] += 1
            log(
                self._logger,
                logging.INFO,
                "conflict: the target holds a newer write, ours lost",
                incoming=op.state.describe(),
                stored=outcome.stored.describe() if outcome.stored else None,
                **fields,
            )
        elif outcome.conflict == "AlreadyApplied":
            metrics.conflicts["AlreadyApplied"] += 1
        elif isinstance(op, PutIfUnchanged) and op.reason == "Repair":
            metrics.conflicts["LocalWriteLost"] += 1
            log(
                self._logger,
                logging.WARNING,
                "conflict: a local write ordered before the item it replaced; the winner was put back",
                winner=op.state.describe(),
                lost=op.lost.describe() if op.lost else None,
                **fields,
            )
