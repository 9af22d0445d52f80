"""Stream records of a Lambda DynamoDB Streams event, parsed once into what the replicator needs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .attributes import Item, ItemKey, from_event_image, item_key
from .config import KeySchema

#: The principal DynamoDB names in ``userIdentity`` when its TTL process deletes an item.
TTL_PRINCIPAL = "dynamodb.amazonaws.com"


class MalformedRecord(ValueError):
    """A record lacks what every DynamoDB stream record carries; the invocation fails so Lambda retries it."""


@dataclass(frozen=True)
class Change:
    """One stream record: one write to one item.

    Attributes:
        index: position in the batch (records of one shard arrive in sequence order).
        sequence_number: the record's ``SequenceNumber``, the ``itemIdentifier`` Lambda resumes from.
        event_name: ``INSERT``, ``MODIFY`` or ``REMOVE``.
        key: the item's primary key, hashable.
        new_image / old_image: wire-form images (``None`` when the record has none).
        created_at: ``ApproximateCreationDateTime`` in epoch seconds (rounded by DynamoDB; not a clock).
        by_ttl: the write is a delete made by DynamoDB's TTL process.
    """

    index: int
    sequence_number: str
    event_name: str
    key: ItemKey
    new_image: Item | None = field(repr=False)
    old_image: Item | None = field(repr=False)
    created_at: float | None
    by_ttl: bool

    @property
    def is_remove(self) -> bool:
        return self.event_name == "REMOVE"


def parse_record(index: int, record: Mapping[str, Any], key_schema: KeySchema) -> Change:
    """One record of ``event["Records"]``.

    Raises:
        MalformedRecord: the record is not a DynamoDB stream record with keys and a sequence number.
    """
    body = record.get("dynamodb")
    event_name = record.get("eventName")
    if not isinstance(body, Mapping) or event_name not in ("INSERT", "MODIFY", "REMOVE"):
        raise MalformedRecord(f"record {index} is not a DynamoDB stream record")
    sequence_number = body.get("SequenceNumber")
    keys = body.get("Keys")
    if not isinstance(sequence_number, str) or not isinstance(keys, Mapping):
        raise MalformedRecord(f"record {index} has no SequenceNumber or Keys")
    new_image = from_event_image(body["NewImage"]) if "NewImage" in body else None
    old_image = from_event_image(body["OldImage"]) if "OldImage" in body else None
    if event_name != "REMOVE" and new_image is None:
        # The replicator needs the item's new state: the stream must be NEW_IMAGE or NEW_AND_OLD_IMAGES.
        raise MalformedRecord(
            f"record {index} ({event_name}) has no NewImage; the stream view type is {body.get('StreamViewType')}"
        )
    identity = record.get("userIdentity") or {}
    created = body.get("ApproximateCreationDateTime")
    return Change(
        index=index,
        sequence_number=sequence_number,
        event_name=event_name,
        key=item_key(from_event_image(keys), key_schema.names),
        new_image=new_image,
        old_image=old_image,
        created_at=float(created) if isinstance(created, (int, float)) else None,
        by_ttl=identity.get("type") == "Service" and identity.get("principalId") == TTL_PRINCIPAL,
    )


def parse_event(event: Mapping[str, Any], key_schema: KeySchema) -> list[Change]:
    """Every record of a Lambda DynamoDB Streams event, in delivery (sequence) order."""
    records = event.get("Records")
    if not isinstance(records, Sequence):
        raise MalformedRecord("the event has no Records list")
    return [parse_record(i, r, key_schema) for i, r in enumerate(records)]


def group_by_item(changes: Sequence[Change]) -> dict[ItemKey, list[Change]]:
    """Changes per item, each list in stream order (dicts keep first-seen order of the items)."""
    groups: dict[ItemKey, list[Change]] = {}
    for change in changes:
        groups.setdefault(change.key, []).append(change)
    return groups
