"""Multi-active resync of one key for ``cdk-replication redrive`` and ``verify --repair``: the target gets the
source's CURRENT state, written exactly as the source region's replicator writes it.

A failed record is never replayed: weeks may have passed (an S3 failure destination keeps it 30 days), and an
old write replayed after its key's tombstones expired (2 lifetimes, 98 h by default) would bring back an item
deleted since. Instead the key's state in the source table now decides (docs/conflicts.md has the rules):

* the source holds a live item: it is sent as the replicator sends a write (:func:`put_if_newer` of the
  replicator's own code: the same metadata and marker, the same condition and the same full order --
  version, then delete-beats-write, then origin region, then the origin's stream order). Its place in the
  order (origin, stream sequence, write time) comes from:

  - the key's last failed record, when that record wrote exactly the item the source holds: the replicator's
    own plan of that record (an application write, a restored backup, ...);
  - the item's marker, when the replicator wrote it there (a write of a third region that arrived by
    replication, or a winner the replicator put back): sent with its own origin, sequence and time, as that
    region's replicator sent it, so the target orders it as every other region does (a target that has it
    already answers ``AlreadyApplied``; one that missed it gets it);
  - otherwise it is an application write made after the failed records, whose own stream record carries its
    exact place: it is sent placed just after the last failed record (a lower bound of its stream sequence
    and time), so its own record, if it is still to come, replaces it with the exact metadata and never
    loses to it, and a copy the target already holds from that record is kept;

* the source holds a tombstone: that delete is sent (its version, origin and logical expiry from its marker);
* the source holds nothing: if the last failed record is a REMOVE, the replicator's versioned delete of it
  (a tombstone with the removed item's conflict value; the removed tombstone's own delete when the REMOVE
  was its TTL removal); if it is a write, the item was deleted after it by a delete whose version is not
  known here and whose own stream record decides: nothing is written (``KEPT``).

The write the target's replicator then reads from its stream carries a fresh marker that matches its content,
so it is skipped as an echo and never sent back (rule 3).

Without failed records (:func:`send_current_state`, for ``verify --repair --conflict-attribute``) the same
rules apply, except where only a record could tell:

* an application write of the source region that the replicator never stamped: its own stream record (in
  flight, or lost) would place it by its sequence and time, neither known here. Its sequence has a lower
  bound: every state of the source region the target holds came from an earlier write of the source (the
  target is read before the source), so it is placed just after that state, and at 0 when the target holds
  none (there the origin region decides first). It then beats the target's older copy as its record would,
  while every later write of the source, and the record itself, order after it. No write time is sent (the
  source region sees its own item the same way): a tombstone whose logical expiry has passed is compared by
  version, never taken as absent, so the repair may keep it where the record would not (the record, if it
  comes, decides);
* the source holds nothing: nothing is sent (``KEPT`` if the target holds an item): the target's item may be
  a newer write of its region not replicated yet, and a delete of the source whose tombstone is gone cannot
  be versioned without its record (``redrive`` of that record does it). A tombstone in the source is sent
  as above.

An item whose marker matches its content may also be an application write of the source region that set it
back to that content (the source's replicator sends it as its own region's); no record tells. Against a
different live state of the same version in the target, where the two readings decide differently, nothing is
sent (``KEPT``, check by hand).

One more guard, for deletes only: a tombstone whose logical expiry has passed (a delete made a lifetime ago,
49 h by default) is absent for every write made after that expiry. The target's own application writes carry
no time of their own (only writes the replicator stamped do), so over such an item the delete cannot be
ordered and is not sent (``KEPT``, with the reason): it may be a re-create made after the expiry.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, replace
from collections.abc import Callable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from cdk_replication._lambda.replicator import contract
from cdk_replication._lambda.replicator.clients import ClientFactory
from cdk_replication._lambda.replicator.conditional_writer import (
    CONDITION_FAILED,
    MAX_CAS_ROUNDS,
    Outcome,
    conditional_put,
    put_if_newer,
)
from cdk_replication._lambda.replicator.config import Config, ConflictStrategy, KeySchema, Mode, TableRef
from cdk_replication._lambda.replicator.attributes import item_key, key_for_log
from cdk_replication._lambda.replicator.metadata import LATEST, ConflictValueError, MetadataCodec, State, compare
from cdk_replication._lambda.replicator.multi_active import MultiActiveReplication
from cdk_replication._lambda.replicator.operations import PutIfNewer
from cdk_replication._lambda.replicator.records import Change, MalformedRecord, parse_record
from cdk_replication._lambda.replicator.retry import Deadline, is_retryable
from cdk_replication.cli.conditions import LastWriterWins
from cdk_replication.cli.errors import ACCESS_ERROR_CODES, error_code, error_message
from cdk_replication.cli.items import Item, canonical_value
from cdk_replication.cli.pacing import Retrier, TokenBucket
from cdk_replication.cli.outcomes import FAILED, KEPT, REPAIRED, SETTLED, WOULD_DELETE, WOULD_PUT
from cdk_replication.cli.tables import TableHandle

#: The tombstone lifetime the construct gives a multi-active replicator with its default maximum record age
#: of 1 h (``defaults.MAX_RECORD_AGE``, not imported: it needs aws_cdk): 49 hours, in seconds.
DEFAULT_TOMBSTONE_TTL_SECONDS = contract.multi_active_tombstone_ttl_seconds(3600)
#: Seconds the replicator's writer may spend on one key's compare-and-set rounds (it starts no request after).
WRITE_DEADLINE_S = 300.0
#: Longest expression (in characters) a condition on every attribute of an item may take; DynamoDB allows 4 KB.
MAX_CONDITION_CHARS = 4000

_LOGGER = logging.getLogger("cdk_replication.redrive")
_TTL_NAMES: dict[str, str] = {}  # "region|table ARN" -> the TTL attribute its tombstones expire on
_TTL_LOCK = threading.Lock()


@dataclass(frozen=True)
class MultiActiveResync:
    """How to resync multi-active keys (one instance serves every key of a run).

    Attributes:
        conflict: the conflict attribute and strategy (``--conflict-attribute``/``--conflict-strategy``).
        retrier: retries throttled and transient requests (reads and writes).
        metadata_prefix: the replicator's metadata prefix; default ``_rep_``.
        dry_run: decide and report ``WOULD_PUT``/``WOULD_DELETE``/``KEPT`` without writing; default off.
        source_region: the source's region id as its replicator names it (the origin of its writes, the
            tie-breaker); default the region the source table was reached in.
        tombstone_ttl_seconds: the replicators' tombstone lifetime (``REPLICATION_TOMBSTONE_TTL_SECONDS``), in
            seconds; used only for a delete known from a REMOVE record alone; default 49 h, the construct's.
        ttl_attribute: the attribute tombstones expire on (``REPLICATION_TTL_ATTRIBUTE``), in both tables;
            default each table's own TTL attribute when its TTL is on, else ``<prefix>expiresAt`` (the source's
            to read its items, the target's to read and write the target's).
        bucket: the rate limit every write request takes a token from (``verify --repair --rate``); default
            none (unlimited).
    """

    conflict: LastWriterWins
    retrier: Retrier
    metadata_prefix: str = contract.DEFAULT_METADATA_PREFIX
    dry_run: bool = False
    source_region: str | None = None
    tombstone_ttl_seconds: int = DEFAULT_TOMBSTONE_TTL_SECONDS
    ttl_attribute: str | None = None
    bucket: TokenBucket | None = None


@dataclass(frozen=True)
class _Decision:
    """What the target must hold at least (``state``), or why nothing is sent (``outcome`` and ``reason``)."""

    state: State | None
    outcome: str | None = None
    reason: str | None = None


class _GaveUp(Exception):
    """The retrier gave up on a transient error; kept apart from ``ClientError`` so that the replicator's writer
    does not retry it once more on its own."""


class _RetryingClient:
    """The target's client as the replicator's writer sees it: ``put_item`` retried through the ``Retrier``."""

    def __init__(self, client: Any, retrier: Retrier, bucket: TokenBucket | None = None) -> None:
        self._client = client
        self._retrier = retrier
        self._bucket = bucket

    def put_item(self, **kwargs: Any) -> Any:
        if self._bucket is not None:
            self._bucket.acquire()
        try:
            return self._retrier.call(self._client.put_item, **kwargs)
        except (ClientError, BotoCoreError) as exc:
            if error_code(exc) != CONDITION_FAILED and is_retryable(exc):
                raise _GaveUp(f"{error_code(exc) or type(exc).__name__}: {error_message(exc)}") from exc
            raise


def resync_multi_active(
    source: TableHandle,
    target: TableHandle,
    key: Item,
    failed_records: list[dict[str, Any]],
    options: MultiActiveResync,
) -> tuple[str, str | None]:
    """Bring ``target``'s item at ``key`` to ``source``'s current state under the conflict rules.

    Args:
        key: the item key in DynamoDB JSON (low-level client form).
        failed_records: the key's failed stream records in stream order, in Lambda's DynamoDB Streams
            event-record shape; never empty.

    Returns:
        ``(outcome, reason)``: ``REPAIRED`` (written), ``SETTLED`` (the target holds exactly this state),
        ``KEPT`` (the target holds a state that orders after it, or nothing is to be sent; the reason says
        which), ``WOULD_PUT``/``WOULD_DELETE`` (dry run) or ``FAILED`` (the reason names the error).
    """
    def resync() -> tuple[str, str | None]:
        one = _Resync(source, target, options)
        return one.run(key, one.parse(failed_records))

    return _guarded(resync)


def send_current_state(
    source: TableHandle, target: TableHandle, key: Item, options: MultiActiveResync
) -> tuple[str, str | None]:
    """Send ``source``'s current state of ``key`` to ``target`` as ``source``'s replicator would, with no stream
    record at hand (``verify --repair --conflict-attribute``).

    As :func:`resync_multi_active`, except where only a record could tell (module docstring): an application
    write of the source region that the replicator never stamped is placed just after the target's copy of
    the source region's previous write (the greatest known lower bound of its stream sequence), with no write
    time; and a source without the item sends nothing (``KEPT``: the target's item may be a newer write of
    its own region, not yet replicated; only a tombstone held by the source deletes).

    Returns:
        ``(outcome, reason)`` as :func:`resync_multi_active`.
    """
    return _guarded(lambda: _Resync(source, target, options).run(key, None))


def _guarded(resync: Callable[[], tuple[str, str | None]]) -> tuple[str, str | None]:
    """``resync()``, with the errors one key can meet turned into ``FAILED`` and the reason."""
    try:
        return resync()
    except ConflictValueError as exc:
        return FAILED, f"source item: {exc.code}: {exc}"
    except MalformedRecord as exc:
        return FAILED, f"failed record: {exc}"
    except _GaveUp as exc:
        return FAILED, str(exc)
    except (ClientError, BotoCoreError) as exc:
        return FAILED, f"{error_code(exc) or type(exc).__name__}: {error_message(exc)}"


def _account_of(handle: TableHandle) -> str:
    return handle.info.arn.split(":")[4]


def _same_item(a: Item, b: Item | None) -> bool:
    """Equal names and values (sets as sets, numbers by value, binary by bytes), metadata included."""
    if b is None or set(a) != set(b):
        return False
    return all(canonical_value(a[name]) == canonical_value(b[name]) for name in a)


def _ttl_attribute(target: TableHandle, options: MultiActiveResync) -> str:
    """The attribute the tombstones of table ``target`` expire on (see :attr:`MultiActiveResync.ttl_attribute`),
    looked up once per table and run."""
    if options.ttl_attribute:
        return options.ttl_attribute
    default = contract.default_ttl_attribute(options.metadata_prefix)
    table = f"{target.info.region}|{target.info.arn}"  # emulators may report one region in every ARN
    with _TTL_LOCK:
        if table not in _TTL_NAMES:
            try:
                answer = options.retrier.call(target.client.describe_time_to_live, TableName=target.name)
            except ClientError as exc:
                if error_code(exc) not in ACCESS_ERROR_CODES:
                    raise
                answer = {}  # not allowed to look: the construct's default
            ttl = answer.get("TimeToLiveDescription", {})
            enabled = ttl.get("TimeToLiveStatus") in ("ENABLED", "ENABLING") and ttl.get("AttributeName")
            _TTL_NAMES[table] = ttl["AttributeName"] if enabled else default
        return _TTL_NAMES[table]


class _Resync:
    """One key's resync: the replicator's codec and planner configured as the source region's replicator."""

    def __init__(self, source: TableHandle, target: TableHandle, options: MultiActiveResync) -> None:
        self.source, self.target, self.options = source, target, options
        self.region = options.source_region or source.info.region
        self.target_ref = TableRef(target.name, target.info.region, _account_of(target))
        key = source.info.key
        self.config = Config(
            mode=Mode.MULTI_ACTIVE,
            source=TableRef(source.name, self.region, _account_of(source)),
            targets=(self.target_ref,),
            key=KeySchema(key.partition_key, key.sort_key),
            metadata_prefix=options.metadata_prefix,
            conflict_attribute=options.conflict.attribute,
            conflict_strategy=ConflictStrategy(options.conflict.strategy),
            tombstone_ttl_seconds=options.tombstone_ttl_seconds,
            ttl_attribute=_ttl_attribute(source, options),
        )
        # Two readings of the same metadata, each with its own table's TTL attribute (a tombstone's user
        # attributes leave it out, so read with the other table's, a source tombstone no longer matches its
        # marker and would be sent as a live write): ``codec`` for the source's items and records, as its
        # replicator reads them; ``target_codec`` for the target's items and the item written there.
        self.codec = MetadataCodec(self.config)
        self.target_codec = MetadataCodec(replace(self.config, ttl_attribute=_ttl_attribute(target, options)))
        # Plans only (its clients are never used): the source replicator's own reading of a record.
        self.replication = MultiActiveReplication(self.config, ClientFactory(1, "cdk-replication-redrive"), _LOGGER)

    def parse(self, failed_records: list[dict[str, Any]]) -> Change:
        """The key's last failed record, as the replicator reads it."""
        if not failed_records:
            raise MalformedRecord("no failed record for the key")
        parsed = parse_record(len(failed_records) - 1, failed_records[-1], self.config.key)
        if not isinstance(parsed, Change):
            raise MalformedRecord("the last record's keys are not the table's key")
        return parsed

    def read(self, handle: TableHandle, key: Item) -> Item | None:
        response = self.options.retrier.call(handle.client.get_item, TableName=handle.name, Key=key,
                                             ConsistentRead=True)
        return response.get("Item")

    def run(self, key: Item, last: Change | None) -> tuple[str, str | None]:
        """Decide from both tables' items and send (``last``: the key's last failed record, if any).

        The target is read first: every state of the source region it holds then came from a write at or
        before the source item read next, which :meth:`_unordered_write` relies on."""
        held = self.read(self.target, key)
        decision = self.decide(self.read(self.source, key), last, held)
        if decision.state is None:
            assert decision.outcome is not None
            return decision.outcome, decision.reason
        return self.send(key, held, decision)

    # --- deciding ---------------------------------------------------------------------------------------

    def decide(self, current: Item | None, last: Change | None, held: Item | None) -> _Decision:
        """The state the target must hold at least, from the source's ``current`` item (module docstring);
        ``held`` is the target's item."""
        codec = self.codec
        if current is not None and codec.is_tombstone(current):
            return _Decision(codec.state_of(current, self.region), reason="the source's tombstone")
        if current is None:
            if last is None:
                return self._only_in_target(held)
            if last.is_remove:
                return self._as_replicator_sends(last, None)
            return _Decision(None, KEPT, "deleted in the source after the failed write; that delete's own stream "
                             "record carries its version and decides (nothing is replayed)")
        codec.version_of(current)  # ConflictValueError: the item cannot be ordered (FAILED)
        if last is not None and not last.is_remove and _same_item(current, last.new_image):
            return self._as_replicator_sends(last, current)
        if codec.stamped_by_replicator(current):
            state = codec.state_of(current, self.region)
            return self._stamped_write(current, state, held)
        if last is None:
            return _Decision(self._unordered_write(current, held), reason="a write made in the source region")
        return _Decision(self._later_write(current, last), reason="a write made after the failed records")

    def _stamped_write(self, current: Item, state: State, held: Item | None) -> _Decision:
        """The source's item matches the marker of a write made in ``state.origin``: that write, arrived by
        replication -- or an application write of the source region that set the item back to that content
        without touching the marker, which the source's replicator sends as its own region's (docs/conflicts.md,
        "How the replicator avoids sending its own writes back"). Only the stream record tells them apart. The
        two differ in origin (and stream place) alone, which matters only against a different state of the same
        version: there no choice is safe, and nothing is sent (``KEPT``, check by hand)."""
        other = None if held is None else self.target_codec.state_of(held, self.target_ref.region, LATEST)
        if (
            state.origin == self.region
            or other is None
            or other.deleted
            or other.version != state.version
            or other.same_content(state)
        ):
            return _Decision(state, reason=f"the source's copy of a write made in {state.origin}")
        key = json.dumps(key_for_log(item_key(current, self.config.key.names)), sort_keys=True)
        return _Decision(None, KEPT, (
            f"key {key}: the source's item carries the marker of a write made in {state.origin}, but may be an "
            f"application write of {self.region} that set it back to that content (no stream record tells them "
            f"apart), and the target holds another state of the same version ({_describe(other)}), which one of "
            "the two beats and the other does not: check the item by hand (docs/conflicts.md, Repairs without a "
            "stream record)"
        ))

    def _only_in_target(self, held: Item | None) -> _Decision:
        """The source holds nothing and no record says why: whatever the target holds stays."""
        if held is None or self.target_codec.is_tombstone(held):
            return _Decision(None, SETTLED)
        return _Decision(None, KEPT, "only in the target (multi-active: may be a newer write there, or a delete "
                         "in the source whose tombstone is gone; not deleted)")

    def _as_replicator_sends(self, last: Change, current: Item | None) -> _Decision:
        """What the source's replicator sends for ``last``, which produced the source's current state."""
        plan = self.replication.plan(last.key, [last])
        if plan.blocked is not None:
            return _Decision(None, FAILED, f"source item: {plan.blocked.code}: {plan.blocked.message}")
        op = plan.writes.get(self.target_ref)
        if isinstance(op, PutIfNewer):
            return _Decision(op.state)
        codec = self.codec
        if last.is_remove and codec.is_tombstone(last.old_image):
            # The TTL removed the source's tombstone: the delete it stood for, which may never have arrived.
            assert last.old_image is not None
            return _Decision(codec.state_of(last.old_image, self.region), reason="the delete of a removed tombstone")
        if last.is_remove:
            return _Decision(None, KEPT, "a TTL delete of an item without a conflict value: not replicated")
        if current is not None and codec.stamped_by_replicator(current):
            state = codec.state_of(current, self.region)  # a write of another region, replicated here
            return _Decision(state, reason=f"the source's copy of a write made in {state.origin}")
        # Its replicator's put-back of the winner went with the failed record, so it may never have happened.
        target, source = self.target.info, self.source.info
        return _Decision(None, KEPT, (
            "the source's item lost to the version it replaced: nothing to send. If the source still holds it "
            f"(its replicator's put-back of the winner failed with the record), run verify --repair from "
            f"{self.target_ref.region} to {self.region} (cdk-replication verify {target.arn} {source.arn} --repair "
            f"--conflict-attribute {self.options.conflict.attribute}) to put the winner back"
        ))

    def _later_write(self, current: Item, last: Change) -> State:
        """An application write of the source region made after ``last``, placed just after it: the lower bound
        of its stream sequence and time (its own record carries the exact ones)."""
        written = None if last.created_at is None else int(last.created_at)
        return State(
            self.codec.user_attributes(current),
            self.codec.version_of(current),
            False,
            self.region,
            int(last.sequence_number) + 1,
            written=written,
        )

    def _unordered_write(self, current: Item, held: Item | None) -> State:
        """An application write of the source region with no stream record at hand: its own record (in flight,
        or lost) carries its sequence, which only has a lower bound here. Every other state of the source
        region that the target holds came from an earlier write of the source (the target was read first),
        so the write is placed just after it: it beats that state as its record would, and any later write of
        the source (a greater sequence) still beats it. Write time: unknown (``None``), as the source region
        itself sees the item; an expired tombstone is then compared by version, never taken as absent."""
        sequence = 0
        if held is not None and self.target_codec.stamped_by_replicator(held):
            previous = self.target_codec.state_of(held, self.target_ref.region)
            if previous.origin == self.region:
                same = previous.same_content(self.codec.state_of(current, self.region))
                sequence = previous.sequence if same and not previous.deleted else previous.sequence + 1
        return State(self.codec.user_attributes(current), self.codec.version_of(current), False, self.region,
                     sequence)

    # --- writing ----------------------------------------------------------------------------------------

    def _judge(self, stored: Item | None, state: State) -> tuple[str, str | None] | None:
        """The outcome without a write when the target's ``stored`` item already decides; ``None``: write."""
        if stored is None:
            return None
        held = self.target_codec.state_of(stored, self.target_ref.region, LATEST)
        order = compare(held, state)
        if order > 0:
            return KEPT, f"the target holds a state that orders after the source's ({_describe(held)})"
        if order == 0 and held.same_content(state):
            return SETTLED, None
        if _expired(state) and not held.deleted and held.written is None:
            return KEPT, (
                f"the delete expired logically at {state.expires} (epoch s) and the target holds an application "
                "write of its own region whose time is unknown: it may be a re-create made after that expiry, "
                "which the delete must not remove; check the item by hand"
            )
        return None

    def send(self, key: Item, held: Item | None, decision: _Decision) -> tuple[str, str | None]:
        """Write ``decision.state`` to the target as the replicator writes it (dry run: say what it would do);
        ``held``: the target's item as read before the decision (the write itself is a compare-and-set)."""
        state = decision.state
        assert state is not None
        verdict = self._judge(held, state)
        if verdict is not None:
            return verdict
        if self.options.dry_run:
            return (WOULD_DELETE if state.deleted else WOULD_PUT), decision.reason
        op = PutIfNewer(item_key(key, self.config.key.names), state, self.target_codec.stamp(state))
        client = _RetryingClient(self.target.client, self.options.retrier, self.options.bucket)
        deadline = Deadline(time.monotonic() + WRITE_DEADLINE_S)
        if _expired(state):
            return self._put_over_judged(client, op, held, deadline, decision.reason)
        return _result(put_if_newer(client, self.target_ref, op, self.target_codec, deadline), decision.reason)

    def _put_over_judged(
        self, client: _RetryingClient, op: PutIfNewer, held: Item | None, deadline: Deadline, reason: str | None
    ) -> tuple[str, str | None]:
        """Write an expired delete only while the target still holds ``held``, the item :meth:`_judge` let it
        replace. :func:`put_if_newer` would not do: its condition (``#c < :v``, then the full order) takes an
        application write the target's region makes meanwhile, whose time is unknown, for older than the delete,
        yet it may be a re-create made after the expiry, which every region keeps (rule 5). Whatever landed
        instead is judged again (``KEPT`` with the reason, for such a write)."""
        for _ in range(MAX_CAS_ROUNDS):
            condition = _still_holds(self.config.key.names[0], held, self.target_codec)
            written, stored, failure = conditional_put(client, self.target_ref, op.item, condition, deadline)
            if written:
                return REPAIRED, reason
            if failure is not None:
                return FAILED, f"{failure.code}: {failure.message}"
            verdict = self._judge(stored, op.state)
            if verdict is not None:
                return verdict
            held = stored
        return FAILED, f"ConcurrentUpdates: the item changed during {MAX_CAS_ROUNDS} compare-and-set rounds"


