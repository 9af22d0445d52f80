"""Attribute values: from a Lambda event's JSON to the low-level client's wire form, without loss.

The event carries binary as base64 text; boto3's low-level client wants ``bytes`` (it base64-encodes them
itself). Numbers stay the strings DynamoDB sent, so all 38 digits survive; nothing goes through ``float`` or
``TypeDeserializer``. Also here: item keys as hashable values, a canonical encoding for digests, and
DynamoDB's item-size arithmetic.
"""

from __future__ import annotations

import base64
import binascii
import decimal
import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

AttributeValue = dict[str, Any]
Item = dict[str, AttributeValue]
#: A primary key as a hashable value: ((name, type, value), ...) in key-schema order, binary as bytes.
ItemKey = tuple[tuple[str, str, Any], ...]

#: DynamoDB's maximum item size, in bytes (names and values, UTF-8).
MAX_ITEM_BYTES = 400 * 1024

_SCALAR = frozenset({"S", "N", "BOOL", "NULL"})
_STRING_SETS = frozenset({"SS", "NS"})


class InvalidAttributeValue(ValueError):
    """An attribute value in the event is not a DynamoDB attribute value."""


def _b64(text: Any) -> bytes:
    if not isinstance(text, str):
        raise InvalidAttributeValue(f"binary value must be base64 text, got {type(text).__name__}")
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error as exc:
        raise InvalidAttributeValue(f"binary value is not base64: {exc}") from None


def from_event_value(value: Mapping[str, Any]) -> AttributeValue:
    """One attribute value from the event JSON, in the form ``boto3.client("dynamodb")`` accepts."""
    if not isinstance(value, Mapping) or len(value) != 1:
        raise InvalidAttributeValue(f"an attribute value has exactly one type key, got {value!r:.200}")
    ((kind, inner),) = value.items()
    if kind in _SCALAR:
        return {kind: inner}
    if kind == "B":
        return {"B": _b64(inner)}
    if kind == "BS":
        return {"BS": [_b64(b) for b in inner]}
    if kind in _STRING_SETS:
        return {kind: list(inner)}
    if kind == "M":
        return {"M": from_event_image(inner)}
    if kind == "L":
        return {"L": [from_event_value(v) for v in inner]}
    raise InvalidAttributeValue(f"unknown attribute type {kind!r}")


def from_event_image(image: Mapping[str, Any]) -> Item:
    """A whole image (``Keys``, ``NewImage`` or ``OldImage``) in wire form."""
    return {name: from_event_value(v) for name, v in image.items()}


def item_key(item: Mapping[str, AttributeValue], names: Iterable[str]) -> ItemKey:
    """The hashable key of ``item`` (an image or a ``Keys`` map) for the key attribute ``names``."""
    parts = []
    for name in names:
        value = item.get(name)
        if value is None:
            raise InvalidAttributeValue(f"key attribute {name!r} is missing")
        ((kind, inner),) = value.items()
        parts.append((name, kind, bytes(inner) if kind == "B" else inner))
    return tuple(parts)


def key_for_log(key: ItemKey) -> dict[str, Any]:
    """A key as JSON for logs, in the event's own notation (binary as base64)."""
    return {
        name: {kind: base64.b64encode(inner).decode("ascii") if kind == "B" else inner}
        for name, kind, inner in key
    }


def key_item(key: ItemKey) -> Item:
    """A key back in wire form, e.g. for ``DeleteRequest``."""
    return {name: {kind: inner} for name, kind, inner in key}


# --- canonical form -------------------------------------------------------------------------------------------

# DynamoDB numbers have at most 38 significant digits and exponents within +-130; 60 digits of working
# precision keep every normalisation exact.
_NUMBER_CONTEXT = decimal.Context(prec=60)


