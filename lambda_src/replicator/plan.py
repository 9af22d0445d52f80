"""The per-item plan a replication mode makes from one batch, and how its outcome maps to records."""

from __future__ import annotations

from dataclasses import dataclass, field

from .attributes import ItemKey
from .config import TableRef
from .operations import Write, WriteFailure
from .records import Change


@dataclass(frozen=True)
class Blocked:
    """A record that cannot be applied before any write is tried (for example a missing conflict attribute).
    It and every later record of the same item wait for the next delivery."""

    change: Change
    code: str
    message: str


@dataclass
class ItemPlan:
    """What to write for one item of the batch.

    Attributes:
        key: the item.
        changes: the item's records in stream order.
        writes: per target, the one operation that brings it to the item's last state (coalesced).
        covers_from: batch index of the first record the writes stand for; if a write fails, that record is the
            first one of this item not applied.
        blocked: the record at which planning stopped, if any (later records are not planned).
        skipped: records that need no write (for example echoes of the replicator's own writes).
    """

    key: ItemKey
    changes: list[Change]
    writes: dict[TableRef, Write] = field(default_factory=dict)
    covers_from: int | None = None
    blocked: Blocked | None = None
    skipped: list[Change] = field(default_factory=list)


@dataclass(frozen=True)
class TargetFailure:
    """A write of one item to one target that failed."""

    target: TableRef
    failure: WriteFailure
