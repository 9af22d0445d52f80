"""ONE_WAY mode fed by a Kinesis data stream: writes ordered by when DynamoDB made each change.

Kinesis Data Streams for DynamoDB may deliver one item's changes out of order and more than once; only the
change's ``ApproximateCreationDateTime`` (microseconds, or milliseconds at AWS's default precision) gives
their real order. So every write here is a conditional PutItem that stamps the change time on the target
item (``<prefix>changedAt``, in microseconds) and succeeds only if the target holds an older change or none
(an item loaded by an import or a backfill carries no change time, and the first change replaces it, as when
a stream is applied from TRIM_HORIZON over a copy). A change older than the stored one is superseded.

Equal change times (several writes of one item within one millisecond, or a tie in microseconds) cannot
always be ordered from the records: within one tick an item may return to a state it had (create, delete,
create; v1, v2, v1), and a duplicate of an earlier record then looks exactly like a later change. So the
records decide only where they cannot be wrong, and otherwise the source decides:

* Each write also stamps ``<prefix>state``: the digest of the source's state after the change it wrote
  (``-`` for a tombstone, and for a TTL delete skipped below), or ``settled`` for a write settled from the
  source (below). No digest can equal ``settled``.
* In a batch, among an item's changes with the latest time, a change is written only if those changes form
  one chain of distinct states (each one's old image is the previous one's new image); its last change is
  then the latest of them (exact repeats of a transition count once: a duplicate record makes them).
  Otherwise (a cycle, a state reached twice, changes that do not link up) the item is settled.
* A write refused because the target holds a change with the *same* time (its ``changedAt`` comes back with
  ``ReturnValuesOnConditionCheckFailure=ALL_OLD``) is harmless only if the target holds the same state (a
  duplicate) or a settled one; otherwise the item is settled. A target with a transform cannot tell a
  duplicate by its state (below): there only a settled write makes such a refusal harmless.
* Settling reads the source item with a strongly consistent GetItem and writes it (or a tombstone when the
  source has no item) stamped with that time and ``state=settled``, on the condition that the target holds
  nothing newer and no settled write of that time. The read is made once per item and batch and shared by
  every target, and only once the function's clock is past ``t`` plus one tick (1 ms) plus a skew margin of
  1 s (it waits for that, within the invocation's deadline; with no time left the item is reported for
  re-delivery), so the settled item reflects every change made at ``t`` (premises below); changes with
  later times still apply after it, and records with time ``t`` are refused by it. The source may be ahead of the stream (a backlog): then the settled item
  shows a later state than its stamp says, and the records between replay over it until the item catches up
  again, so a reader can see it step back once; nothing is lost, since only records of time ``t`` are
  refused. Each settle counts as a ``SettledFromSource`` conflict and is logged with the item key. With
  ``REPLICATION_TTL_DELETES=SKIP`` a source without the item cannot tell a TTL delete (to be kept in the
  replica) from another delete: the item is then reported for repair (``UnsettledTie``).
* With ``REPLICATION_TTL_DELETES=SKIP`` TTL deletes still take part in the chain check (left out, the
  changes around one can form a chain that never happened: A->B, TTL delete, create A looks like
  ``-->A->B``). A chain ending in a TTL delete writes the state before it (its old image: the replica keeps
  what the last replicated change wrote) stamped ``-``, the source's state; so a batch of TTL deletes only is
  written too (one conditional write per TTL delete), and its refusal by another state of the same time
  settles the item.

Premises (what the records and DynamoDB are taken to guarantee; AWS documents none of them explicitly):

* One item's change times rise in the order its changes are committed (equal within a tick, never lower).
* A millisecond stamp is the change time truncated to its millisecond, so a change of time ``t`` was made
  within ``[t, t + 1 ms)``.
* Every change stamped ``t`` is committed before any record of ``t`` is processed. This holds because
  delivery through Kinesis to the function takes far longer than a tick; the settle's wait (one tick and a
  second of clock skew past ``t``) makes the source read safe even where the function's clock lags.

Why this converges (rule 1): writes never lower ``changedAt``, so the target ends at the latest time ``t``
of the item's changes, and only the first write at ``t`` can come from a record (later ones need an older
stored time). A settled write reflects every change of ``t``. If that first write came from a change that
is not the item's last change of ``t``, the item left the state ``S`` it stamped later within ``t`` by
another change; that change is not in the batch that wrote ``S`` (its chain ends at ``S`` and visits each
state once), so it is delivered later, where its own batch's chain passes through ``S`` and ends elsewhere:
the write is refused at the same time with another state, and the item is settled. With TTL deletes
skipped the argument is the same, because chains and stamps follow the source's states (TTL deletes
included); only what is written for a chain ending in a TTL delete differs, and it is what the replica holds
after that change. A settle that finds no source item is then reported instead (``UnsettledTie``).

Targets with a transform (transform.py). What such a target holds is the transformed state: a matching state
under the transformed key, or a tombstone (the transformed key only) for a state that does not match. Two
things differ from an exact copy, and the argument above is redone for them:

* A batch none of whose images (old and new) matches the filter is skipped for that target (one_way.never_held,
  also when its changes cannot be ordered): the replica never learns of an item it never held, not even its
  key. So the change that left the state a first write stamped may never be written there.
* Its ``<prefix>state`` stamp is the digest of what it holds (never of the source's state: an unkeyed digest of
  the source item would let the target check guesses of masked or dropped values). Distinct source states
  share one replica state (every state that does not match is a tombstone; states differing in a dropped
  attribute are equal), so an equal stamp does not prove a duplicate. Hence a refusal at the same time is
  harmless only when the target holds a settled write, or when the stored and the refused write both stand for
  a state that does not match (stamp ``-``); otherwise the item is settled, duplicates included. And a batch
  whose changes of its latest time enter a matching state but whose chain ends in one that does not is settled
  instead of written: the change that really came last may be in a batch that is skipped.

Why this converges per transformed target: let ``t`` be the item's latest change time. If some batch not
skipped holds a change of ``t``, the first write at ``t`` stamps state ``S`` (a settle reflects every change
of ``t``: done). If ``S`` is not the last state ``L`` of ``t`` and the replica's forms of ``S`` and ``L``
differ, either ``S`` matches (stamp not ``-``): the change leaving ``S`` has a matching old image and is not in
the batch that wrote ``S`` (that chain ends at ``S`` and visits each state once), so its batch, not skipped,
writes at ``t`` (``t`` is the latest time, so it is its batch's latest time too) and is refused by ``S``, which
settles the item; or ``S`` does not match and ``L`` does: the change entering ``L`` is of time ``t`` with a
matching new image, so it is not in the batch that wrote ``S`` (that batch would have been settled), and its
own batch, not skipped, is settled at once (its chain ends at ``-``) or writes a matching state, which ``S``
refuses, and settles the item. If every batch holding a change of
``t`` is skipped, every image of ``t`` fails the filter, ``L`` included, and so did the state the item entered
``t`` with; the latest time ``T < t`` of a write not skipped then ends in a state that does not match either
(the change after ``T`` left it with an image that does not match), and the same argument at ``T`` leaves a
tombstone: what ``L`` transforms to.
The price: a duplicate or re-delivered record that writes a matching state costs a settle (a source GetItem,
and the wait above when the record is recent) instead of a refused write; one of a delete or of a state that
does not match stays a refused write (with ``REPLICATION_TTL_DELETES=SKIP``, a TTL delete's duplicate too).
tests/replicator/test_transform_ties_exhaustive.py checks every delivery of small tied histories.

A delete is written as a tombstone (the key, ``<prefix>deleted`` and the change time, expiring after
``REPLICATION_TOMBSTONE_TTL_SECONDS`` through the table's TTL attribute): a plain delete would let a late
duplicate of an earlier write bring the item back (rule 5). Readers of such a replica filter
``attribute_not_exists(<prefix>deleted)``; ``cdk-replication verify`` counts tombstones as absent items.

An item whose latest state would exceed DynamoDB's 400 KB with the metadata attributes is not sent to that
target: its records are reported as failed with ``ItemTooLarge`` (as in multi-active mode), never retried into
a ``ValidationException``. The check is per target, since a transform changes the size (``hmac`` can grow a
number set about five-fold): the other targets are still written.

Because a write never replaces a newer change, the records of a batch need no ordering among themselves:
each item's newest change in the batch is written, and a failed write reports the item's first record so
that Lambda re-delivers every record of it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from .attributes import MAX_ITEM_BYTES, Item, ItemKey, digest, item_key, item_size, key_for_log, key_item
from .clients import ClientFactory
from .conditional_writer import conditional_put
from .config import Config, TableRef, TtlDeletes
from .metadata import DELETED  # the tombstone flag (BOOL) multi-active uses too
from .one_way import never_held
from .operations import NotSent, WriteFailure
from .plan import ItemPlan, TargetFailure
from .records import Change
from .retry import DEADLINE_EXCEEDED, Deadline, error_code, is_retryable, wait_before_retry
from .secrets import HMAC_KEY_UNAVAILABLE, KeyUnavailable, TargetTransforms
from .telemetry import InvocationMetrics, log
from .transform import Transform

#: Metadata attribute (after the prefix) holding the source change time in epoch microseconds (N).
CHANGED_AT = "changedAt"
#: Metadata attribute (after the prefix) holding the digest of the state written (S), or :data:`SETTLED`.
STATE = "state"
#: ``<prefix>state`` of "no item" (a tombstone, or the state before an INSERT).
ABSENT = "-"
#: ``<prefix>state`` of an item settled from the source: it reflects every change made at its ``changedAt``.
#: Digests are 22 characters of URL-safe base64, so none equals it.
SETTLED = "settled"
#: Conflict counter: the target already held this change, a newer one, or a settled one of the same time.
SUPERSEDED = "Superseded"
#: Conflict counter: changes with equal times that the records could not order were settled from the source.
SETTLED_FROM_SOURCE = "SettledFromSource"
#: Failure code: an item too large to be written with the metadata attributes (as in multi-active mode).
ITEM_TOO_LARGE = "ItemTooLarge"
#: Failure code: a tie to settle from a source that no longer holds the item, while TTL deletes are skipped
#: (a TTL delete must not reach the replica, another delete must): reported for repair.
UNSETTLED_TIE = "UnsettledTie"
#: The coarsest tick of a change time, in microseconds: AWS stamps Kinesis records in milliseconds by default.
TICK_US = 1_000
#: How far the function's clock may lag DynamoDB's, in microseconds (1 s): before reading the source to settle
#: a tie of time ``t``, the function waits until its clock is past ``t`` + :data:`TICK_US` + this margin.
CLOCK_SKEW_MARGIN_US = 1_000_000


@dataclass(frozen=True)
class PutIfLater:
    """Write ``item`` (a state or a tombstone, stamped with ``change_time_us`` and ``state``) unless the
    target holds a change made at that time or later.

    ``state`` is the digest of the state written. A refusal by a change of the same time is harmless (a
    duplicate) when the target holds a settled write or one stamped with a state in ``duplicate_states``;
    otherwise the item is settled from the source. ``None`` (the default) means ``{state}``: an exact copy's
    states are the source's. A target with a transform, whose states merge source states, gets ``{"-"}`` or
    nothing (module docstring, targets with a transform).
    """

    key: ItemKey
    change_time_us: int
    state: str
    item: Item = field(repr=False)
    duplicate_states: frozenset[str] | None = None

    @property
    def harmless_states(self) -> frozenset[str]:
        """Stored states of the same change time that make a refusal of this write harmless."""
        base = frozenset({self.state}) if self.duplicate_states is None else self.duplicate_states
        return base | {SETTLED}


@dataclass(frozen=True)
class SettleFromSource:
    """Read the source item and write it (or a tombstone) stamped with ``change_time_us`` and
    :data:`SETTLED`, unless the target holds a later change or a settled one of that time. ``reason`` is
    for the log."""

    key: ItemKey
    change_time_us: int
    reason: str


#: What a plan of this mode holds per target.
OrderedWrite = PutIfLater | SettleFromSource


def _is_tombstone(op: object, deleted_attr: str) -> bool:
    """A write of a delete tombstone as planned (a write settled from the source is counted as settled)."""
    return isinstance(op, PutIfLater) and deleted_attr in op.item


@dataclass(frozen=True)
class _Outcome:
    """How one item's write to one target ended: ``conflict`` is ``None`` (written as planned),
    :data:`SUPERSEDED` or :data:`SETTLED_FROM_SOURCE`; ``failure`` is set when nothing was applied."""

    conflict: str | None = None
    failure: WriteFailure | None = None
    reason: str | None = None


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


def latest_change(changes: Sequence[Change], digests: StateDigests) -> Change | None:
    """The change made last, or ``None`` when the records cannot tell it.

    Among the changes with the latest time, one is certainly last only if they form one chain of distinct
    states (after dropping exact repeats of a transition, which a duplicate record makes): then its last
    change is the one no other follows. A cycle (the item returns to a state within the tick), a repeated
    state, or changes that do not link up leave the order open. Such a chain is not always the whole tick,
    but a change of the tick that is missing from it settles the item when it arrives (module docstring).
    """
    latest_time = max(c.change_time_us or 0 for c in changes)
    tied = [c for c in changes if (c.change_time_us or 0) == latest_time]
    # One change per distinct transition; of repeats, the one delivered last (they write the same state).
    transitions = {(digests.before(c), digests.after(c)): c for c in tied}
    if len(transitions) == 1:
        return tied[-1]
    return _tail_of_chain(transitions)


def _tail_of_chain(transitions: dict[tuple[str, str], Change]) -> Change | None:
    """The last change of the chain ``transitions`` form, if they form one chain of distinct states."""
    following: dict[str, tuple[str, str]] = {}
    for before, after in transitions:
        if before == after or before in following:
            return None  # a change that keeps the state, or two changes leaving one state: not a chain
        following[before] = (before, after)
    afters = {after for _, after in transitions}
    if len(afters) != len(transitions):
        return None  # two changes reach one state
    heads = [t for t in transitions if t[0] not in afters]
    if len(heads) != 1:
        return None  # a cycle, or several pieces
    seen = {heads[0][0]}
    edge: tuple[str, str] | None = heads[0]
    last = heads[0]
    while edge is not None:
        if edge[1] in seen:
            return None
        seen.add(edge[1])
        last = edge
        edge = following.get(edge[1])
    return transitions[last] if len(seen) == len(transitions) + 1 else None


def _enters_a_match(last: Change, changes: Sequence[Change], transform: Transform) -> bool:
    """Whether a change of ``last``'s time in ``changes`` enters a state that ``transform`` matches."""
    tied = (c for c in changes if c.change_time_us == last.change_time_us)
    return any(transform.matches(c.new_image) for c in tied if not c.is_remove)


