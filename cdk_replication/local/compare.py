"""Compare two tables item by item, ignoring replication metadata (rule 7 of the design)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from cdk_replication._lambda.replicator import contract

#: The replicator's default metadata prefix (``REPLICATION_METADATA_PREFIX``).
DEFAULT_METADATA_PREFIX = contract.DEFAULT_METADATA_PREFIX


@dataclass
class TableComparison:
    """The result of :func:`compare_tables`. Keys are JSON strings of the key attributes.

    Attributes:
        source_items: items in the source.
        replica_items: items in the replica.
        matching: items present in both with identical attributes.
        missing: keys in the source but not in the replica.
        unexpected: keys in the replica but not in the source.
        different: keys whose attributes differ, with the names of the differing attributes.
    """

    source_items: int = 0
    replica_items: int = 0
    matching: int = 0
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    different: dict[str, list[str]] = field(default_factory=dict)

    @property
    def equal(self) -> bool:
        """True when both tables hold exactly the same items."""
        return not (self.missing or self.unexpected or self.different)


def scan_items(client: Any, table: str) -> Iterator[dict[str, Any]]:
    """Every item of ``table`` (strongly consistent scan, all pages)."""
    kwargs: dict[str, Any] = {"TableName": table, "ConsistentRead": True}
    while True:
        page = client.scan(**kwargs)
        yield from page.get("Items", [])
        if "LastEvaluatedKey" not in page:
            return
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def canonical(value: Any) -> Any:
    """An attribute value in a form where equal DynamoDB values compare equal (sets are unordered)."""
    (kind, inner), = value.items()
    if kind in ("SS", "NS"):
        return kind, tuple(sorted(inner))
    if kind == "BS":
        return kind, tuple(sorted(bytes(b) for b in inner))
    if kind == "B":
        return kind, bytes(inner)
    if kind == "M":
        return kind, tuple(sorted((k, canonical(v)) for k, v in inner.items()))
    if kind == "L":
        return kind, tuple(canonical(v) for v in inner)
    return kind, inner


def _key_text(item: dict[str, Any], key_names: list[str]) -> str:
    def plain(value: dict[str, Any]) -> Any:
        (kind, inner), = value.items()
        return inner.hex() if kind == "B" else inner

    return json.dumps({name: plain(item[name]) for name in key_names}, sort_keys=True)


def compare_tables(
    source_client: Any,
    source_table: str,
    replica_client: Any,
    replica_table: str,
    key_names: list[str],
    metadata_prefix: str = DEFAULT_METADATA_PREFIX,
    tombstone_attribute: str | None = None,
) -> TableComparison:
    """Compare every item of two tables, byte for byte, leaving out attributes that start with
    ``metadata_prefix`` (default ``_rep_``). Numbers are compared as DynamoDB returns them (all digits).

    ``tombstone_attribute`` (multi-active: ``<prefix>deleted``) marks items that count as absent.
    Default: none, every item counts.
    """

    def load(client: Any, table: str) -> dict[str, dict[str, Any]]:
        return {
            _key_text(item, key_names): {k: canonical(v) for k, v in item.items() if not k.startswith(metadata_prefix)}
            for item in scan_items(client, table)
            if tombstone_attribute is None or tombstone_attribute not in item
        }

    source = load(source_client, source_table)
    replica = load(replica_client, replica_table)
    result = TableComparison(source_items=len(source), replica_items=len(replica))
    for key, item in source.items():
        other = replica.get(key)
        if other is None:
            result.missing.append(key)
        elif other != item:
            result.different[key] = sorted(n for n in set(item) | set(other) if item.get(n) != other.get(n))
        else:
            result.matching += 1
    result.unexpected = [k for k in replica if k not in source]
    return result