def _canonical_number(text: str) -> str:
    """``text`` normalised: trailing zeros and exponent folded, and every zero (``-0``, ``0.00``, ``-0E-3``)
    written ``0``, since DynamoDB stores and streams a signed zero as ``0``: one value, one key. No item
    DynamoDB holds or streams contains ``-0``, so digests of stored items (multi-active's too) are unchanged;
    only values a user gives (a filter's ``-0``, a CLI lookup) now agree with what DynamoDB holds."""
    value = decimal.Decimal(text)
    if value.is_zero():
        return "0"
    return str(_NUMBER_CONTEXT.normalize(value))


def _canonical(value: AttributeValue) -> Any:
    ((kind, inner),) = value.items()
    if kind == "B":
        return ["B", base64.b64encode(bytes(inner)).decode("ascii")]
    if kind == "N":
        return ["N", _canonical_number(inner)]
    if kind == "BS":
        return ["BS", sorted(base64.b64encode(bytes(b)).decode("ascii") for b in inner)]
    if kind == "NS":
        return ["NS", sorted(_canonical_number(n) for n in inner)]
    if kind == "SS":
        return ["SS", sorted(inner)]
    if kind == "M":
        return ["M", [[k, _canonical(v)] for k, v in sorted(inner.items())]]
    if kind == "L":
        return ["L", [_canonical(v) for v in inner]]
    return [kind, inner]


def digest(item: Mapping[str, AttributeValue], *context: str) -> str:
    """A short, order-independent digest of ``item`` and ``context`` strings.

    Sets and maps are sorted and numbers normalised, so the digest of an item written in one region equals
    the digest of the same item read back from another region's stream. 128 bits, URL-safe base64 (22 chars).
    """
    payload = json.dumps(
        [list(context), [[k, _canonical(v)] for k, v in sorted(item.items())]],
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return base64.urlsafe_b64encode(hashlib.sha256(payload.encode("utf-8")).digest()[:16]).decode("ascii").rstrip("=")


# --- size -----------------------------------------------------------------------------------------------------


def _number_size(text: str) -> int:
    """Bytes DynamoDB counts for a number: one per base-100 digit, plus one, plus one more if negative.

    AWS documents "1 byte per two significant digits, plus 1 byte" after trimming leading and trailing zeros;
    the digit pairs are aligned on the decimal point (``1.1`` is the pairs ``01.10``: 2 bytes + 1, where a
    plain count of two digits gives 1 + 1), and a negative number takes one byte more. Zero takes 1 byte.
    Checked against DynamoDB Local's 400 KB limit (tests/replicator/test_attributes.py).
    """
    sign, digits, exponent = decimal.Decimal(text).as_tuple()
    assert isinstance(exponent, int), "DynamoDB numbers are finite"
    # Trailing zeros do not count: fold them into the exponent.
    digits_text = "".join(map(str, digits)).lstrip("0")
    stripped = digits_text.rstrip("0")
    if not stripped:
        return 1
    lowest = exponent + len(digits_text) - len(stripped)  # power of ten of the last significant digit
    highest = lowest + len(stripped) - 1  # power of ten of the first one
    pairs = highest // 2 - lowest // 2 + 1  # base-100 digits, aligned on the decimal point
    return pairs + 1 + (1 if sign else 0)


def value_size(value: AttributeValue) -> int:
    """Bytes DynamoDB counts for one value (its documented sizing rules; containers err on the high side)."""
    ((kind, inner),) = value.items()
    if kind == "S":
        return len(inner.encode("utf-8"))
    if kind == "B":
        return len(inner)
    if kind == "N":
        return _number_size(inner)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(s.encode("utf-8")) for s in inner)
    if kind == "NS":
        return sum(_number_size(n) for n in inner)
    if kind == "BS":
        return sum(len(b) for b in inner)
    if kind == "M":
        return 3 + sum(1 + len(k.encode("utf-8")) + value_size(v) for k, v in inner.items())
    if kind == "L":
        return 3 + sum(1 + value_size(v) for v in inner)
    raise InvalidAttributeValue(f"unknown attribute type {kind!r}")


def item_size(item: Mapping[str, AttributeValue]) -> int:
    """Bytes DynamoDB counts for a whole item: every attribute name plus its value."""
    return sum(len(name.encode("utf-8")) + value_size(v) for name, v in item.items())
