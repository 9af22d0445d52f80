"""Repairing one differing item without clobbering a change the replicator makes at the same time.

One-way (no conflict attribute), for each key:

1. read the source and the target item with strongly consistent reads; equal (ignoring metadata): done;
2. write the source's state to the target — PutItem of the source item, or DeleteItem when the source has
   none — on the condition that the target still holds exactly the item read in step 1
   (:func:`~cdk_replication.cli.conditions.unchanged`); a failed condition means the replicator wrote
   meanwhile, so start again at 1;
3. read the source again: if it still equals what was written, the repair is final — any later source
   change is a later stream record that the replicator applies after this write. If it changed, the
   replicator may have applied that change before step 2 and been overwritten, so start again at 1.

After three rounds without a final answer the key is reported as unsettled (exit 1; run verify again).

A replica fed by a Kinesis data stream orders writes by ``<prefix>changedAt`` (the source change time the
replicator stamps) and the replicator writes it only where the stored time is older. The repair writes what
the replicator writes when it settles a tie from the source: the source's item, or a tombstone (the key,
``<prefix>deleted``, an expiry on the target's TTL attribute) when the source has none, stamped with a change
time no later than the source read and ``<prefix>state=settled``, on the condition that the target holds no
later change and no settled write of that time. A late duplicate of a change the repair read is then refused
(its time is not later), while every later change still applies. Written plainly (DeleteItem, or an item
without a change time), a late duplicate of an older change would pass the replicator's condition and bring
older data back for good. The repair takes a replica for Kinesis-fed when the item it read carries
``<prefix>changedAt``, or else when any item among the first :data:`DETECTION_PAGES` pages of a scan of the
target does.

Multi-active (``--conflict-attribute``): the source's current state is sent as the source region's
replicator sends it (:func:`~cdk_replication.cli.redrive.multi_active.send_current_state`): the replicator's
metadata and marker (so the target's replicator skips the write as an echo), its conditional write and its
full order (version, delete-beats-write, greater origin region id, the origin's stream order), so the repair
keeps the same winner as every region and never undoes a newer write. A tombstone in the source is sent as
that delete. Items only in the target are reported, never deleted: they may be new writes in the target's
region that have not reached the source yet.

A transformed replica (one-way only, :mod:`cdk_replication.cli.transforms`): every comparison and write uses
the TRANSFORMED source item at TARGET's key for it (``Repairer.view``): the repair writes the transformed
item, deletes where the source item is gone or no longer passes the filter, and its final re-read compares
transformed states. Where a key attribute is hashed, a TARGET key no scanned source item produces is an
orphan: deleted on the usual condition, and checked again by ``verify`` against a fresh scan of SOURCE.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any

from cdk_replication.cli.conditions import Condition, unchanged
from cdk_replication.cli.errors import error_code, error_message
from cdk_replication.cli.items import (
    Item,
    KeyId,
    canonical_value,
    is_tombstone,
    item_digest,
    key_text,
    to_json_item,
)
from cdk_replication.cli.options import VerifyOptions
# The outcomes of one key's repair live in cli.outcomes (shared with the multi-active resync, which this module
# calls); callers keep importing them from here.
from cdk_replication.cli.outcomes import (
    FAILED,
    KEPT,
    REMAINING,
    REPAIRED,
    SETTLED,
    UNSETTLED,
    WOULD_DELETE,
    WOULD_PUT,
)
from cdk_replication.cli.pacing import Retrier, TokenBucket
from cdk_replication.cli.redrive.multi_active import MultiActiveResync, send_current_state
from cdk_replication.cli.tables import TableHandle
from cdk_replication.cli.transforms import IDENTITY, ReplicaView

#: Name (after the metadata prefix) of the source change time on items of a replica fed by Kinesis.
CHANGED_AT = "changedAt"
#: Rounds of read-write-check per key before it is reported as unsettled.
MAX_ROUNDS = 3
#: Names (after the metadata prefix) the replicator writes on a Kinesis-fed replica: the state written
#: (``settled`` for an item written from a read of the source) and the tombstone flag.
STATE, SETTLED_STATE, DELETED = "state", "settled", "deleted"
#: Pages (up to 1 MB each) of the target scanned, at most once per run, to tell whether the replicator stamps
#: its items with a change time, when the item being repaired does not say.
DETECTION_PAGES = 4
#: How far the change time a repair stamps lies before its source read, in microseconds (1 s): the clocks
#: of this machine and DynamoDB may differ, and a stamp later than the read would refuse a real later change.
CLOCK_SKEW_MARGIN_US = 1_000_000
#: How long a repair's tombstone lives, in seconds: the replicator's default for a Kinesis-fed replica
#: (8 days, above the data stream's retention of up to 7 days plus the maximum record age).
TOMBSTONE_TTL_SECONDS = 8 * 24 * 3600

@dataclass
class RepairReport:
    """Outcome per key of a repair (or dry run)."""

    dry_run: bool
    outcomes: dict[KeyId, str] = field(default_factory=dict)
    reasons: dict[KeyId, str] = field(default_factory=dict)

    @property
    def counts(self) -> Counter[str]:
        return Counter(self.outcomes.values())

    @property
    def remaining(self) -> int:
        """Keys at which the tables may still differ."""
        return sum(1 for o in self.outcomes.values() if o in REMAINING)

    def as_json(self, key_schema: Any) -> dict[str, Any]:
        return {
            "dryRun": self.dry_run,
            "counts": dict(self.counts),
            "items": [
                {"key": to_json_item(key_schema.key_from_id(k)), "outcome": o, "reason": self.reasons.get(k)}
                for k, o in self.outcomes.items()
            ],
        }

    def text_lines(self, key_schema: Any, show: int) -> list[str]:
        counts = ", ".join(f"{name} {n:,}" for name, n in sorted(self.counts.items()))
        lines = [f"{'dry run' if self.dry_run else 'repair'}: {counts or 'nothing to do'}"]
        shown = 0
        for k, outcome in self.outcomes.items():
            if outcome in (REPAIRED, SETTLED):
                continue
            if shown == show:
                lines.append("  ... (--show N, or --json for all)")
                break
            reason = f": {self.reasons[k]}" if k in self.reasons else ""
            lines.append(f"  {outcome} {key_text(key_schema.key_from_id(k))}{reason}")
            shown += 1
        return lines


class Repairer:
    """Consistent re-reads and repairs of single keys (threads may share one instance).

    Args:
        bucket: the rate limit each repair write (PutItem or DeleteItem) takes a token from; default a new
            bucket of ``options.rate`` writes per second. ``backfill`` passes its own, so that its copies and
            its repairs share one ``--rate``.
        view: how TARGET holds SOURCE's items; default :data:`~cdk_replication.cli.transforms.IDENTITY` (as
            they are). With a transform, TARGET is brought to the TRANSFORMED source state: never an
            untransformed value, and an item that no longer passes the filter is deleted.
        source_of: maps a TARGET key (``classify``, ``repair_target``) to SOURCE's key, ``None`` when unknown
            (a hashed key that no scanned source item produced); default: the same key.
    """

    def __init__(self, source: TableHandle, target: TableHandle, options: VerifyOptions, retrier: Retrier,
                 bucket: TokenBucket | None = None, *, kinesis_fed: bool | None = None,
                 view: ReplicaView = IDENTITY, source_of: Callable[[KeyId], KeyId | None] | None = None) -> None:
        self.view = view
        self.source_of: Callable[[KeyId], KeyId | None] = source_of or (lambda key_id: key_id)
        #: TARGET keys of orphans (no known source key) this run deleted: ``verify`` checks them against a
        #: fresh scan of SOURCE, since a hashed key cannot be read back from SOURCE (see ``remove_orphan``).
        self.orphans_removed: set[KeyId] = set()
        self.source = source
        self.target = target
        self.options = options
        self.retrier = retrier
        self.key = source.info.key
        self.bucket = bucket if bucket is not None else TokenBucket(options.rate)
        self._detect_lock = threading.Lock()
        self._kinesis_fed: bool | None = kinesis_fed  # None: found out at most once, when first needed
        self._ttl_lookup: tuple[str | None] | None = None  # (the target's TTL attribute,), once looked up
        self._multi_active: MultiActiveResync | None = None  # the resync's settings, made when first needed

    def _get_timed(self, handle: TableHandle, key: Item) -> tuple[Item | None, int]:
        """A consistent read and the latest change time it surely reflects, in epoch microseconds: the
        earlier of this machine's clock before the request and DynamoDB's ``Date`` of the answer, less the
        skew margin."""
        before_us = int(time.time() * 1e6)
        response = self.retrier.call(handle.client.get_item, TableName=handle.name, Key=key, ConsistentRead=True)
        date = response.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
        read_us = before_us
        if date:
            try:
                read_us = min(read_us, int(parsedate_to_datetime(date).timestamp() * 1e6))
            except (TypeError, ValueError):
                pass  # an unreadable Date: this machine's clock alone
        return response.get("Item"), read_us - CLOCK_SKEW_MARGIN_US

    def _get(self, handle: TableHandle, key: Item) -> Item | None:
        response = self.retrier.call(handle.client.get_item, TableName=handle.name, Key=key, ConsistentRead=True)
        return response.get("Item")

    def _digest(self, item: Item | None) -> bytes | None:
        # A tombstone stands for "no item", so it compares equal to an absent item.
        if is_tombstone(item, self.options.metadata_prefix):
            return None
        return item_digest(item, self.options.metadata_prefix)

    def classify(self, key_id: KeyId) -> tuple[str, list[str]]:
        """``missing``, ``extra``, ``different`` or ``same`` from consistent reads of both tables, with the
        names of the top-level attributes that differ (for ``different``; metadata left out).

        ``key_id`` is TARGET's key; SOURCE's item is read at ``source_of(key_id)`` and transformed (``view``)."""
        source_id = self.source_of(key_id)
        s = None if source_id is None else self.view.item(self._get(self.source, self.key.key_from_id(source_id)))
        t = self._get(self.target, self.key.key_from_id(key_id))
        s_digest, t_digest = self._digest(s), self._digest(t)
        if s_digest == t_digest:
            return "same", []
        if t_digest is None:
            return "missing", []
        if s_digest is None:
            return "extra", []
        assert s is not None and t is not None
        prefix = self.options.metadata_prefix
        names = {n for n in set(s) | set(t) if not (prefix and n.startswith(prefix))}
        differing = [
            n for n in sorted(names)
            if n not in s or n not in t or canonical_value(s[n]) != canonical_value(t[n])
        ]
        return "different", differing

    def repair_all(self, key_ids: list[KeyId], workers: int) -> RepairReport:
        """Repair (or, in a dry run, plan) every TARGET key; errors are recorded per key, never raised."""
        report = RepairReport(dry_run=self.options.dry_run)
        lock = threading.Lock()

        def one(key_id: KeyId) -> None:
            try:
                outcome, reason = self.repair_target(key_id)
            except Exception as exc:  # recorded per key and reported, so one bad item does not stop the rest
                outcome, reason = FAILED, f"{error_code(exc) or type(exc).__name__}: {error_message(exc)}"
            with lock:
                report.outcomes[key_id] = outcome
                if reason:
                    report.reasons[key_id] = reason

        with ThreadPoolExecutor(workers, thread_name_prefix="repair") as pool:
            list(pool.map(one, key_ids))
        return report

    def repair_target(self, key_id: KeyId) -> tuple[str, str | None]:
        """Bring TARGET's key ``key_id`` to the (transformed) source state: :meth:`repair_one` at its source key,
        or, when no source key is known (a hashed key no scanned source item produces), :meth:`remove_orphan`."""
        source_id = self.source_of(key_id)
        if source_id is None:
            return self.remove_orphan(key_id)
        return self.repair_one(source_id)

    def repair_one(self, key_id: KeyId) -> tuple[str, str | None]:
        """Bring SOURCE's key ``key_id`` in the target to the source's (transformed) state; returns
        ``(outcome, reason)``. TARGET is read and written at ``view.key`` of the key."""
        key = self.key.key_from_id(key_id)
        target_key = self.view.key(key)
        wrote = False
        for _ in range(MAX_ROUNDS):
            (s, read_us), t = self._get_timed(self.source, key), self._get(self.target, target_key)
            # What TARGET must hold: the source item transformed (None: absent, or filtered out).
            want = self.view.item(s)
            if self._digest(want) == self._digest(t):
                return (REPAIRED if wrote else SETTLED), None
            if self.options.conflict is not None:
                return self._repair_last_writer_wins(key)
            if self.options.dry_run:
                return (WOULD_DELETE if want is None else WOULD_PUT), None
            if not self._write(target_key, t, want, read_us):
                continue  # the target changed after our read: look again
            wrote = True
            # Compared transformed: a source change the transform hides leaves the replicator's write equal to ours.
            if self._digest(self.view.item(self._get(self.source, key))) == self._digest(want):
                return REPAIRED, None
        return UNSETTLED, f"still changing after {MAX_ROUNDS} rounds; run verify again"

    def _write(self, target_key: Item, seen: Item | None, want: Item | None, read_us: int) -> bool:
        """Write ``want`` (``None``: delete) at ``target_key`` on the condition that TARGET still holds ``seen``
        (a Kinesis-fed replica: the replicator's settled write); ``False`` when the condition failed."""
        if self._is_kinesis_fed(seen):
            item, condition = self._settled_write(target_key, want, read_us)
        else:
            item, condition = None, unchanged(
                self.key.partition_key, seen, also_absent=want, metadata_prefix=self.options.metadata_prefix
            )
        self.bucket.acquire()
        try:
            if item is None and want is None:
                self.retrier.call(self.target.client.delete_item, TableName=self.target.name, Key=target_key,
                                  **condition.request_args())
            else:
                put = item if item is not None else self._with_change_time(want or {}, seen)
                self.retrier.call(self.target.client.put_item, TableName=self.target.name, Item=put,
                                  **condition.request_args())
        except Exception as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def remove_orphan(self, key_id: KeyId) -> tuple[str, str | None]:
        """Delete TARGET's item at ``key_id``, which no source item produced when SOURCE was scanned.

        Only reached for a transform that hashes a key attribute: TARGET's key then cannot be read back from
        SOURCE, so the repair's re-read of SOURCE cannot run. An item created in SOURCE after its scan and
        replicated before this delete would be deleted wrongly; ``verify`` therefore scans SOURCE again after
        its repairs and restores any such key (:attr:`orphans_removed`)."""
        target_key = self.key.key_from_id(key_id)
        for _ in range(MAX_ROUNDS):
            t = self._get(self.target, target_key)
            if self._digest(t) is None:
                return (REPAIRED if key_id in self.orphans_removed else SETTLED), None
            if self.options.dry_run:
                return WOULD_DELETE, None
            if self._write(target_key, t, None, int(time.time() * 1e6) - CLOCK_SKEW_MARGIN_US):
                with self._detect_lock:
                    self.orphans_removed.add(key_id)
        return UNSETTLED, f"still changing after {MAX_ROUNDS} rounds; run verify again"

    def _with_change_time(self, source_item: Item, target_item: Item | None) -> Item:
        """``source_item`` carrying the target's ``<prefix>changedAt``, if the target has one. Only reached
        for a replica taken as not Kinesis-fed, whose items carry none: kept as a safety net."""
        prefix = self.options.metadata_prefix
        name = prefix + CHANGED_AT
        if not prefix or target_item is None or name not in target_item:
            return source_item
        return {**source_item, name: target_item[name]}

    # --- Kinesis-fed replicas -------------------------------------------------------------------------------

    def _is_kinesis_fed(self, target_item: Item | None) -> bool:
        """Whether the replicator stamps the target with change times (it is fed by a Kinesis data stream):
        the item read says so, or else a bounded scan of the target, made once per run."""
        prefix = self.options.metadata_prefix
        if not prefix:
            return False  # no metadata prefix: the replicator's attributes cannot be named
        if target_item is not None and prefix + CHANGED_AT in target_item:
            return True
        with self._detect_lock:
            if self._kinesis_fed is None:
                self._kinesis_fed = self._target_carries_change_times()
            return self._kinesis_fed

    def _target_carries_change_times(self) -> bool:
        name = self.options.metadata_prefix + CHANGED_AT
        request: dict[str, Any] = {
            "TableName": self.target.name,
            "FilterExpression": "attribute_exists(#c)",
            "ProjectionExpression": "#c",
            "ExpressionAttributeNames": {"#c": name},
        }
        for _ in range(DETECTION_PAGES):
            page = self.retrier.call(self.target.client.scan, **request)
            if page.get("Items"):
                return True
            if "LastEvaluatedKey" not in page:
                return False
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return False

    def _target_ttl_attribute(self) -> str | None:
        """The target's TTL attribute, on which the replicator's tombstones expire, looked up once (``None``:
        TTL is off, and a repair's tombstone stays until the item is written again)."""
        with self._detect_lock:
            if self._ttl_lookup is None:
                description = self.retrier.call(
                    self.target.client.describe_time_to_live, TableName=self.target.name
                )
                ttl = description.get("TimeToLiveDescription", {})
                enabled = ttl.get("TimeToLiveStatus") in ("ENABLED", "ENABLING")
                self._ttl_lookup = (ttl.get("AttributeName") if enabled else None,)
            return self._ttl_lookup[0]

    def _settled_write(self, key: Item, source_item: Item | None, read_us: int) -> tuple[Item, Condition]:
        """What the replicator's settle writes (lambda_src/replicator/ordered_one_way.py): the source's item
        or a tombstone, stamped ``read_us`` and ``settled``, unless the target holds a later change or a
        settled one of that time."""
        prefix = self.options.metadata_prefix
        if source_item is None:
            item: Item = dict(key)  # only the key: a tombstone must not keep the deleted data
            item[prefix + DELETED] = {"BOOL": True}
            ttl_attribute = self._target_ttl_attribute()
            if ttl_attribute:
                item[ttl_attribute] = {"N": str(int(time.time()) + TOMBSTONE_TTL_SECONDS)}
        else:
            item = dict(source_item)
        item[prefix + CHANGED_AT] = {"N": str(read_us)}
        item[prefix + STATE] = {"S": SETTLED_STATE}
        condition = Condition(
            "attribute_not_exists(#t) OR #t < :t OR (#t = :t AND (attribute_not_exists(#s) OR #s <> :s))",
            {"#t": prefix + CHANGED_AT, "#s": prefix + STATE},
            {":t": {"N": str(read_us)}, ":s": {"S": SETTLED_STATE}},
        )
        return item, condition

    def _repair_last_writer_wins(self, key: Item) -> tuple[str, str | None]:
        """Send SOURCE's current state of ``key`` as SOURCE's replicator would (module docstring)."""
        with self._detect_lock:
            if self._multi_active is None:
                conflict = self.options.conflict
                assert conflict is not None
                self._multi_active = MultiActiveResync(
                    conflict, self.retrier, self.options.metadata_prefix, dry_run=self.options.dry_run,
                    bucket=self.bucket,
                )
        return send_current_state(self.source, self.target, key, self._multi_active)
