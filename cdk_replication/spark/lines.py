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

from cdk_replication.cli.items import canonical_number, canonical_value, from_json_item, is_tombstone, item_digest


class BadExportLine(ValueError):
    """A line that is not ``{"Item": {...}}`` holding every key attribute with a valid value.

    Its message names attributes and types only, never a value: it reaches Glue's logs, which must not hold
    item data (the ``AwsSolutions-GL1`` acknowledgement of :class:`cdk_replication.ExportVerifyJob`).
    """


def _join_value(value: Any) -> Any:
    """A key value as the join compares it: numbers by exact value (``1.0``, ``1`` and ``1E+0`` are one key
    in DynamoDB), strings and binary (base64 text) as they are."""
    if isinstance(value, Mapping) and set(value) == {"N"}:
        return {"N": canonical_number(value["N"])}
    return value


def key_json(item: Mapping[str, Any], key_names: Sequence[str], *, canonical: bool = False) -> str:
    """The key of an export item as compact JSON in key-schema order (``{"pk":{"S":"a"}}``, binary in base64).

    Args:
        canonical: numbers as :func:`~cdk_replication.cli.items.canonical_number` spells them (``15e-1``), the
            join key; default ``False``: as the export spells them, the key a report lists.
    """
    try:
        key = {name: item[name] for name in key_names}
        return json.dumps({n: _join_value(v) for n, v in key.items()} if canonical else key, separators=(",", ":"))
    except KeyError as exc:
        # Names only: the message may reach Glue's logs, which must not hold item data.
        raise BadExportLine(f"an item without key attribute {exc.args[0]!r}") from None
    except (ValueError, TypeError):
        raise BadExportLine(f"an item whose key attribute(s) {', '.join(key_names)} hold a malformed value") from None


def _malformed(wire: Mapping[str, Any]) -> str:
    """The attributes of ``wire`` whose value does not decode, as ``name (type)``: names and types only."""
    bad = []
    for name, value in wire.items():
        try:
            canonical_value(from_json_item({name: value})[name])
        except Exception:  # noqa: BLE001 - any failure names the attribute, never its value
            kind = next(iter(value), "?") if isinstance(value, Mapping) else type(value).__name__
            bad.append(f"{name} ({kind})")
    return ", ".join(bad) or "an attribute"


def parse_line(line: str, key_names: Sequence[str],
               metadata_prefix: str) -> tuple[str, str, bytes | None, bool] | None:
    """``(join key, key as exported, 16-byte digest, is tombstone)`` for one export line; ``None`` for a blank
    line. The join key is :func:`key_json` with ``canonical=True``.

    A tombstone's digest is ``None``: it stands for "no item".

    Raises:
        BadExportLine: not ``{"Item": ...}`` JSON, a key attribute missing, or a malformed value (named by
            attribute and type only).
    """
    if not line.strip():
        return None  # an empty partition's file
    try:
        wire = json.loads(line)["Item"]
    except (ValueError, KeyError, TypeError):
        raise BadExportLine(f"a line of {len(line)} characters that is not {{\"Item\": ...}} JSON") from None
    if not isinstance(wire, Mapping):
        raise BadExportLine(f"a line of {len(line)} characters whose \"Item\" is not an object")
    join, key = key_json(wire, key_names, canonical=True), key_json(wire, key_names)
    try:
        item = from_json_item(wire)
        if is_tombstone(item, metadata_prefix):
            return join, key, None, True
        return join, key, item_digest(item, metadata_prefix), False
    except Exception:  # noqa: BLE001 - the decoders quote the value; the message must not
        raise BadExportLine(f"an item with a malformed value in {_malformed(wire)}") from None


def differing_attributes(source_line: str, target_line: str, metadata_prefix: str) -> list[str]:
    """The user attributes that differ between two export lines of one key, sorted: as the ``verify``
    re-read names them (present in one only, or with different canonical values)."""
    s = from_json_item(json.loads(source_line)["Item"])
    t = from_json_item(json.loads(target_line)["Item"])
    names = {n for n in set(s) | set(t) if not (metadata_prefix and n.startswith(metadata_prefix))}
    return [n for n in sorted(names) if n not in s or n not in t or canonical_value(s[n]) != canonical_value(t[n])]
