"""Item values in the low-level client's format: canonical digests, keys, and a JSON form for files.

Every value here stays exactly as the DynamoDB client returns it (``{"N": "1.50"}``, ``{"B": b"..."}``):
nothing passes through boto3's TypeDeserializer, so numbers keep all 38 digits and binary stays bytes.
"""

from __future__ import annotations

import base64
import hashlib
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

AttributeValue = dict[str, Any]
Item = dict[str, AttributeValue]

#: A key as a hashable tuple: the partition key value, then the sort key value if the table has one.
#: S and N values are strings (N as DynamoDB returned it), B values are bytes.
KeyId = tuple[Any, ...]

#: Size of an item digest, in bytes. 128 bits keep accidental collisions out of reach for any table size.
DIGEST_BYTES = 16


def canonical_number(text: str) -> str:
    """The exact decimal value of a DynamoDB number as one canonical string (``"1.50"`` -> ``"15e-1"``).

    Built from :class:`~decimal.Decimal`'s digit tuple rather than ``normalize()``, which rounds to the
    context precision (28 digits by default) and would merge distinct 38-digit numbers.
    """
    try:
        sign, digits, exponent = Decimal(text).as_tuple()
    except InvalidOperation:
        raise ValueError(f"not a DynamoDB number: {text!r}") from None
    if not isinstance(exponent, int):
        raise ValueError(f"not a finite number: {text!r}")
    digit_list = list(digits)
    while len(digit_list) > 1 and digit_list[0] == 0:
        digit_list.pop(0)
    if all(d == 0 for d in digit_list):
        return "0"
    while digit_list[-1] == 0:
        digit_list.pop()
        exponent += 1
    return f"{'-' if sign else ''}{''.join(map(str, digit_list))}e{exponent}"


def _frame(tag: bytes, payload: bytes) -> bytes:
    # Length-prefixed frames make the encoding unambiguous: no value can imitate a neighbour's boundary.
    return tag + struct.pack(">I", len(payload)) + payload


def canonical_value(value: Mapping[str, Any]) -> bytes:
    """An unambiguous byte encoding of one attribute value in which equal values encode equally.

    Sets are compared as sets (order and duplicates ignored), numbers by exact decimal value, binary by
    bytes, maps by their keys regardless of order; lists keep their order.
    """
    if len(value) != 1:
        raise ValueError(f"an attribute value has exactly one type key, got {dict(value)!r}")
    ((kind, inner),) = value.items()
    if kind == "S":
        return _frame(b"S", inner.encode("utf-8"))
    if kind == "N":
        return _frame(b"N", canonical_number(inner).encode("ascii"))
    if kind == "B":
        return _frame(b"B", bytes(inner))
    if kind == "BOOL":
        return _frame(b"T" if inner else b"F", b"")
    if kind == "NULL":
        return _frame(b"0", b"")
    if kind == "SS":
        members = sorted({_frame(b"S", s.encode("utf-8")) for s in inner})
        return _frame(b"s", b"".join(members))
    if kind == "NS":
        members = sorted({_frame(b"N", canonical_number(n).encode("ascii")) for n in inner})
        return _frame(b"n", b"".join(members))
    if kind == "BS":
        members = sorted({_frame(b"B", bytes(b)) for b in inner})
        return _frame(b"b", b"".join(members))
    if kind == "L":
        return _frame(b"L", b"".join(canonical_value(v) for v in inner))
    if kind == "M":
        return _frame(b"M", _canonical_map(inner, ""))
    raise ValueError(f"unknown DynamoDB attribute type {kind!r}")


def _canonical_map(attributes: Mapping[str, Mapping[str, Any]], skip_prefix: str) -> bytes:
    parts = []
    for name in sorted(attributes, key=lambda n: n.encode("utf-8")):
        if skip_prefix and name.startswith(skip_prefix):
            continue
        parts.append(_frame(b"k", name.encode("utf-8")) + canonical_value(attributes[name]))
    return b"".join(parts)


def item_digest(item: Mapping[str, Mapping[str, Any]] | None, metadata_prefix: str) -> bytes | None:
    """A 16-byte digest of ``item`` without its top-level metadata attributes; ``None`` for no item.

    Args:
        item: the item as the low-level client returns it, or ``None`` when it does not exist.
        metadata_prefix: attributes whose names start with this are left out; ``""`` leaves out nothing.
    """
    if item is None:
        return None
    return hashlib.blake2b(_canonical_map(item, metadata_prefix), digest_size=DIGEST_BYTES).digest()


#: Name (after the metadata prefix) of the replicator's tombstone flag: a multi-active delete is kept as an
#: item holding its key, the conflict attribute and ``<prefix>deleted``, so that a late older write cannot
#: bring the item back (DESIGN rule 5).
TOMBSTONE_FLAG = "deleted"


