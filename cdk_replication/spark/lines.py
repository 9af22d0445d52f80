"""One export line at a time: its key, its digest and whether it is a tombstone — plain Python, no Spark.

Equality is the single-machine ``verify``'s, by construction: the digest is
:func:`cdk_replication.cli.items.item_digest` of the item decoded with
:func:`~cdk_replication.cli.items.from_json_item` (base64 text back to bytes), and tombstones are recognised by
:func:`~cdk_replication.cli.items.is_tombstone`. So numbers compare by exact decimal value (all 38 digits,
``1.50`` equals ``1.5``), binary by bytes, sets in any order, maps by key, lists in order, and an empty string is
a value; attributes starting with the metadata prefix are left out.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from cdk_replication.cli.items import canonical_value, from_json_item, is_tombstone, item_digest


class BadExportLine(ValueError):
    """A line that is not ``{"Item": {...}}`` holding every key attribute."""


def key_json(item: Mapping[str, Any], key_names: Sequence[str]) -> str:
    """The key of an export item as compact JSON in key-schema order (``{"pk":{"S":"a"}}``, binary in base64).

    DynamoDB stores key numbers normalized, so one key has one text: the join can compare texts.
    """
    try:
        return json.dumps({name: item[name] for name in key_names}, separators=(",", ":"))
    except KeyError as exc:
        # Names only: the message may reach Glue's logs, which must not hold item data.
        raise BadExportLine(f"an item without key attribute {exc.args[0]!r}") from None


def parse_line(line: str, key_names: Sequence[str], metadata_prefix: str) -> tuple[str, bytes | None, bool] | None:
    """``(key json, 16-byte digest, is tombstone)`` for one export line; ``None`` for a blank line.

    A tombstone's digest is ``None``: it stands for "no item".
    """
    if not line.strip():
        return None  # an empty partition's file
    try:
        wire = json.loads(line)["Item"]
    except (ValueError, KeyError, TypeError):
        raise BadExportLine(f"a line of {len(line)} characters that is not {{\"Item\": ...}} JSON") from None
    key = key_json(wire, key_names)
    item = from_json_item(wire)
    if is_tombstone(item, metadata_prefix):
        return key, None, True
    return key, item_digest(item, metadata_prefix), False


def differing_attributes(source_line: str, target_line: str, metadata_prefix: str) -> list[str]:
    """The user attributes that differ between two export lines of one key, sorted: as the ``verify``
    re-read names them (present in one only, or with different canonical values)."""
    s = from_json_item(json.loads(source_line)["Item"])
    t = from_json_item(json.loads(target_line)["Item"])
    names = {n for n in set(s) | set(t) if not (metadata_prefix and n.startswith(metadata_prefix))}
    return [n for n in sorted(names) if n not in s or n not in t or canonical_value(s[n]) != canonical_value(t[n])]
