"""Stream records of a Lambda DynamoDB Streams event, parsed once into what the replicator needs."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .attributes import Item, ItemKey, from_event_image, item_key
from .config import KeySchema

#: The principal DynamoDB names in ``userIdentity`` when its TTL process deletes an item.
TTL_PRINCIPAL = "dynamodb.amazonaws.com"
#: ``eventSource`` of a Lambda record read from a Kinesis data stream.
KINESIS_EVENT_SOURCE = "aws:kinesis"
#: ``ApproximateCreationDateTime`` of a Kinesis change record is epoch milliseconds or, with the table's
#: MICROSECOND precision (the construct's setting), epoch microseconds. Milliseconds stay below this value
#: until the year 5138 and microseconds have been above it since 1973, so the magnitude tells them apart and a
#: precision change on a live table keeps the order.
_MICROSECOND_THRESHOLD = 10**14


class MalformedRecord(ValueError):
    """A record lacks what every DynamoDB stream record carries; the invocation fails so Lambda retries it."""


@dataclass(frozen=True)
class KeyMismatch:
    """A record whose ``Keys`` name other attributes than the configured key (``REPLICATION_KEY``).

    Every record of a table holds exactly the table's key attributes, so this is a wrong configuration (for
    example an ``existing_source`` declared without its sort key), never bad data: keying items by the
    configured names would merge distinct items, or fail on a missing name. Such a record is never applied;
    it is reported as failed, so its shard and sequence range reach the on-failure destination after Lambda's
    retries (what to do then: ``Processor._refuse_mismatched_keys``).

    Attributes:
        index / sequence_number / event_name: as in :class:`Change`.
        key: the record's own key (every attribute of its ``Keys``, names sorted), for the log line.
        configured: the configured key names, in key-schema order.
    """

    index: int
    sequence_number: str
    event_name: str
    key: ItemKey = field(repr=False)
    configured: tuple[str, ...]

    @property
    def found(self) -> tuple[str, ...]:
        """The record's key names, sorted."""
        return tuple(name for name, _, _ in self.key)


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
        change_time_us: Kinesis change records only: when DynamoDB made the change, in epoch microseconds (the
            order of one item's changes; ``None`` for DynamoDB Streams records, which arrive in write order).
    """

    index: int
    sequence_number: str
    event_name: str
    key: ItemKey
    new_image: Item | None = field(repr=False)
    old_image: Item | None = field(repr=False)
    created_at: float | None
    by_ttl: bool
    change_time_us: int | None = None

    @property
    def is_remove(self) -> bool:
        return self.event_name == "REMOVE"


def _kinesis_change(index: int, record: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """The sequence number and the decoded DynamoDB change record of a Kinesis event record."""
    kinesis = record.get("kinesis")
    if not isinstance(kinesis, Mapping) or not isinstance(kinesis.get("sequenceNumber"), str):
        raise MalformedRecord(f"record {index} is a Kinesis record without kinesis.sequenceNumber")
    try:
        change = json.loads(base64.b64decode(kinesis.get("data", ""), validate=True))
    except (binascii.Error, TypeError, ValueError) as exc:
        raise MalformedRecord(f"record {index}: kinesis.data is not base64 JSON ({exc})") from None
    if not isinstance(change, dict) or change.get("eventSource") != "aws:dynamodb":
        raise MalformedRecord(f"record {index}: kinesis.data is not a DynamoDB change record")
    return kinesis["sequenceNumber"], change


def _microseconds(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return int(value) if value >= _MICROSECOND_THRESHOLD else int(value) * 1000


def parse_record(
    index: int, record: Mapping[str, Any], key_schema: KeySchema, source_table: str | None = None
) -> Change | KeyMismatch | None:
    """One record of ``event["Records"]``: a DynamoDB stream record, or a Kinesis record whose data is a
    DynamoDB change record (Kinesis Data Streams for DynamoDB).

    Returns ``None`` for a Kinesis change record of a table other than ``source_table``: a data stream may be
    shared by several tables, whose keys need not even have our key's names, so it is left before its key is
    read. Returns a :class:`KeyMismatch` for a record of our table whose ``Keys`` name other attributes than
    ``key_schema``.

    Raises:
        MalformedRecord: the record is not a change record with keys and a sequence number (and, from
            Kinesis, a creation time).
    """
    change_time_us: int | None = None
    body = record.get("dynamodb")
    if record.get("eventSource") == KINESIS_EVENT_SOURCE:
        kinesis_sequence, record = _kinesis_change(index, record)
        if source_table is not None and record.get("tableName") not in (None, source_table):
            return None
        body = record.get("dynamodb")
        if isinstance(body, Mapping):
            change_time_us = _microseconds(body.get("ApproximateCreationDateTime"))
            if change_time_us is None:
                raise MalformedRecord(f"record {index} has no numeric dynamodb.ApproximateCreationDateTime")
            # Kinesis change records carry no stream sequence number: Lambda resumes from the Kinesis one.
            body = {**body, "SequenceNumber": kinesis_sequence}
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
    key_item = from_event_image(keys)
    if set(key_item) != set(key_schema.names):
        # Compared as sets, both ways: extra names would merge items, missing ones cannot make a key at all.
        return KeyMismatch(index, sequence_number, event_name, item_key(key_item, sorted(key_item)), key_schema.names)
    identity = record.get("userIdentity") or {}
    created = body.get("ApproximateCreationDateTime") if change_time_us is None else change_time_us / 1e6
    return Change(
        index=index,
        sequence_number=sequence_number,
        event_name=event_name,
        key=item_key(key_item, key_schema.names),
        new_image=new_image,
        old_image=old_image,
        created_at=float(created) if isinstance(created, (int, float)) else None,
        by_ttl=identity.get("type") == "Service" and identity.get("principalId") == TTL_PRINCIPAL,
        change_time_us=change_time_us,
    )


@dataclass(frozen=True)
class ParsedEvent:
    """A Lambda event's records, sorted out.

    Attributes:
        received: how many records the event held.
        changes: the records to apply, in delivery (sequence) order.
        mismatched: records whose keys do not match the configured key (never applied, reported as failed).
        Records of other tables in a shared Kinesis stream are in neither list (``received`` counts them).
    """

    received: int
    changes: list[Change]
    mismatched: list[KeyMismatch]


def parse_event(event: Mapping[str, Any], key_schema: KeySchema, source_table: str | None = None) -> ParsedEvent:
    """Every record of a Lambda DynamoDB Streams or Kinesis event, except Kinesis records of tables other than
    ``source_table`` (``Change.index`` stays the position in the event)."""
    records = event.get("Records")
    if not isinstance(records, Sequence):
        raise MalformedRecord("the event has no Records list")
    changes: list[Change] = []
    mismatched: list[KeyMismatch] = []
    for index, record in enumerate(records):
        parsed = parse_record(index, record, key_schema, source_table)
        if isinstance(parsed, Change):
            changes.append(parsed)
        elif isinstance(parsed, KeyMismatch):
            mismatched.append(parsed)
    return ParsedEvent(received=len(records), changes=changes, mismatched=mismatched)


def group_by_item(changes: Sequence[Change]) -> dict[ItemKey, list[Change]]:
    """Changes per item, each list in stream order (dicts keep first-seen order of the items)."""
    groups: dict[ItemKey, list[Change]] = {}
    for change in changes:
        groups.setdefault(change.key, []).append(change)
    return groups
