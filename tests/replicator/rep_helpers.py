"""Helpers for replicator tests on DynamoDB Local: tables, real stream records, table comparison."""

from __future__ import annotations

import base64
import datetime as dt
import json
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cdk_replication.local import DynamoDBLocal, credentials_for_account
from cdk_replication.local.stream_records import aws_stream_arn, read_all_records, to_lambda_record

SOURCE_ACCOUNT = "111111111111"
OTHER_ACCOUNT = "222222222222"


def unique(prefix: str) -> str:
    """A table name no other test uses (they share one DynamoDB Local per session)."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@dataclass
class FakeContext:
    """The parts of Lambda's context object the replicator uses."""

    remaining_ms: int = 60_000
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_name: str = "replicator-test"

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


@dataclass
class Table:
    """One table in one region/account database of the shared DynamoDB Local."""

    ddb: DynamoDBLocal
    name: str
    region: str
    account: str = SOURCE_ACCOUNT
    stream_arn: str | None = None
    _seen: set[str] = field(default_factory=set)

    @property
    def client(self) -> Any:
        return self.ddb.client(region=self.region, account=self.account)

    def ref(self, role: bool = False) -> dict[str, str]:
        ref = {"tableName": self.name, "region": self.region, "account": self.account}
        if role:
            ref["roleArn"] = f"arn:aws:iam::{self.account}:role/replication-writer"
        return ref

    def new_records(self) -> list[dict[str, Any]]:
        """Stream records written since the last call, in Lambda's shape."""
        assert self.stream_arn is not None, "table has no stream"
        streams = self.ddb.client("dynamodbstreams", region=self.region, account=self.account)
        arn = aws_stream_arn(self.stream_arn, self.region, self.account)
        out = []
        for raw in read_all_records(streams, self.stream_arn):
            seq = raw["dynamodb"]["SequenceNumber"]
            if seq not in self._seen:
                self._seen.add(seq)
                out.append(to_lambda_record(raw, self.region, arn))
        return out

    def items(self) -> list[dict[str, Any]]:
        """Every item, consistently read, sorted by key; sets sorted so that equal tables compare equal."""
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"TableName": self.name, "ConsistentRead": True}
        while True:
            page = self.client.scan(**kwargs)
            items.extend(page["Items"])
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        normalized = [{k: _sorted_sets(v) for k, v in item.items()} for item in items]
        return sorted(normalized, key=_sort_key)


def _sorted_sets(value: dict[str, Any]) -> dict[str, Any]:
    ((kind, inner),) = value.items()
    if kind in ("SS", "NS", "BS"):
        return {kind: sorted(inner)}
    if kind == "M":
        return {"M": {k: _sorted_sets(v) for k, v in inner.items()}}
    if kind == "L":
        return {"L": [_sorted_sets(v) for v in inner]}
    return value


def _sort_key(item: Mapping[str, Any]) -> str:
    return repr(sorted((k, repr(v)) for k, v in item.items()))


def sort_items(items: Iterable[Mapping[str, Any]]) -> list[Any]:
    """``items`` in a canonical order, so that two tables' contents compare as lists."""
    return sorted(items, key=_sort_key)


def create_table(
    ddb: DynamoDBLocal,
    prefix: str,
    region: str,
    account: str = SOURCE_ACCOUNT,
    stream: bool = True,
    key_types: tuple[str, str | None] = ("S", None),
    gsi: tuple[str, str] | None = None,
) -> Table:
    """A table with key ``pk`` (and ``sk`` when a sort key type is given), optionally a stream and one GSI
    ``(attribute, type)``."""
    table = Table(ddb, unique(prefix), region, account)
    pk_type, sk_type = key_types
    schema = [{"AttributeName": "pk", "KeyType": "HASH"}]
    attrs = [{"AttributeName": "pk", "AttributeType": pk_type}]
    if sk_type:
        schema.append({"AttributeName": "sk", "KeyType": "RANGE"})
        attrs.append({"AttributeName": "sk", "AttributeType": sk_type})
    kwargs: dict[str, Any] = {
        "TableName": table.name,
        "KeySchema": schema,
        "AttributeDefinitions": attrs,
        "BillingMode": "PAY_PER_REQUEST",
    }
    if stream:
        kwargs["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    if gsi:
        name, kind = gsi
        attrs.append({"AttributeName": name, "AttributeType": kind})
        kwargs["GlobalSecondaryIndexes"] = [
            {"IndexName": "by-" + name, "KeySchema": [{"AttributeName": name, "KeyType": "HASH"}],
             "Projection": {"ProjectionType": "KEYS_ONLY"}}
        ]
    table.client.create_table(**kwargs)
    if stream:
        table.stream_arn = table.client.describe_table(TableName=table.name)["Table"]["LatestStreamArn"]
    return table


def local_assume_role(role_arn: str, session_name: str) -> dict[str, Any]:
    """Stands in for STS: the credentials that select the role's account inside DynamoDB Local."""
    account = role_arn.split(":")[4]
    creds = credentials_for_account(account)
    return {
        "AccessKeyId": creds.access_key_id,
        "SecretAccessKey": creds.secret_access_key,
        "SessionToken": "local-session",
        "Expiration": dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1),
    }


