"""The gateway serves each request from the account that signed it, reaches another account's table only by
ARN and only where its resource policy allows the caller, and refuses what the caller's policies do not allow,
with AWS's errors (DESIGN.md rule 9)."""

from __future__ import annotations

import functools
import json
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


@functools.cache
def _session() -> Any:
    """One boto3 session for this file's clients: a new session per client re-parses botocore's service models
    (~70 ms of CPU each). Every client is given its credentials, region and endpoint explicitly."""
    return boto3.session.Session()


def _client(gateway: Gateway, creds: LocalCredentials, service: str = "dynamodb", region: str = REGION) -> Any:
    return _session().client(
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


# --- review findings (task A3): what AWS always sets, duplicates, partitions, operations, STS inputs, stats -----

def _role_with(gateway: Gateway, name: str, *statements: dict[str, Any]) -> str:
    arn = f"arn:aws:iam::{SOURCE}:role/{name}"
    gateway.add_role(Role(arn, (_policy(*statements),)))
    return arn


_ALLOW_OWN = {"Effect": "Allow", "Action": "dynamodb:*", "Resource": OWN_ARN}


@pytest.mark.parametrize(("name", "condition"), [
    ("deny-region", {"StringEquals": {"aws:RequestedRegion": REGION}}),
    ("deny-direct", {"Bool": {"aws:ViaAWSService": "false"}}),
])
def test_a_deny_on_a_key_aws_always_sets_applies(gateway, name, condition):
    role = _role_with(gateway, f"gw-{name}", _ALLOW_OWN,
                      {"Effect": "Deny", "Action": "dynamodb:*", "Resource": "*", "Condition": condition})
    code, message = _error(_as(gateway, role).get_item, TableName=TABLE, Key={"pk": {"S": "x"}})
    assert code == "AccessDeniedException" and "with an explicit deny in an identity-based policy" in message


def test_an_allow_on_the_requested_region_applies(gateway):
    role = _role_with(gateway, "gw-allow-region", {**_ALLOW_OWN, "Condition": {
        "StringEquals": {"aws:RequestedRegion": REGION}}})
    _as(gateway, role).get_item(TableName=TABLE, Key={"pk": {"S": "x"}})


def test_a_condition_on_the_source_ip_cannot_be_decided_locally(gateway):
    # AWS sets aws:SourceIp on every call; the address the function would have is unknown here.
    role = _role_with(gateway, "gw-deny-ip", _ALLOW_OWN, {
        "Effect": "Deny", "Action": "dynamodb:*", "Resource": "*",
        "Condition": {"IpAddress": {"aws:SourceIp": "0.0.0.0/0"}}})
    code, message = _error(_as(gateway, role).get_item, TableName=TABLE, Key={"pk": {"S": "x"}})
    assert code == "AccessDeniedException" and "cannot be evaluated exactly" in message and "aws:SourceIp" in message


def _trusting(gateway: Gateway, name: str, condition: dict[str, Any]) -> str:
    """A role of the replica account trusting WRITER under ``condition``."""
    arn = f"arn:aws:iam::{REPLICA}:role/{name}"
    gateway.add_role(Role(arn, (), trust_policy=_policy({
        "Effect": "Allow", "Principal": {"AWS": WRITER}, "Action": ["sts:AssumeRole", "sts:SetSourceIdentity"],
        "Condition": condition})))
    return arn


def _writer_sts(gateway: Gateway, *extra_roles: str) -> Any:
    """An STS client of a role like WRITER allowed to assume ``extra_roles`` (WRITER's own policy names one)."""
    gateway.add_role(Role(WRITER, (WRITER_POLICY, _policy(
        {"Effect": "Allow", "Action": ["sts:AssumeRole", "sts:SetSourceIdentity"], "Resource": list(extra_roles)}))))
    return _client(gateway, gateway.credentials_for_role(WRITER, "test"), "sts")


def test_assume_role_passes_external_id_session_name_and_source_identity(gateway):
    by_id = _trusting(gateway, "gw-by-external-id", {"StringEquals": {"sts:ExternalId": "ext-123"}})
    by_name = _trusting(gateway, "gw-by-session", {"StringLike": {"sts:RoleSessionName": "replicator-*"}})
    by_source = _trusting(gateway, "gw-by-source", {"StringEquals": {"sts:SourceIdentity": "ada"}})
    sts = _writer_sts(gateway, by_id, by_name, by_source)
    sts.assume_role(RoleArn=by_id, RoleSessionName="s1", ExternalId="ext-123")
    assert _error(sts.assume_role, RoleArn=by_id, RoleSessionName="s1")[0] == "AccessDenied"
    sts.assume_role(RoleArn=by_name, RoleSessionName="replicator-1")
    assert _error(sts.assume_role, RoleArn=by_name, RoleSessionName="other")[0] == "AccessDenied"
    sts.assume_role(RoleArn=by_source, RoleSessionName="s1", SourceIdentity="ada")
    assert _error(sts.assume_role, RoleArn=by_source, RoleSessionName="s1")[0] == "AccessDenied"


@pytest.mark.parametrize("extra", [{"Tags": [{"Key": "team", "Value": "a"}]}, {"SerialNumber": "arn:aws:iam::"
                                   f"{SOURCE}:mfa/ada", "TokenCode": "123456"}, {"TransitiveTagKeys": ["team"]}])
def test_assume_role_refuses_parameters_it_does_not_model(gateway, extra):
    code, message = _error(_as(gateway, WRITER, "sts").assume_role, RoleArn=TARGET, RoleSessionName="s1", **extra)
    assert code == "ValidationError" and message.startswith("local runtime:") and next(iter(extra)) in message


def _loose_sts(gateway: Gateway, role: str = WRITER) -> Any:
    """An STS client without botocore's own parameter checks, so the gateway's are what answers."""
    creds = gateway.credentials_for_role(role, "test")
    return _session().client(
        "sts", region_name=REGION, endpoint_url=gateway.endpoint_url, aws_access_key_id=creds.access_key_id,
        aws_secret_access_key=creds.secret_access_key,
        config=Config(retries={"max_attempts": 1}, parameter_validation=False))


@pytest.mark.parametrize(("kwargs", "fragment"), [
    ({"RoleSessionName": "s1", "DurationSeconds": 899}, "greater than or equal to 900"),
    ({"RoleSessionName": "s1", "DurationSeconds": 3601}, "1 hour session limit for roles assumed by role chaining"),
    ({"RoleSessionName": "a"}, "'roleSessionName' failed to satisfy constraint: Member must have length greater "
                               "than or equal to 2"),
    ({"RoleSessionName": "a b"}, "Member must satisfy regular expression pattern"),
    ({"RoleSessionName": "x" * 65}, "length less than or equal to 64"),
    ({}, "Value null at 'roleSessionName'"),
])
def test_assume_role_checks_its_inputs_as_sts_does(gateway, kwargs, fragment):
    code, message = _error(_loose_sts(gateway).assume_role, RoleArn=TARGET, **kwargs)
    assert code == "ValidationError" and fragment in message, message


def test_assume_role_duration_is_bounded_by_the_roles_max_session_duration(gateway):
    operator = gateway.register_principal(f"arn:aws:iam::{REPLICA}:user/gw-sts-user", [_policy(
        {"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"})])
    long_role = f"arn:aws:iam::{REPLICA}:role/gw-long"
    trust = _policy({"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{REPLICA}:user/gw-sts-user"},
                     "Action": "sts:AssumeRole"})
    gateway.add_role(Role(long_role, (), trust_policy=trust, max_session_duration=7200))
    sts = _client(gateway, operator, "sts")
    sts.assume_role(RoleArn=long_role, RoleSessionName="s1", DurationSeconds=7200)  # not chained: up to the max
    code, message = _error(sts.assume_role, RoleArn=long_role, RoleSessionName="s1", DurationSeconds=7201)
    assert code == "ValidationError" and "exceeds the MaxSessionDuration set for this role" in message