def is_tombstone(item: Mapping[str, Any] | None, metadata_prefix: str) -> bool:
    """True for the replicator's multi-active delete markers, which stand for "no item"."""
    return item is not None and bool(metadata_prefix) and (metadata_prefix + TOMBSTONE_FLAG) in item


def without_metadata(item: Item, metadata_prefix: str) -> Item:
    """A copy of ``item`` without the top-level attributes that start with ``metadata_prefix``."""
    if not metadata_prefix:
        return dict(item)
    return {k: v for k, v in item.items() if not k.startswith(metadata_prefix)}


@dataclass(frozen=True)
class KeySchema:
    """A table's primary key: attribute names and their scalar types (``S``, ``N`` or ``B``)."""

    partition_key: str
    partition_type: str
    sort_key: str | None = None
    sort_type: str | None = None

    @property
    def names(self) -> tuple[str, ...]:
        """The key attribute names, partition key first."""
        return (self.partition_key,) if self.sort_key is None else (self.partition_key, self.sort_key)

    def describe(self) -> str:
        """``pk (S)`` or ``pk (S) + sk (N)``, for messages."""
        text = f"{self.partition_key} ({self.partition_type})"
        if self.sort_key is not None:
            text += f" + {self.sort_key} ({self.sort_type})"
        return text

    def key_of(self, item: Mapping[str, AttributeValue]) -> Item:
        """The key attributes of ``item``, as a ``Key`` argument for GetItem/DeleteItem."""
        return {name: item[name] for name in self.names}

    def key_id(self, item: Mapping[str, AttributeValue]) -> KeyId:
        """A hashable identity of the item's key (see :data:`KeyId`)."""
        values = []
        for name, kind in zip(self.names, self._types()):
            (value,) = item[name].values()
            values.append(bytes(value) if kind == "B" else value)
        return tuple(values)

    def key_from_id(self, key_id: KeyId) -> Item:
        """The ``Key`` argument for a :data:`KeyId`."""
        return {name: {kind: value} for name, kind, value in zip(self.names, self._types(), key_id)}

    def probe_key(self) -> Item:
        """A key of the right types that no real application is expected to use (permission probes)."""
        samples = {"S": "cdk-replication-permission-probe", "N": "-0.000314159", "B": b"cdk-replication-probe"}
        return {name: {kind: samples[kind]} for name, kind in zip(self.names, self._types())}

    def _types(self) -> tuple[str, ...]:
        if self.sort_key is None:
            return (self.partition_type,)
        assert self.sort_type is not None
        return (self.partition_type, self.sort_type)


def to_json_value(value: Mapping[str, Any]) -> dict[str, Any]:
    """One low-level attribute value with bytes turned into base64 text: DynamoDB's JSON wire format.

    Reads back with :func:`from_json_value`; used for state files and ``--json`` reports.
    """
    ((kind, inner),) = value.items()
    if kind == "B":
        return {"B": base64.b64encode(bytes(inner)).decode("ascii")}
    if kind == "BS":
        return {"BS": [base64.b64encode(bytes(b)).decode("ascii") for b in inner]}
    if kind == "L":
        return {"L": [to_json_value(v) for v in inner]}
    if kind == "M":
        return {"M": to_json_item(inner)}
    return {kind: inner}


def to_json_item(item: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """An item or key in DynamoDB's JSON wire format (see :func:`to_json_value`)."""
    return {name: to_json_value(value) for name, value in item.items()}


def from_json_value(value: Mapping[str, Any]) -> AttributeValue:
    """The inverse of :func:`to_json_value`: base64 text under ``B``/``BS`` becomes bytes again."""
    ((kind, inner),) = value.items()
    if kind == "B":
        return {"B": base64.b64decode(inner)}
    if kind == "BS":
        return {"BS": [base64.b64decode(b) for b in inner]}
    if kind == "L":
        return {"L": [from_json_value(v) for v in inner]}
    if kind == "M":
        return {"M": from_json_item(inner)}
    return {kind: inner}


def from_json_item(item: Mapping[str, Any]) -> Item:
    """The inverse of :func:`to_json_item`."""
    return {name: from_json_value(value) for name, value in item.items()}


def key_text(key: Mapping[str, AttributeValue]) -> str:
    """A short human form of a key, e.g. ``pk=S:"a" sk=N:12`` or ``pk=B:3q2+7w==``."""
    parts = []
    for name, value in key.items():
        ((kind, inner),) = value.items()
        if kind == "B":
            shown = base64.b64encode(bytes(inner)).decode("ascii")
        elif kind == "S":
            shown = repr(inner)
        else:
            shown = str(inner)
        parts.append(f"{name}={kind}:{shown}")
    return " ".join(parts)
