"""The naive baseline: a stream handler as the tutorials write it.

For each record in turn: deserialize the image with ``TypeDeserializer``, then ``Table.put_item`` (which
serializes it back with ``TypeSerializer``) or ``Table.delete_item``; one request per record, one after the
other. In MULTI_ACTIVE mode each put carries the last-writer-wins condition the tutorials add
(``attribute_not_exists(pk) OR updatedAt < :v``) and a failed condition counts as done.

It reads the same REPLICATION_* variables as the replicator (first target only) so both run in the same
harness. Not a replicator to use: no retries, no loop prevention, binary values and 38-digit numbers are
not preserved, and one failure fails the whole batch.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import boto3
from boto3.dynamodb.types import TypeDeserializer
from botocore.exceptions import ClientError


class NaiveReplicator:
    def __init__(self, table_name: str, region: str, key_names: list[str], conflict_attribute: str | None) -> None:
        self.table = boto3.resource("dynamodb", region_name=region).Table(table_name)
        self.client = self.table.meta.client
        self.key_names = key_names
        self.conflict_attribute = conflict_attribute
        self.deserializer = TypeDeserializer()

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "NaiveReplicator":
        target = json.loads(env["REPLICATION_TARGETS"])[0]
        key = json.loads(env["REPLICATION_KEY"])
        names = [key["partitionKey"]] + ([key["sortKey"]] if key.get("sortKey") else [])
        conflict = None
        if env.get("REPLICATION_MODE", "ONE_WAY") == "MULTI_ACTIVE":
            conflict = env.get("REPLICATION_CONFLICT_ATTRIBUTE") or "updatedAt"
        return cls(target["tableName"], target["region"], names, conflict)

    def _python(self, image: Mapping[str, Any]) -> dict[str, Any]:
        return {name: self.deserializer.deserialize(value) for name, value in image.items()}

    def handler(self, event: Mapping[str, Any], context: Any) -> dict[str, list[Any]]:
        for record in event["Records"]:
            body = record["dynamodb"]
            if record["eventName"] == "REMOVE":
                self.table.delete_item(Key=self._python(body["Keys"]))
                continue
            item = self._python(body["NewImage"])
            if self.conflict_attribute is None:
                self.table.put_item(Item=item)
                continue
            try:
                self.table.put_item(
                    Item=item,
                    ConditionExpression="attribute_not_exists(#k) OR #c < :v",
                    ExpressionAttributeNames={"#k": self.key_names[0], "#c": self.conflict_attribute},
                    ExpressionAttributeValues={":v": item[self.conflict_attribute]},
                )
            except ClientError as exc:
                if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                    raise
        return {"batchItemFailures": []}