def _expired(state: State) -> bool:
    """``state`` is a delete whose logical expiry has passed, or passes before a write started now can land
    (within :data:`WRITE_DEADLINE_S`): a write made after it finds the tombstone absent."""
    return state.deleted and state.expires is not None and state.expires <= time.time() + WRITE_DEADLINE_S


def _still_holds(
    key_name: str, stored: Item | None, codec: MetadataCodec
) -> tuple[str, dict[str, str], dict[str, Any]]:
    """A condition that holds only while the table holds exactly ``stored`` (``None``: nothing), as
    :func:`conditional_put` takes it: every attribute equal (an attribute added meanwhile goes unseen; every
    application write changes or drops one: its conflict value, its marker or a user attribute). An item too
    large to name every attribute within :data:`MAX_CONDITION_CHARS` is checked as the replicator checks it:
    its conflict attribute, marker and origin."""
    names = {"#k": key_name}
    if stored is None:
        return "attribute_not_exists(#k)", names, {}
    attributes = sorted(stored)
    if len(attributes) * len(" AND #a000 = :a000") > MAX_CONDITION_CHARS:
        attributes = [a for a in (codec.conflict_attr, codec.marker_attr, codec.origin_attr) if a in stored]
    parts = ["attribute_exists(#k)"]
    values: dict[str, Any] = {}
    for index, name in enumerate(attributes):
        names[f"#a{index}"] = name
        values[f":a{index}"] = stored[name]
        parts.append(f"#a{index} = :a{index}")
    return " AND ".join(parts), names, values


def _describe(state: State) -> str:
    kind = "delete" if state.deleted else "write"
    return f"{kind} of version {state.version} from {state.origin}"


def _result(outcome: Outcome, reason: str | None) -> tuple[str, str | None]:
    if outcome.failure is not None:
        return FAILED, f"{outcome.failure.code}: {outcome.failure.message}"
    if outcome.written:
        return REPAIRED, reason
    if outcome.conflict == "AlreadyApplied":
        return SETTLED, None
    held = f" ({_describe(outcome.stored)})" if outcome.stored is not None else ""
    return KEPT, f"the target received a state that orders after the source's during the resync{held}"
