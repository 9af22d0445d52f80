"""The keys a failed batch names, read from its records with the replicator's own parser.

Records are parsed by ``replicator.records.parse_record`` (the code the replicator runs), so a Kinesis record's
``data`` is decoded exactly as the replicator decodes it, and a Kinesis record of another table in a shared
stream is left out as the replicator leaves it out. A batch of another table than SOURCE is refused: its
keys would be resynced from the wrong table.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cdk_replication._lambda.replicator import attributes as replicator_attributes
from cdk_replication._lambda.replicator import records as replicator_records
from cdk_replication._lambda.replicator.config import KeySchema as ReplicatorKeySchema
from cdk_replication.cli.errors import BadInput
from cdk_replication.cli.items import Item, KeyId
from cdk_replication.cli.redrive.failure_records import DYNAMODB, FailureRecord
from cdk_replication.cli.tables import TableInfo

#: DynamoDB Local reports this account in every ARN: an account it reports cannot be compared.
_PLACEHOLDER_ACCOUNT = "000000000000"
_TABLE_ARN = re.compile(r"^arn:[^:]+:dynamodb:(?P<region>[^:]*):(?P<account>[^:]*):table/(?P<name>[^/]+)")


@dataclass(frozen=True)
class KeyChange:
    """One failed record of one key.

    Attributes:
        key_id / key: the item's key (hashable, and as a ``Key`` argument).
        order: sorts one key's records in stream order (the sequence number).
        record: the record in the shape of Lambda's DynamoDB Streams event (a Kinesis record decoded, its
            Kinesis sequence number as ``dynamodb.SequenceNumber``).
        kinesis: the record came from a Kinesis batch (``KinesisBatchInfo``): the replica is Kinesis-fed.
    """

    key_id: KeyId
    key: Item
    order: int
    record: dict[str, Any]
    kinesis: bool = False


def check_stream_table(stream_arn: str, source: TableInfo, where: str) -> None:
    """Refuse a DynamoDB stream ARN of another table than SOURCE (name, region and, when the endpoint
    reports a real one, account)."""
    match = _TABLE_ARN.match(stream_arn)
    account = _source_account(source)
    if not match or match["name"] != source.ref.name or match["region"] != source.region or (
        account != _PLACEHOLDER_ACCOUNT and match["account"] != account
    ):
        raise BadInput(
            f"{where} is a failure record of stream {stream_arn}, not of SOURCE {source.label()}: redrive it with "
            "that table as SOURCE (or leave it out of --from); resyncing from another table would write its items"
        )


_KINESIS_ARN = re.compile(r"^arn:[^:]+:kinesis:(?P<region>[^:]*):(?P<account>[^:]*):stream/(?P<name>[^/]+)$")


def _source_account(source: TableInfo) -> str:
    match = _TABLE_ARN.match(source.arn)
    return match["account"] if match else _PLACEHOLDER_ACCOUNT


def check_kinesis_stream(stream_arn: str, source: TableInfo, where: str) -> None:
    """Refuse a Kinesis data stream of another region than SOURCE's (or, when the endpoint reports a real
    one, another account): a table streams its changes only to a data stream of its own region and account,
    and replicated tables share one name in every region, so the table name alone does not tell them apart."""
    match = _KINESIS_ARN.match(stream_arn)
    account = _source_account(source)
    if not match or match["region"] != source.region or (
        account != _PLACEHOLDER_ACCOUNT and match["account"] != account
    ):
        raise BadInput(
            f"{where} is a failure record of Kinesis data stream {stream_arn}, which SOURCE {source.label()} "
            "cannot stream to (another region or account): redrive it with that stream's table as SOURCE (or "
            "leave it out of --from); resyncing from another table would write its items"
        )


def _check_kinesis_region(record: Mapping[str, Any], decoded: Mapping[str, Any], source: TableInfo,
                          where: str) -> None:
    """Refuse a Kinesis record whose stream or change is of another region than SOURCE (same table name)."""
    for what, region in (("record", record.get("awsRegion")), ("change it carries", decoded.get("awsRegion"))):
        if isinstance(region, str) and region != source.region:
            raise BadInput(f"{where}: the {what} is of region {region}, SOURCE {source.label()} is of "
                           f"{source.region}: it is a change of the table of that name there; redrive it with that "
                           "table as SOURCE")


def _decoded(record: Mapping[str, Any], index: int) -> dict[str, Any]:
    """``record`` as a DynamoDB Streams event record (a Kinesis one decoded by the replicator's code)."""
    if record.get("eventSource") != replicator_records.KINESIS_EVENT_SOURCE:
        return dict(record)
    sequence, change = replicator_records._kinesis_change(index, record)  # the replicator's own decoding
    return {**change, "dynamodb": {**change.get("dynamodb", {}), "SequenceNumber": sequence}}


def keys_only(index: int, record: Mapping[str, Any], schema: ReplicatorKeySchema,
              table: str) -> replicator_records.KeyMismatch | tuple[Any, str] | None:
    """``(key, sequence number)`` of a record the replicator refused as malformed, from ``dynamodb.Keys`` alone
    (redrive needs only the key: e.g. a record of a KEYS_ONLY stream, which has no NewImage).

    Returns ``None`` for a Kinesis change record of another table, a ``KeyMismatch`` for other key names.

    Raises:
        ValueError: not even the keys and the sequence number can be read.
    """
    body = record.get("dynamodb")
    sequence = body.get("SequenceNumber") if isinstance(body, Mapping) else None
    if record.get("eventSource") == replicator_records.KINESIS_EVENT_SOURCE:
        sequence, change = replicator_records._kinesis_change(index, record)  # the replicator's own decoding
        if change.get("tableName") not in (None, table):
            return None
        body = change.get("dynamodb")
    keys = body.get("Keys") if isinstance(body, Mapping) else None
    if not isinstance(keys, Mapping) or not isinstance(sequence, str) or not sequence.isdigit():
        raise replicator_records.MalformedRecord(f"record {index} has no dynamodb.Keys or SequenceNumber")
    key_item = replicator_attributes.from_event_image(keys)
    if set(key_item) != set(schema.names):
        names = sorted(key_item)
        return replicator_records.KeyMismatch(index, sequence, str(record.get("eventName")),
                                              replicator_attributes.item_key(key_item, names), schema.names)
    return replicator_attributes.item_key(key_item, schema.names), sequence


def _parse(index: int, record: Mapping[str, Any], schema: ReplicatorKeySchema,
           table: str) -> replicator_records.KeyMismatch | tuple[Any, str] | None:
    """The replicator's parse of ``record`` as ``(key, sequence number)``; a record it refuses as malformed
    falls back to :func:`keys_only` (raises ``ValueError`` when that cannot read it either)."""
    try:
        parsed = replicator_records.parse_record(index, record, schema, table)
    except ValueError:  # MalformedRecord, InvalidAttributeValue
        return keys_only(index, record, schema, table)
    if parsed is None or isinstance(parsed, replicator_records.KeyMismatch):
        return parsed
    return parsed.key, parsed.sequence_number


def _check_stream(failure: FailureRecord, stream_arn: Any, source: TableInfo, where: str) -> None:
    if isinstance(stream_arn, str):
        (check_stream_table if failure.batch.kind == DYNAMODB else check_kinesis_stream)(stream_arn, source, where)


def changes_of(failure: FailureRecord, records: list[dict[str, Any]],
               source: TableInfo) -> tuple[list[KeyChange], list[str]]:
    """The changes of SOURCE's table among ``records`` (the failure record's, or re-read from the stream), and
    why each record whose keys cannot be read was left out (its failure record must stay unmarked).

    Raises:
        BadInput: a record names another table, or has other key attributes than SOURCE.
    """
    _check_stream(failure, failure.batch.stream_arn, source, failure.name)
    schema = ReplicatorKeySchema(source.key.partition_key, source.key.sort_key)
    found: list[KeyChange] = []
    unreadable: list[str] = []
    other_tables = 0
    for index, record in enumerate(records):
        where = f"{failure.name} (record {index})"
        _check_stream(failure, record.get("eventSourceARN"), source, where)
        try:
            parsed = _parse(index, record, schema, source.ref.name)
            decoded = _decoded(record, index)
        except ValueError as exc:
            unreadable.append(f"record {index}: {exc}")
            continue
        if parsed is None:
            other_tables += 1
            continue
        if isinstance(parsed, replicator_records.KeyMismatch):
            raise BadInput(f"{where} has key {', '.join(parsed.found)}, SOURCE "
                           f"{source.label()} has {source.key.describe()}: it is a record of another table")
        if failure.batch.kind != DYNAMODB:
            _check_kinesis_region(record, decoded, source, where)
        key = {name: {kind: value} for name, kind, value in parsed[0]}
        found.append(KeyChange(source.key.key_id(key), key, int(parsed[1]), decoded,
                               kinesis=failure.batch.kind != DYNAMODB))
    if records and other_tables == len(records):
        raise BadInput(f"{failure.name}: none of its {len(records)} records is a change of SOURCE "
                       f"{source.label()} (Kinesis records name another table): redrive it with that table as SOURCE")
    return found, unreadable