def replication_env(
    source: Table,
    targets: Iterable[dict[str, str]],
    *,
    mode: str = "ONE_WAY",
    sort_key: bool = False,
    **extra: str,
) -> dict[str, str]:
    """The REPLICATION_* variables the construct would write for ``source`` and ``targets``."""
    env = {
        "REPLICATION_MODE": mode,
        "REPLICATION_SOURCE": json.dumps(source.ref()),
        "REPLICATION_TARGETS": json.dumps(list(targets)),
        "REPLICATION_KEY": json.dumps({"partitionKey": "pk", "sortKey": "sk" if sort_key else None}),
    }
    env.update(extra)
    return env


def json_lines(text: str) -> list[dict[str, Any]]:
    """Every JSON object line of captured stdout."""
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{"):
            out.append(json.loads(line))
    return out


#: Kinesis sequence numbers are decimal strings of up to 56 digits; these start like AWS's.
FIRST_SEQUENCE = 49_650_000_000_000_000_000_000_000_000_000_000_000_000_000_000


def kinesis_events(table: Table, records: list[dict[str, Any]], first_us: int | None = None,
                   millis: bool = False, times: list[int] | None = None) -> list[dict[str, Any]]:
    """Lambda records of a Kinesis event whose data are ``records`` in the Kinesis Data Streams for DynamoDB
    format: no SequenceNumber or StreamViewType, a creation time in micro- (or milli-) seconds that follows
    the stream order (or exactly ``times``, as ApproximateCreationDateTime values), and Kinesis sequence
    numbers in delivery order."""
    start = first_us if first_us is not None else int(time.time() * 1e6)
    out = []
    for i, record in enumerate(records):
        body = {k: v for k, v in record["dynamodb"].items() if k not in ("SequenceNumber", "StreamViewType")}
        change_us = start + i * 1000
        body["ApproximateCreationDateTime"] = change_us // 1000 if millis else change_us
        if times is not None:
            body["ApproximateCreationDateTime"] = times[i]
        data = {
            "awsRegion": table.region,
            "eventID": str(uuid.uuid4()),
            "eventName": record["eventName"],
            "userIdentity": record.get("userIdentity"),
            "recordFormat": "application/json",
            "tableName": table.name,
            "dynamodb": body,
            "eventSource": "aws:dynamodb",
        }
        out.append(kinesis_record(data, FIRST_SEQUENCE + i))
    return out


def kinesis_record(data: dict[str, Any], sequence: int) -> dict[str, Any]:
    return {
        "kinesis": {
            "kinesisSchemaVersion": "1.0",
            "partitionKey": "0" * 32,
            "sequenceNumber": str(sequence),
            "data": base64.b64encode(json.dumps(data).encode()).decode(),
            "approximateArrivalTimestamp": time.time(),
        },
        "eventSource": "aws:kinesis",
        "eventVersion": "1.0",
        "eventID": f"shardId-000000000000:{sequence}",
        "eventName": "aws:kinesis:record",
        "awsRegion": "us-east-1",
        "eventSourceARN": "arn:aws:kinesis:us-east-1:111111111111:stream/changes",
    }


def run_batch(processor: Any, records: list[dict[str, Any]]) -> dict[str, Any]:
    """One invocation of ``processor`` with ``records``: the handler's partial batch response."""
    return processor.process({"Records": records}, FakeContext())


def user_items(table: Table, prefix: str = "_rep_") -> list[dict[str, Any]]:
    """The replica as an application sees it: tombstones left out, metadata (``prefix``) stripped."""
    return sort_items(
        {k: v for k, v in item.items() if not k.startswith(prefix)}
        for item in table.items()
        if prefix + "deleted" not in item
    )
