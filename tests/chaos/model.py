"""The chaos suite's own statement of the conflict rules: an oracle that never imports the replicator.

Every application write is recorded with the state it produced. The expected final state of an item is the
greatest of those states by the documented order (``lambda_src/replicator/metadata.py``, rules 4 and 5):

1. the conflict attribute (the writer's clock), numerically;
2. on equal values a delete beats a write (a delete is versioned by the value of the item it removed);
3. then the greater origin region id;
4. then, within one region, the later write (one region's writes reach every copy in stream order).

A delete that removed nothing (the item was absent, or already a tombstone) produced no stream record and so
no state. A tombstone stands for "no item" when copies are compared.
"""

from __future__ import annotations

import base64
import decimal
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

#: The replicator's metadata prefix (``REPLICATION_METADATA_PREFIX``, the library default).
PREFIX = "_rep_"
DELETED = PREFIX + "deleted"
ORIGIN = PREFIX + "origin"
MARKER = PREFIX + "marker"
#: The conflict attribute (``REPLICATION_CONFLICT_ATTRIBUTE``, the library default).
CONFLICT = "updatedAt"
KEY = "pk"

#: A canonical, hashable, order-independent form of an item's user attributes.
Canon = tuple[tuple[str, Any], ...]

_EXACT = decimal.Context(prec=80)


def canon_value(value: Mapping[str, Any]) -> Any:
    """One attribute value in a form where equal DynamoDB values are equal Python values.

    Sets are unordered in DynamoDB, so they are sorted; numbers are compared by exact value with every digit
    kept (DynamoDB stores ``1.50`` as ``1.5``; DynamoDB Local normalizes a number set written by PutItem but
    keeps the text an UpdateItem sent, so the text alone would differ between a write and its copies);
    strings and binary are compared byte for byte.
    """
    ((kind, inner),) = value.items()
    if kind == "N":
        return ("N", str(_EXACT.normalize(decimal.Decimal(inner))))
    if kind == "NS":
        return ("NS", tuple(sorted(str(_EXACT.normalize(decimal.Decimal(n))) for n in inner)))
    if kind == "B":
        return ("B", _bytes(inner))
    if kind == "BS":
        return ("BS", tuple(sorted(_bytes(b) for b in inner)))
    if kind == "SS":
        return ("SS", tuple(sorted(inner)))
    if kind == "M":
        return ("M", tuple(sorted((k, canon_value(v)) for k, v in inner.items())))
    if kind == "L":
        return ("L", tuple(canon_value(v) for v in inner))
    return (kind, inner)


def _bytes(value: Any) -> bytes:
    if isinstance(value, dict) and "__b64__" in value:  # as the write log records binary
        return base64.b64decode(value["__b64__"])
    return bytes(value)


def user_attributes(item: Mapping[str, Any]) -> dict[str, Any]:
    """Everything but replication metadata (rule 7)."""
    return {k: v for k, v in item.items() if not k.startswith(PREFIX)}


def canon_item(item: Mapping[str, Any]) -> Canon:
    """The canonical form of an item's user attributes."""
    return tuple(sorted((k, canon_value(v)) for k, v in user_attributes(item).items()))


@dataclass(frozen=True)
class ItemState:
    """One state of one item, as produced by an application write.

    Attributes:
        key: the partition key value.
        user: canonical user attributes (for a delete: the key and the deleted item's conflict value).
        version: the conflict attribute.
        deleted: the state is a delete.
        region: the region whose application made the write.
        seq: global position of the write in the test's program (orders one region's writes).
    """

    key: str
    user: Canon
    version: decimal.Decimal
    deleted: bool
    region: str
    seq: int

    def order(self) -> tuple[decimal.Decimal, bool, str, int]:
        """The documented last-writer-wins order (see the module docstring)."""
        return (self.version, self.deleted, self.region, self.seq)

    def describe(self) -> str:
        kind = "delete" if self.deleted else "write"
        return f"{kind}@{self.version} from {self.region} (#{self.seq})"


def conflict_value(item: Mapping[str, Any]) -> decimal.Decimal:
    return decimal.Decimal(item[CONFLICT]["N"])


@dataclass
class Model:
    """Every application write of one example and the expected outcome."""

    states: list[ItemState] = field(default_factory=list)
    #: Per region, (key, user attributes, deleted, origin) of the states restored there from a backup: its
    #: replicator may send them on although another region's application wrote them.
    restored: dict[str, set[tuple[str, Canon, bool, str | None]]] = field(default_factory=dict)

    def record_write(self, region: str, seq: int, item_after: Mapping[str, Any]) -> ItemState:
        """A put or update that left ``item_after`` (as DynamoDB returned it) in ``region``."""
        state = ItemState(
            item_after[KEY]["S"], canon_item(item_after), conflict_value(item_after), False, region, seq
        )
        self.states.append(state)
        return state

    def record_delete(self, region: str, seq: int, removed: Mapping[str, Any]) -> ItemState:
        """A delete that removed ``removed`` in ``region``: versioned by the removed item's conflict value."""
        tombstone = {KEY: removed[KEY], CONFLICT: removed[CONFLICT]}
        state = ItemState(removed[KEY]["S"], canon_item(tombstone), conflict_value(removed), True, region, seq)
        self.states.append(state)
        return state

    def keys(self) -> set[str]:
        return {s.key for s in self.states}

    def winner(self, key: str) -> ItemState | None:
        """The state every copy must end with, or ``None`` when no write to ``key`` happened."""
        candidates = [s for s in self.states if s.key == key]
        return max(candidates, key=ItemState.order) if candidates else None

    def states_from(self, region: str) -> set[tuple[str, Canon, bool]]:
        """(key, user attributes, deleted) of every state the application of ``region`` produced."""
        return {(s.key, s.user, s.deleted) for s in self.states if s.region == region}

    def all_states(self) -> set[tuple[str, Canon, bool, str]]:
        return {(s.key, s.user, s.deleted, s.region) for s in self.states}