def test_a_request_signed_for_another_service_is_refused(gateway):
    creds = gateway.credentials_for_role(WRITER, "test")
    auth = (f"AWS4-HMAC-SHA256 Credential={creds.access_key_id}/20260101/{REGION}/sts/aws4_request, "
            "SignedHeaders=host;x-amz-target, Signature=0")
    status, _, body = gateway.handle({"X-Amz-Target": "DynamoDB_20120810.GetItem", "Authorization": auth},
                                     b'{"TableName": "gw-ledger", "Key": {"pk": {"S": "x"}}}')
    assert status == 400 and b"InvalidSignatureException" in body
    assert b"Credential should be scoped to correct service: 'dynamodb'" in body


@pytest.mark.parametrize("operation", ["batch_write_item", "batch_get_item"])
def test_a_batch_naming_one_table_twice_is_refused(gateway, ddb_local, operation):
    writer = _as(gateway, WRITER)
    if operation == "batch_write_item":
        call, items = writer.batch_write_item, {TABLE: [{"PutRequest": {"Item": {"pk": {"S": "dup-a"}}}}],
                                                OWN_ARN: [{"PutRequest": {"Item": {"pk": {"S": "dup-b"}}}}]}
    else:
        call, items = writer.batch_get_item, {TABLE: {"Keys": [{"pk": {"S": "dup-a"}}]},
                                              OWN_ARN: {"Keys": [{"pk": {"S": "dup-b"}}]}}
    code, message = _error(call, RequestItems=items)
    assert code == "ValidationException" and TABLE in message and OWN_ARN in message
    assert _get(ddb_local, SOURCE, TABLE, "dup-a") is None and _get(ddb_local, SOURCE, TABLE, "dup-b") is None


