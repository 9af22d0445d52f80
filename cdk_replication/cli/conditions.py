"""Condition expressions for writes that must never overwrite newer data in the target."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cdk_replication.cli.items import AttributeValue, Item

#: Conflict strategies accepted by ``--conflict-strategy`` (the replicator's names).
CONFLICT_STRATEGIES = ("TIMESTAMP", "VERSION")


@dataclass
class Condition:
    """A ``ConditionExpression`` with its name and value placeholders, ready to splat into a request."""

    expression: str
    names: dict[str, str] = field(default_factory=dict)
    values: dict[str, AttributeValue] = field(default_factory=dict)

    def request_args(self) -> dict[str, Any]:
        """``ConditionExpression``/``ExpressionAttributeNames``/``ExpressionAttributeValues`` arguments."""
        args: dict[str, Any] = {"ConditionExpression": self.expression, "ExpressionAttributeNames": self.names}
        if self.values:
            args["ExpressionAttributeValues"] = self.values
        return args


class MissingConflictValue(ValueError):
    """The source item has no usable conflict attribute, so last-writer-wins cannot order it."""


@dataclass(frozen=True)
class LastWriterWins:
    """Multi-active ordering: an item's ``attribute`` (a timestamp or a version) says which write is newer.

    Attributes:
        attribute: the application's conflict attribute (the replicator's default is ``updatedAt``).
        strategy: ``TIMESTAMP`` (e.g. epoch milliseconds) or ``VERSION``; default ``TIMESTAMP``. Either way
            the value must be a number, as the replicator requires, and the greater number is newer.
    """

    attribute: str
    strategy: str = "TIMESTAMP"

    def __post_init__(self) -> None:
        if self.strategy not in CONFLICT_STRATEGIES:
            raise ValueError(
                f"conflict strategy {self.strategy!r} is unknown: use one of {', '.join(CONFLICT_STRATEGIES)}"
            )

    def value_of(self, item: Item) -> AttributeValue:
        """The item's conflict value; :class:`MissingConflictValue` if it lacks one of a usable type."""
        value = item.get(self.attribute)
        if value is None or "N" not in value:
            raise MissingConflictValue(
                f"conflict attribute {self.attribute!r} is missing or not a number (found {value!r}); the "
                "replicator cannot order this item either"
            )
        return value

    def newer_than_target(self, partition_key: str, source_item: Item) -> Condition:
        """Write only if the target lacks the item or holds a strictly older conflict value.

        An equal value is a tie that keeps the target (the replicator breaks such ties by origin region,
        which a copy does not have).
        """
        return Condition(
            "attribute_not_exists(#pk) OR #cv < :cv",
            {"#pk": partition_key, "#cv": self.attribute},
            {":cv": self.value_of(source_item)},
        )


def absent(partition_key: str) -> Condition:
    """Write only if the target has no item with this key."""
    return Condition("attribute_not_exists(#pk)", {"#pk": partition_key})


#: Attribute comparisons in one :func:`unchanged` condition at most. Each costs two of the 300 operators
#: DynamoDB allows in an expression (the comparison and its AND), with room left for the rest.
MAX_CONDITION_TERMS = 100


def unchanged(
    partition_key: str,
    seen: Item | None,
    also_absent: Item | None = None,
    metadata_prefix: str = "",
) -> Condition:
    """Write only if the target still holds exactly ``seen`` (``None``: still holds no item).

    Every attribute of ``seen`` must still be equal (DynamoDB compares maps, lists and sets by value), and
    every attribute of ``also_absent`` that ``seen`` lacked must still be missing. Past
    :data:`MAX_CONDITION_TERMS` attributes only that many are compared, metadata attributes (which the
    replicator rewrites on every write) first. An attribute added by a concurrent writer under a name in
    neither item, or one beyond the cap, is not detected here; the repair's re-read of the source after the
    write covers those cases (see docs/cli.md).
    """
    if seen is None:
        return absent(partition_key)
    parts = ["attribute_exists(#pk)"]
    names = {"#pk": partition_key}
    values: dict[str, AttributeValue] = {}

    def metadata_first(name: str) -> tuple[bool, str]:
        return (not (metadata_prefix and name.startswith(metadata_prefix)), name)

    compared = sorted(seen, key=metadata_first)[:MAX_CONDITION_TERMS]
    for i, name in enumerate(compared):
        names[f"#a{i}"] = name
        values[f":v{i}"] = seen[name]
        parts.append(f"#a{i} = :v{i}")
    room = MAX_CONDITION_TERMS - len(compared)
    for j, name in enumerate(sorted(set(also_absent or {}) - set(seen))[:room]):
        names[f"#n{j}"] = name
        parts.append(f"attribute_not_exists(#n{j})")
    return Condition(" AND ".join(parts), names, values)
