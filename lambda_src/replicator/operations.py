"""What the replicator writes to one table for one item, and how a write failed."""

from __future__ import annotations

from dataclasses import dataclass, field

from .attributes import Item, ItemKey
from .metadata import State


@dataclass(frozen=True)
class Put:
    """Replace the whole item with ``item`` (which includes the key)."""

    key: ItemKey
    item: Item = field(repr=False)


@dataclass(frozen=True)
class Delete:
    """Delete the item with ``key``."""

    key: ItemKey


#: One-way writes (BatchWriteItem requests).
Operation = Put | Delete


@dataclass(frozen=True)
class PutIfNewer:
    """Write ``state`` (stamped as ``item``) unless the target holds a state that orders after it."""

    key: ItemKey
    state: State
    item: Item = field(repr=False)


@dataclass(frozen=True)
class PutIfUnchanged:
    """Write ``item`` if the table still holds ``expected`` (``None``: the item must be absent).

    ``reason`` is ``Tombstone`` (after a local delete), ``Repair`` (a local write, ``lost``, ordered before
    ``state``) or ``Restamp`` (an application write onto a tombstone kept its delete flag and expiry).
    """

    key: ItemKey
    state: State
    item: Item = field(repr=False)
    expected: Item | None
    reason: str
    lost: State | None = None


@dataclass(frozen=True)
class WriteFailure:
    """A write that was not applied. ``code`` is DynamoDB's error code (or the transport error's name);
    ``retries_exhausted`` says the error was transient but the invocation ran out of time to retry it."""

    code: str
    message: str
    retries_exhausted: bool = False


@dataclass(frozen=True)
class NotSent:
    """A write to one table that failed while it was planned (an item too large for that table's copy, a
    transform whose key could not be read): applying it sends nothing and reports ``failure`` for that table
    only, so the item's other tables are still written."""

    key: ItemKey
    failure: WriteFailure


#: Any write a plan holds for one table.
Write = Put | Delete | PutIfNewer | PutIfUnchanged | NotSent