def test_a_table_arn_of_another_partition_is_refused(gateway, ddb_local):
    root = _client(gateway, LocalCredentials(f"LOCAL{SOURCE}"))
    china = f"arn:aws-cn:dynamodb:{REGION}:{SOURCE}:table/{TABLE}"
    code, message = _error(root.put_item, TableName=china, Item={"pk": {"S": "cn"}})
    assert code == "ValidationException" and "aws-cn" in message
    assert _get(ddb_local, SOURCE, TABLE, "cn") is None


def test_without_iam_enforcement_a_malformed_account_is_still_refused(ddb_local):
    with Gateway(ddb_local, enforce_iam=False) as gw:
        gw.add_role(Role(OTHER, ()))
        code, message = _error(_as(gw, OTHER).get_item, TableName=f"arn:aws:dynamodb:{REGION}:12345:table/{TABLE}",
                               Key={"pk": {"S": "x"}})
        assert code == "ValidationException" and "12345" in message


def test_an_operation_the_gateway_does_not_model_is_refused(gateway):
    root = _client(gateway, LocalCredentials(f"LOCAL{SOURCE}"))
    code, message = _error(root.create_backup, TableName=TABLE, BackupName="backup-1")
    assert code == "ValidationException" and message.startswith("local runtime:") and "CreateBackup" in message
    code, message = _error(root.list_global_tables)
    assert code == "ValidationException" and "ListGlobalTables" in message


