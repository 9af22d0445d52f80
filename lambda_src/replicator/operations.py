"""What the replicator writes to one target: the last state of one item, and how a write failed."""

from __future__ import annotations

from dataclasses import dataclass, field

from .attributes import Item, ItemKey


@dataclass(frozen=True)
class Put:
    """Replace the whole item with ``item`` (which includes the key)."""

    key: ItemKey
    item: Item = field(repr=False)


@dataclass(frozen=True)
class Delete:
    """Delete the item with ``key``."""

    key: ItemKey


Operation = Put | Delete


@dataclass(frozen=True)
class WriteFailure:
    """A write that was not applied. ``code`` is DynamoDB's error code (or the transport error's name);
    ``retries_exhausted`` says the error was transient but the invocation ran out of time to retry it."""

    code: str
    message: str
    retries_exhausted: bool = False