class OrderedOneWayReplication:
    """Plans and applies a batch of Kinesis change records for ONE_WAY mode with conditional PutItem."""

    def __init__(
        self, config: Config, clients: ClientFactory, logger: logging.Logger, transforms: TargetTransforms | None = None
    ) -> None:
        self._config = config
        self._clients = clients
        self._logger = logger
        self._transforms = transforms or TargetTransforms(config)
        prefix = config.metadata_prefix
        self.changed_at_attr = prefix + CHANGED_AT
        self.state_attr = prefix + STATE
        self.deleted_attr = prefix + DELETED
        self.digests = StateDigests(prefix)
        #: The wall clock (epoch seconds) and sleep used to wait for a tick to pass; replaced by tests.
        self.clock: Callable[[], float] = time.time
        self.sleep: Callable[[float], None] = time.sleep

    # --- planning -----------------------------------------------------------------------------------------

    def plan(self, key: ItemKey, changes: Sequence[Change]) -> ItemPlan:
        plan = ItemPlan(key=key, changes=list(changes), covers_from=changes[0].index)
        skip_ttl = self._config.ttl_deletes is TtlDeletes.SKIP
        if skip_ttl:
            plan.skipped = [c for c in changes if c.is_remove and c.by_ttl]
        # TTL deletes stay in the chain check even when they are skipped: dropped, the changes around one
        # can look like a chain that never happened (A->B, TTL delete, create A: "-->A->B" would write B).
        # Even a batch of TTL deletes only is written (the state before the delete, stamped with the delete's
        # time and state "-"): its refusal by another state of the same time is what settles such an item
        # when "-->A->B" was written first. The cost: one conditional write per TTL delete.
        last = latest_change(changes, self.digests)
        for target in self._config.targets:
            op = self._planned_write(key, last, changes, target)
            if op is not None:
                plan.writes[target] = op
        return plan

    def _planned_write(
        self, key: ItemKey, last: Change | None, changes: Sequence[Change], target: TableRef
    ) -> OrderedWrite | NotSent | None:
        """What ``target`` gets for the batch's ``changes`` (``last``: the change made last, ``None`` when the
        records cannot tell it). ``None``: nothing, since the target's transform shows that the replica never
        held the item (one_way.never_held; safe with ties only because of how a transformed target judges them:
        the module docstring's argument for targets with a transform), so it hears nothing of it, not even a
        tombstone under its key. A write that fails here (no HMAC key, an item too
        large for this target's copy) fails for this target only; it is reported from the item's first record,
        so that a re-delivery brings every record of it."""
        try:
            transform = self._transforms.get(target)
        except KeyUnavailable as exc:
            return NotSent(key, WriteFailure(HMAC_KEY_UNAVAILABLE, str(exc)))
        if transform is not None and never_held(changes, transform):
            return None
        if last is None:
            change_time = max(c.change_time_us or 0 for c in changes)
            return SettleFromSource(key, change_time, "changes of the batch with equal times cannot be ordered")
        op = self._put_if_later(key, last, transform)
        if isinstance(op, PutIfLater) and transform is not None and op.state == ABSENT \
                and _enters_a_match(last, changes, transform):
            # The chain ends in a state that does not match after passing through one that does: a change
            # that left the state it ends in may be in a batch skipped here (it matches nowhere), so nothing
            # would reveal the tie later (module docstring, targets with a transform).
            return SettleFromSource(key, op.change_time_us, "a tie ending in a state the filter does not match")
        if isinstance(op, int):
            message = (f"{op} bytes with replication metadata (record {last.sequence_number}); "
                       f"DynamoDB allows {MAX_ITEM_BYTES}")
            return NotSent(key, WriteFailure(ITEM_TOO_LARGE, message))
        return op

    def _put_if_later(self, key: ItemKey, last: Change, transform: Transform | None) -> PutIfLater | int:
        """The write of ``last``'s state to one target, or its size in bytes when it is too large.

        A transformed target is stamped with the digest of what it holds (the transformed state), never of the
        source's state: an unkeyed digest of the source item would let the target check guesses of masked or
        dropped values. Since such states merge source states, only ``-`` (a state that does not match) makes a
        same-time refusal of a write of ``-`` harmless, and only if no change of that time enters a matching
        state (``_planned_write`` settles those)."""
        assert last.change_time_us is not None
        image = self._replica_image(last, self._config.ttl_deletes is TtlDeletes.SKIP)
        state, replica_key = self.digests.after(last), key
        if transform is not None:
            image = transform.apply(image) if image is not None else None
            replica_key = self._replica_key(key, transform)
            state = ABSENT if image is None or state == ABSENT else self.digests.of(image)
        item = self._stamped(image, replica_key, last.change_time_us, state)
        size = item_size(item)
        if size > MAX_ITEM_BYTES:
            return size
        if transform is None:
            return PutIfLater(key, last.change_time_us, state, item)
        duplicates = frozenset({ABSENT}) if state == ABSENT else frozenset()
        return PutIfLater(key, last.change_time_us, state, item, duplicates)

    def _replica_key(self, key: ItemKey, transform: Transform) -> ItemKey:
        """The target's key for a source ``key``."""
        return item_key(transform.key(key_item(key)), self._config.key.names)

    @staticmethod
    def _replica_image(last: Change, skip_ttl: bool) -> Item | None:
        """What the replica holds after ``last`` (``None``: no item). A skipped TTL delete leaves the state
        before it, which is its old image: the replica keeps what the last replicated change wrote."""
        if last.is_remove and last.by_ttl and skip_ttl:
            return last.old_image
        return None if last.is_remove else last.new_image

    def _stamped(self, image: Item | None, key: ItemKey, change_time_us: int, state: str) -> Item:
        """``image`` (``None``: a tombstone) stamped with the change time and ``state``."""
        stamp = {self.changed_at_attr: {"N": str(change_time_us)}, self.state_attr: {"S": state}}
        if image is not None:
            return {**image, **stamp}
        # Only the key: a tombstone stands for "no item" and must not keep the deleted data.
        tombstone = key_item(key)
        tombstone[self.deleted_attr] = {"BOOL": True}
        tombstone[self._config.ttl_attribute] = {"N": str(int(time.time()) + self._config.tombstone_ttl_seconds)}
        tombstone.update(stamp)
        return tombstone

    # --- applying -----------------------------------------------------------------------------------------

    def apply(
        self, plans: Sequence[ItemPlan], pool: Executor, deadline: Deadline, metrics: InvocationMetrics
    ) -> dict[ItemKey, list[TargetFailure]]:
        futures: list[tuple[ItemPlan, TableRef, Future[_Outcome]]] = []
        # Every target of an item settles from the same source read (one GetItem per item and batch).
        reads = _SourceReads(self._read_source)
        for plan in plans:
            for target, op in plan.writes.items():
                assert isinstance(op, (PutIfLater, SettleFromSource, NotSent))
                futures.append((plan, target, pool.submit(self._write, target, op, deadline, reads)))
        failures: dict[ItemKey, list[TargetFailure]] = {}
        for plan, target, future in futures:
            outcome = future.result()
            if outcome.failure is not None:
                failures.setdefault(plan.key, []).append(TargetFailure(target, outcome.failure))
            elif outcome.conflict is None and _is_tombstone(plan.writes[target], self.deleted_attr):
                metrics.tombstones += 1
            elif outcome.conflict is not None:
                metrics.conflicts[outcome.conflict] += 1
                if outcome.conflict == SETTLED_FROM_SOURCE:
                    log(
                        self._logger,
                        logging.INFO,
                        "tie settled from the source: changes of this item with equal times could not be "
                        "ordered from the records",
                        sourceTable=self._config.source.describe(),
                        targetTable=target.describe(),
                        key=key_for_log(plan.key),
                        changeTime=plan.writes[target].change_time_us,
                        reason=outcome.reason,
                        sequenceNumbers=[c.sequence_number for c in plan.changes],
                    )
        return failures

    def _write(
        self, target: TableRef, op: OrderedWrite | NotSent, deadline: Deadline, reads: "_SourceReads"
    ) -> _Outcome:
        """Apply ``op`` to ``target``, settling the item from the source where the records cannot order it."""
        if isinstance(op, NotSent):
            return _Outcome(failure=op.failure)
        if isinstance(op, SettleFromSource):
            return self._settle(target, op.key, op.change_time_us, op.reason, deadline, reads)
        condition = (
            "attribute_not_exists(#t) OR #t < :t",
            {"#t": self.changed_at_attr},
            {":t": {"N": str(op.change_time_us)}},
        )
        client = self._clients.for_table(target)
        # The stored item comes back on a failed condition: its change time tells a late or duplicate
        # record (superseded) from a tie that needs the source.
        written, stored, failure = conditional_put(client, target, op.item, condition, deadline, True)
        if failure is not None:
            return _Outcome(failure=failure)
        if written:
            return _Outcome()
        reason = self._tie_to_settle(stored, op)
        if reason is None:
            return _Outcome(conflict=SUPERSEDED)
        return self._settle(target, op.key, op.change_time_us, reason, deadline, reads)

    def _tie_to_settle(self, stored: Item | None, op: PutIfLater) -> str | None:
        """Why a refused write must be settled from the source, or ``None`` when the refusal is right: the
        target holds a later change, the same state at the same time (a duplicate), or a settled write of
        that time."""
        stored = stored or {}
        try:
            stored_time = int(stored[self.changed_at_attr]["N"])
        except (KeyError, TypeError, ValueError):
            return "the target's change time could not be read"  # settling is always safe
        if stored_time > op.change_time_us:
            return None
        state = stored.get(self.state_attr, {}).get("S")
        if state in op.harmless_states:
            return None
        if op.duplicate_states is not None:
            return "the target holds a change made at the same time (a transformed state cannot tell a duplicate)"
        return "the target holds another change made at the same time"

    def _settle(self, target: TableRef, key: ItemKey, change_time_us: int, reason: str, deadline: Deadline,
                reads: "_SourceReads") -> _Outcome:
        """Write the source's current item (or a tombstone) to ``target`` as the state at ``change_time_us``."""
        source_item, failure = reads.get(key, change_time_us, deadline)
        if failure is not None:
            return _Outcome(failure=failure)
        if source_item is None and self._config.ttl_deletes is TtlDeletes.SKIP:
            return _Outcome(
                failure=WriteFailure(
                    UNSETTLED_TIE,
                    "changes with equal times could not be ordered, and the source no longer holds the item: "
                    "with REPLICATION_TTL_DELETES=SKIP a TTL delete cannot be told from another delete; "
                    "repair the item (cdk-replication verify --repair)",
                )
            )
        try:
            transform = self._transforms.get(target)
        except KeyUnavailable as exc:
            return _Outcome(failure=WriteFailure(HMAC_KEY_UNAVAILABLE, str(exc)))
        replica_key = key
        if transform is not None:
            # A tombstone holds the replica's key only. A settle reaches a transformed target only after a
            # write of the item was sent there, or from a batch with a matching image (plan): never for an
            # item the replica never held.
            source_item = transform.apply(source_item) if source_item is not None else None
            replica_key = self._replica_key(key, transform)
        item = self._stamped(source_item, replica_key, change_time_us, SETTLED)
        size = item_size(item)
        if size > MAX_ITEM_BYTES:
            return _Outcome(
                failure=WriteFailure(
                    ITEM_TOO_LARGE, f"{size} bytes with replication metadata; DynamoDB allows {MAX_ITEM_BYTES}"
                )
            )
        condition = (
            "attribute_not_exists(#t) OR #t < :t OR (#t = :t AND (attribute_not_exists(#s) OR #s <> :s))",
            {"#t": self.changed_at_attr, "#s": self.state_attr},
            {":t": {"N": str(change_time_us)}, ":s": {"S": SETTLED}},
        )
        written, _, failure = conditional_put(
            self._clients.for_table(target), target, item, condition, deadline, False
        )
        if failure is not None:
            return _Outcome(failure=failure)
        # Refused: the target meanwhile holds a later change, or a settle of the same time (as good as ours).
        return _Outcome(conflict=SETTLED_FROM_SOURCE if written else SUPERSEDED, reason=reason)

    def _wait_until_committed(self, change_time_us: int, deadline: Deadline) -> WriteFailure | None:
        """Wait until the function's clock is past ``change_time_us`` + one tick + the skew margin, so that
        every change stamped with that time is committed; a failure (retryable) if the deadline comes first."""
        wait_s = (change_time_us + TICK_US + CLOCK_SKEW_MARGIN_US) / 1e6 - self.clock()
        if wait_s <= 0:
            return None
        if deadline.remaining() <= wait_s:
            return WriteFailure(
                DEADLINE_EXCEEDED,
                f"settling a tie needs the source read {wait_s:.3f} s from now (after its change time, one tick "
                "and a clock-skew margin); the invocation has not that much time left",
                retries_exhausted=True,
            )
        self.sleep(wait_s)
        return None

    def _read_source(self, key: ItemKey, change_time_us: int, deadline: Deadline) -> tuple[Item | None, WriteFailure | None]:
        """The source item, strongly consistent (``None``: no item), read once every change stamped
        ``change_time_us`` is surely committed, retrying transient errors."""
        failure = self._wait_until_committed(change_time_us, deadline)
        if failure is not None:
            return None, failure
        source = self._config.source
        client = self._clients.for_table(source)
        request: dict[str, Any] = {"TableName": source.request_name, "Key": key_item(key), "ConsistentRead": True}
        attempt = 0
        while True:
            if deadline.passed():
                return None, WriteFailure(DEADLINE_EXCEEDED, "source read not started: the deadline had passed", True)
            try:
                return client.get_item(**request).get("Item"), None
            except (ClientError, BotoCoreError) as exc:
                message = f"reading the source item to settle a tie: {str(exc)[:400]}"
                if not is_retryable(exc):
                    return None, WriteFailure(error_code(exc), message)
                if not wait_before_retry(deadline, attempt):
                    return None, WriteFailure(error_code(exc), message, retries_exhausted=True)
                attempt += 1


class _SourceReads:
    """One read of the source per item and change time, shared by every target of a batch (threads may share
    it: the first caller reads, the others wait for its answer, failure included)."""

    def __init__(self, read: Callable[[ItemKey, int, Deadline], tuple[Item | None, WriteFailure | None]]) -> None:
        self._read = read
        self._lock = threading.Lock()
        self._answers: dict[tuple[ItemKey, int], Future[tuple[Item | None, WriteFailure | None]]] = {}

    def get(self, key: ItemKey, change_time_us: int, deadline: Deadline) -> tuple[Item | None, WriteFailure | None]:
        with self._lock:
            answer = self._answers.get((key, change_time_us))
            reader = answer is None
            if answer is None:
                answer = self._answers[(key, change_time_us)] = Future()
        if reader:
            try:
                answer.set_result(self._read(key, change_time_us, deadline))
            except BaseException as exc:  # the waiting threads must not hang on an unexpected error
                answer.set_exception(exc)
                raise
        return answer.result()