def test_get_records_with_an_iterator_of_another_region_is_refused(gateway, ddb_local):
    client = ddb_local.client(region=REGION, account=SOURCE)
    name = "gw-streamed-region"
    if name not in client.list_tables()["TableNames"]:
        client.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"})
    root = LocalCredentials(f"LOCAL{SOURCE}")
    stream_arn = _client(gateway, root).describe_table(TableName=name)["Table"]["LatestStreamArn"]
    streams = _client(gateway, root, "dynamodbstreams")
    shard = streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"][0]["ShardId"]
    iterator = streams.get_shard_iterator(StreamArn=stream_arn, ShardId=shard,
                                          ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    code, message = _error(_client(gateway, root, "dynamodbstreams", "eu-west-1").get_records, ShardIterator=iterator)
    assert code == "ValidationException" and REGION in message and "eu-west-1" in message


def test_a_changed_policy_applies_at_once(gateway):
    # Decisions may be memoised; a role's new policies, and a table's new resource policy, decide the next call.
    missing = f"arn:aws:dynamodb:{REGION}:{SOURCE}:table/gw-changing"  # authorized first, then not found
    role = _role_with(gateway, "gw-changing", {"Effect": "Allow", "Action": "dynamodb:GetItem", "Resource": missing})
    client = _as(gateway, role)
    assert _error(client.get_item, TableName="gw-changing", Key={"pk": {"S": "x"}})[0] == "ResourceNotFoundException"
    gateway.add_role(Role(role, (_policy({"Effect": "Allow", "Action": "dynamodb:PutItem", "Resource": missing}),)))
    assert _error(client.get_item, TableName="gw-changing", Key={"pk": {"S": "x"}})[0] == "AccessDeniedException"
    gateway.set_resource_policy(missing, _policy({"Effect": "Allow", "Principal": {"AWS": role},
                                                 "Action": "dynamodb:GetItem", "Resource": missing}))
    assert _error(client.get_item, TableName="gw-changing", Key={"pk": {"S": "x"}})[0] == "ResourceNotFoundException"


def test_denials_keep_the_newest_and_count_them_all(ddb_local):
    with Gateway(ddb_local) as gw:
        role = f"arn:aws:iam::{SOURCE}:role/gw-nothing"
        gw.add_role(Role(role, ()))
        key = gw.credentials_for_role(role, "test").access_key_id
        auth = f"AWS4-HMAC-SHA256 Credential={key}/20260101/{REGION}/dynamodb/aws4_request, Signature=0"
        for i in range(1050):
            body = json.dumps({"TableName": f"gw-t{i}", "Key": {"pk": {"S": "x"}}}).encode()
            status, _, _ = gw.handle({"X-Amz-Target": "DynamoDB_20120810.GetItem", "Authorization": auth}, body)
            assert status == 400
        assert gw.stats.denied == 1050 and gw.stats.requests == 1050
        assert len(gw.stats.denials) == 1000
        assert "table/gw-t50 " in gw.stats.denials[0] and "table/gw-t1049 " in gw.stats.denials[-1]


def test_counters_and_identities_change_only_under_the_lock(ddb_local):
    # Requests are served by many threads: a counter or an identity written outside the lock can be lost.
    # (Checked deterministically: every write asserts the gateway's lock is held.)
    with Gateway(ddb_local) as gw:
        unlocked: list[str] = []

        class Guarded(type(gw.stats)):  # type: ignore[misc]
            def __setattr__(self, name: str, value: Any) -> None:
                if not gw._lock.locked():
                    unlocked.append(f"stats.{name}")
                super().__setattr__(name, value)

        class GuardedDict(dict):  # type: ignore[type-arg]
            def __setitem__(self, key: Any, value: Any) -> None:
                if not gw._lock.locked():
                    unlocked.append("identities")
                super().__setitem__(key, value)

        gw.stats = Guarded()
        gw._identities = GuardedDict(gw._identities)
        unlocked.clear()  # the counters' own construction
        creds = gw.register_principal(f"arn:aws:iam::{SOURCE}:user/gw-locked", [_policy(
            {"Effect": "Allow", "Action": "dynamodb:ListTables", "Resource": "*"})])
        _client(gw, creds).list_tables()
        _error(_client(gw, creds).get_item, TableName=TABLE, Key={"pk": {"S": "x"}})
        assert (gw.stats.requests, gw.stats.forwarded, gw.stats.denied) == (2, 1, 1)
        assert unlocked == []
