"""The gateway serves each request from the account that signed it, reaches another account's table only by
ARN and only where its resource policy allows the caller, and refuses what the caller's policies do not allow,
with AWS's errors (DESIGN.md rule 9)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from cdk_replication.local import DynamoDBLocal, Gateway, LocalCredentials, Role

REGION = "us-east-1"
SOURCE, REPLICA = "111111111111", "222222222222"
WRITER = f"arn:aws:iam::{SOURCE}:role/gw-writer"
OTHER = f"arn:aws:iam::{SOURCE}:role/gw-other"
TARGET = f"arn:aws:iam::{REPLICA}:role/gw-target"
TABLE, OPEN_TABLE = "gw-ledger", "gw-open"
REPLICA_ARN = f"arn:aws:dynamodb:{REGION}:{REPLICA}:table/{TABLE}"
OPEN_ARN = f"arn:aws:dynamodb:{REGION}:{REPLICA}:table/{OPEN_TABLE}"
OWN_ARN = f"arn:aws:dynamodb:{REGION}:{SOURCE}:table/{TABLE}"

_ACTIONS = ["dynamodb:PutItem", "dynamodb:BatchWriteItem", "dynamodb:GetItem", "dynamodb:BatchGetItem",
            "dynamodb:DescribeTable", "dynamodb:Query"]


def _policy(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


#: What the replicator's role carries: item actions on its own table, the replica and the open table (index
#: reads only on the own table's index).
WRITER_POLICY = _policy(
    {"Effect": "Allow", "Action": _ACTIONS, "Resource": [OWN_ARN, REPLICA_ARN, OPEN_ARN]},
    {"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": TARGET},
)
#: The replica's resource policy, as replicated_table.py's _only_role writes it: the account as principal and
#: the role as an ArnEquals condition on aws:PrincipalArn.
RESOURCE_POLICY = _policy({
    "Effect": "Allow",
    "Principal": {"AWS": f"arn:aws:iam::{SOURCE}:root"},
    "Action": _ACTIONS,
    "Resource": REPLICA_ARN,
    "Condition": {"ArnEquals": {"aws:PrincipalArn": WRITER}},
})


def _create(ddb: DynamoDBLocal, account: str, name: str) -> None:
    client = ddb.client(region=REGION, account=account)
    if name in client.list_tables()["TableNames"]:
        return
    client.create_table(
        TableName=name, BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                              {"AttributeName": "email", "AttributeType": "S"}],
        GlobalSecondaryIndexes=[{"IndexName": "byEmail", "KeySchema": [{"AttributeName": "email", "KeyType": "HASH"}],
                                 "Projection": {"ProjectionType": "ALL"}}],
    )


@pytest.fixture(scope="module")
def gateway(ddb_local: DynamoDBLocal) -> Iterator[Gateway]:
    for account, name in ((SOURCE, TABLE), (REPLICA, TABLE), (REPLICA, OPEN_TABLE)):
        _create(ddb_local, account, name)
    with Gateway(ddb_local) as gw:
        gw.add_role(Role(WRITER, (WRITER_POLICY,)))
        gw.add_role(Role(OTHER, (WRITER_POLICY,)))
        gw.add_role(Role(TARGET, (_policy({"Effect": "Allow", "Action": "dynamodb:*", "Resource": "*"}),),
                         trust_policy=_policy({"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{SOURCE}:root"},
                                               "Action": "sts:AssumeRole",
                                               "Condition": {"ArnEquals": {"aws:PrincipalArn": WRITER}}})))
        gw.set_resource_policy(REPLICA_ARN, RESOURCE_POLICY)
        yield gw


def _client(gateway: Gateway, creds: LocalCredentials, service: str = "dynamodb", region: str = REGION) -> Any:
    return boto3.session.Session().client(
        service, region_name=region, endpoint_url=gateway.endpoint_url, aws_access_key_id=creds.access_key_id,
        aws_secret_access_key=creds.secret_access_key, config=Config(retries={"max_attempts": 1}))


def _as(gateway: Gateway, role: str, service: str = "dynamodb", region: str = REGION) -> Any:
    return _client(gateway, gateway.credentials_for_role(role, "test"), service, region)


def _error(call: Any, **kwargs: Any) -> tuple[str, str]:
    with pytest.raises(ClientError) as info:
        call(**kwargs)
    return info.value.response["Error"]["Code"], info.value.response["Error"]["Message"]


def _get(ddb: DynamoDBLocal, account: str, table: str, pk: str) -> dict[str, Any] | None:
    return ddb.client(region=REGION, account=account).get_item(TableName=table, Key={"pk": {"S": pk}}).get("Item")


def test_a_plain_name_is_the_signers_accounts_table(gateway, ddb_local):
    _as(gateway, WRITER).put_item(TableName=TABLE, Item={"pk": {"S": "plain"}})
    assert _get(ddb_local, SOURCE, TABLE, "plain") is not None
    assert _get(ddb_local, REPLICA, TABLE, "plain") is None


def test_a_plain_name_never_reaches_another_account(gateway, ddb_local):
    # gw-open exists only in the replica account: by plain name the caller's account has no such table.
    code, _ = _error(_client(gateway, LocalCredentials(f"LOCAL{SOURCE}")).get_item, TableName=OPEN_TABLE,
                     Key={"pk": {"S": "x"}})
    assert code == "ResourceNotFoundException"


def test_another_accounts_table_by_arn_where_its_resource_policy_allows(gateway, ddb_local):
    _as(gateway, WRITER).put_item(TableName=REPLICA_ARN, Item={"pk": {"S": "by-arn"}})
    assert _get(ddb_local, REPLICA, TABLE, "by-arn") is not None
    assert _get(ddb_local, SOURCE, TABLE, "by-arn") is None


def test_another_accounts_table_without_a_resource_policy_is_refused(gateway, ddb_local):
    code, message = _error(_as(gateway, WRITER).put_item, TableName=OPEN_ARN, Item={"pk": {"S": "no-policy"}})
    assert code == "AccessDeniedException"
    assert message == (f"User: arn:aws:sts::{SOURCE}:assumed-role/gw-writer/test is not authorized to perform: "
                       f"dynamodb:PutItem on resource: {OPEN_ARN} because no resource-based policy allows the "
                       "dynamodb:PutItem action")
    assert _get(ddb_local, REPLICA, OPEN_TABLE, "no-policy") is None


def test_another_role_of_the_allowed_account_is_refused(gateway, ddb_local):
    code, message = _error(_as(gateway, OTHER).put_item, TableName=REPLICA_ARN, Item={"pk": {"S": "other"}})
    assert code == "AccessDeniedException" and "because no resource-based policy allows" in message
    assert _get(ddb_local, REPLICA, TABLE, "other") is None


def test_an_action_the_identity_policy_does_not_allow_is_refused(gateway, ddb_local):
    _as(gateway, WRITER).put_item(TableName=TABLE, Item={"pk": {"S": "keep"}})
    code, message = _error(_as(gateway, WRITER).delete_item, TableName=TABLE, Key={"pk": {"S": "keep"}})
    assert code == "AccessDeniedException"
    assert message.endswith(f"dynamodb:DeleteItem on resource: {OWN_ARN} because no identity-based policy allows "
                            "the dynamodb:DeleteItem action")
    assert _get(ddb_local, SOURCE, TABLE, "keep") is not None


def test_an_index_is_its_own_resource(gateway):
    code, message = _error(_as(gateway, WRITER).query, TableName=TABLE, IndexName="byEmail",
                           KeyConditionExpression="email = :e", ExpressionAttributeValues={":e": {"S": "a"}})
    assert code == "AccessDeniedException" and f"{OWN_ARN}/index/byEmail" in message
    _as(gateway, WRITER).query(TableName=TABLE, KeyConditionExpression="pk = :p",
                               ExpressionAttributeValues={":p": {"S": "a"}})  # the table itself is allowed


def test_responses_name_tables_as_the_caller_did(gateway):
    writer = _as(gateway, WRITER)
    written = writer.batch_write_item(RequestItems={REPLICA_ARN: [{"PutRequest": {"Item": {"pk": {"S": "b1"}}}}]},
                                      ReturnConsumedCapacity="TOTAL")
    assert written["UnprocessedItems"] == {}
    assert [c["TableName"] for c in written["ConsumedCapacity"]] == [REPLICA_ARN]
    read = writer.batch_get_item(RequestItems={REPLICA_ARN: {"Keys": [{"pk": {"S": "b1"}}]}},
                                 ReturnConsumedCapacity="TOTAL")
    assert list(read["Responses"]) == [REPLICA_ARN] and read["Responses"][REPLICA_ARN] == [{"pk": {"S": "b1"}}]
    assert [c["TableName"] for c in read["ConsumedCapacity"]] == [REPLICA_ARN]


def test_describe_table_answers_the_real_arn(gateway):
    by_arn = _as(gateway, WRITER).describe_table(TableName=REPLICA_ARN)["Table"]
    assert (by_arn["TableName"], by_arn["TableArn"]) == (TABLE, REPLICA_ARN)
    assert _as(gateway, WRITER).describe_table(TableName=TABLE)["Table"]["TableArn"] == OWN_ARN


def test_an_unknown_access_key_is_unrecognized(gateway):
    code, _ = _error(_client(gateway, LocalCredentials("AKIAUNKNOWN")).list_tables)
    assert code == "UnrecognizedClientException"


def test_a_table_arn_of_another_region_is_refused(gateway):
    code, message = _error(_as(gateway, WRITER, region="eu-west-1").get_item, TableName=REPLICA_ARN,
                           Key={"pk": {"S": "x"}})
    assert code == "ValidationException" and "us-east-1" in message and "eu-west-1" in message


def test_one_request_for_tables_of_two_accounts_is_a_local_runtime_error(gateway):
    code, message = _error(_as(gateway, WRITER).batch_get_item, RequestItems={
        TABLE: {"Keys": [{"pk": {"S": "x"}}]}, REPLICA_ARN: {"Keys": [{"pk": {"S": "x"}}]}})
    assert code == "ValidationException" and message.startswith("local runtime:")


def test_assume_role_needs_the_trust_policy_and_gives_the_roles_session(gateway, ddb_local):
    sts = _as(gateway, WRITER, "sts")
    creds = sts.assume_role(RoleArn=TARGET, RoleSessionName="s1")["Credentials"]
    session = LocalCredentials(creds["AccessKeyId"], creds["SecretAccessKey"])
    identity = _client(gateway, session, "sts").get_caller_identity()
    assert identity["Arn"] == f"arn:aws:sts::{REPLICA}:assumed-role/gw-target/s1"
    assert identity["Account"] == REPLICA
    _client(gateway, session).put_item(TableName=TABLE, Item={"pk": {"S": "assumed"}})  # the role's account
    assert _get(ddb_local, REPLICA, TABLE, "assumed") is not None

    code, message = _error(_as(gateway, OTHER, "sts").assume_role, RoleArn=TARGET, RoleSessionName="s2")
    assert code == "AccessDenied" and "sts:AssumeRole" in message and OTHER.split("/")[-1] in message
    code, _ = _error(sts.assume_role, RoleArn=f"arn:aws:iam::{REPLICA}:role/not-deployed", RoleSessionName="s3")
    assert code == "AccessDenied"


def test_a_registered_operator_acts_with_its_own_policies(gateway, ddb_local):
    operator = gateway.register_principal(f"arn:aws:iam::{SOURCE}:user/operator", [
        _policy({"Effect": "Allow", "Action": "dynamodb:GetItem", "Resource": "*"})])
    client = _client(gateway, operator)
    client.get_item(TableName=TABLE, Key={"pk": {"S": "plain"}})
    code, _ = _error(client.put_item, TableName=TABLE, Item={"pk": {"S": "op"}})
    assert code == "AccessDeniedException"


def test_without_iam_enforcement_accounts_still_hold(ddb_local):
    with Gateway(ddb_local, enforce_iam=False) as gw:
        gw.add_role(Role(OTHER, ()))
        client = _as(gw, OTHER)
        client.put_item(TableName=TABLE, Item={"pk": {"S": "unenforced"}})  # no policy, no refusal
        assert _get(ddb_local, SOURCE, TABLE, "unenforced") is not None
        code, _ = _error(client.get_item, TableName=OPEN_TABLE, Key={"pk": {"S": "x"}})
        assert code == "ResourceNotFoundException"


def test_streams_calls_name_the_real_stream_arn_and_need_the_stream_actions(gateway, ddb_local):
    client = ddb_local.client(region=REGION, account=SOURCE)
    name = "gw-streamed"
    if name not in client.list_tables()["TableNames"]:
        client.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"})
    client.put_item(TableName=name, Item={"pk": {"S": "s1"}})
    table_arn = f"arn:aws:dynamodb:{REGION}:{SOURCE}:table/{name}"
    reader = f"arn:aws:iam::{SOURCE}:role/gw-stream-reader"
    gateway.add_role(Role(reader, (_policy(
        {"Effect": "Allow", "Action": ["dynamodb:DescribeStream", "dynamodb:GetShardIterator", "dynamodb:GetRecords"],
         "Resource": f"{table_arn}/stream/*"},
        {"Effect": "Allow", "Action": ["dynamodb:ListStreams", "dynamodb:DescribeTable"], "Resource": "*"}),)))
    streams = _as(gateway, reader, "dynamodbstreams")
    stream_arn = _as(gateway, reader).describe_table(TableName=name)["Table"]["LatestStreamArn"]
    assert stream_arn.startswith(f"{table_arn}/stream/")
    assert [s["StreamArn"] for s in streams.list_streams(TableName=name)["Streams"]] == [stream_arn]
    description = streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]
    assert description["StreamArn"] == stream_arn
    shard = description["Shards"][0]["ShardId"]
    iterator = streams.get_shard_iterator(StreamArn=stream_arn, ShardId=shard,
                                          ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    records: list[dict[str, Any]] = []
    for _ in range(5):  # an empty page may come first; NextShardIterator goes through the gateway too
        page = streams.get_records(ShardIterator=iterator)
        records += page["Records"]
        iterator = page["NextShardIterator"]
    assert records and records[0]["dynamodb"]["Keys"] == {"pk": {"S": "s1"}}
    assert records[0]["awsRegion"] == REGION  # DynamoDB Local says "ddblocal"

    code, message = _error(_as(gateway, WRITER, "dynamodbstreams").describe_stream, StreamArn=stream_arn)
    assert code == "AccessDeniedException" and "dynamodb:DescribeStream" in message and stream_arn in message
