"""Resync one key from SOURCE's current state to every TARGET: never a replay of a failed record's image.

One-way and Kinesis-fed replicas: ``verify --repair``'s per-key procedure
(:meth:`cdk_replication.cli.repair.Repairer.repair_one`). Multi-active (a conflict attribute): the conflict
rules of :func:`cdk_replication.cli.redrive.multi_active.resync_multi_active`, which also see the key's failed
records in stream order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cdk_replication.cli.conditions import LastWriterWins
from cdk_replication.cli.errors import BadInput, error_code, error_message
from cdk_replication.cli.items import Item, KeyId
from cdk_replication.cli.options import VerifyOptions
from cdk_replication.cli.pacing import Retrier
from cdk_replication.cli.repair import FAILED, KEPT, REPAIRED, SETTLED, Repairer
from cdk_replication.cli.tables import TableHandle
from cdk_replication.cli.transforms import IDENTITY, ReplicaView

#: Outcomes after which a target holds what it should at the key: a record whose keys all end so, in every
#: target, is marked redriven. ``kept`` is the multi-active verdict that the target's version is newer.
SETTLED_OUTCOMES = frozenset({REPAIRED, SETTLED, KEPT})


@dataclass(frozen=True)
class ResyncOptions:
    """Settings of a redrive's resyncs.

    Attributes:
        metadata_prefix: the replicator's metadata prefix (left out of comparisons), default ``_rep_``.
        conflict: multi-active ordering; ``None`` is one-way.
        dry_run: read and report, never write.
        source_region: SOURCE's region (the multi-active resync's region id).
    """

    metadata_prefix: str
    conflict: LastWriterWins | None
    dry_run: bool
    source_region: str


def load_multi_active() -> Any:
    """The multi-active resync module, imported when first needed.

    Raises:
        BadInput: it is not part of this installation.
    """
    try:
        from cdk_replication.cli.redrive import multi_active
    except ImportError as exc:
        raise BadInput(f"--conflict-attribute needs the multi-active resync (cdk_replication.cli.redrive."
                       f"multi_active), which this installation lacks ({exc}); nothing was written") from None
    return multi_active


class KeyResyncer:
    """Resyncs keys of SOURCE into each TARGET (threads may share one instance).

    Args:
        views: per TARGET (in order), how it holds SOURCE's items; default: each as they are. A transformed
            TARGET is resynced to the transformed source state (its key hashed where a key attribute is masked).
    """

    def __init__(self, source: TableHandle, targets: list[TableHandle], options: ResyncOptions,
                 retrier: Retrier, views: list[ReplicaView] | None = None) -> None:
        views = views or [IDENTITY] * len(targets)
        self.source = source
        self.targets = targets
        self.options = options
        self.retrier = retrier
        verify_options = VerifyOptions(metadata_prefix=options.metadata_prefix, repair=True,
                                       dry_run=options.dry_run, max_attempts=retrier.max_attempts)
        self._repairers = [Repairer(source, target, verify_options, retrier, view=view)
                           for target, view in zip(targets, views)]
        # A key named by a Kinesis batch is repaired as the replicator writes a Kinesis-fed replica (stamped with
        # a change time, a delete as a tombstone) whatever the target holds: an empty or backfilled replica
        # carries no change time to detect, and an unstamped item lets a late duplicate record bring older data
        # back (rule 6).
        self._kinesis_repairers = [Repairer(source, target, verify_options, retrier, kinesis_fed=True, view=view)
                                   for target, view in zip(targets, views)]
        self._multi_active: Any = None
        self._multi_active_options: Any = None
        if options.conflict is not None:
            self._multi_active = load_multi_active()
            self._multi_active_options = self._multi_active.MultiActiveResync(
                conflict=options.conflict, metadata_prefix=options.metadata_prefix, dry_run=options.dry_run,
                retrier=retrier, source_region=options.source_region,
            )

    def resync(self, key_id: KeyId, key: Item, records: list[dict[str, Any]],
               kinesis: bool = False) -> list[tuple[str, str | None]]:
        """``(outcome, reason)`` per target, in the order of ``targets``; an error is a ``failed`` outcome.
        ``kinesis``: the key was named by a Kinesis batch, so the targets are Kinesis-fed (default: detect)."""
        return [self._one(index, key_id, key, records, kinesis) for index in range(len(self.targets))]

    def _one(self, index: int, key_id: KeyId, key: Item, records: list[dict[str, Any]],
             kinesis: bool) -> tuple[str, str | None]:
        try:
            if self._multi_active is None:
                return (self._kinesis_repairers if kinesis else self._repairers)[index].repair_one(key_id)
            return self._multi_active.resync_multi_active(
                self.source, self.targets[index], key, records, self._multi_active_options
            )
        except Exception as exc:  # recorded per key, so one bad item does not stop the rest
            return FAILED, f"{error_code(exc) or type(exc).__name__}: {error_message(exc)}"
