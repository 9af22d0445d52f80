"""Secrets Manager in the local runtime: secrets served by the gateway on Secrets Manager's API to boto3, per
account and region, with IAM evaluated on the secret's full ARN however the request names it (DESIGN.md rule 9:
never kinder than AWS)."""

from __future__ import annotations

import string
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from cdk_replication.local import DynamoDBLocal, Gateway
from cdk_replication.local.secrets import SecretError, SecretService, SecretStore, generate_value

REGION = "eu-west-1"
ACCOUNT, OTHER_ACCOUNT = "444444444444", "555555555555"
NAME = "cdk-replication/Orders/hmac-key"
PARTIAL = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:{NAME}"


def _client(gateway: Gateway, key: str, region: str = REGION) -> Any:
    return boto3.client("secretsmanager", endpoint_url=gateway.endpoint_url, region_name=region,
                        aws_access_key_id=key, aws_secret_access_key="local")


@pytest.fixture
def served(ddb_local: DynamoDBLocal) -> Iterator[tuple[Gateway, SecretStore]]:
    store = SecretStore()
    with Gateway(ddb_local) as gateway:
        gateway.add_service(SecretService(store))
        yield gateway, store


def _code(call: Any) -> str:
    with pytest.raises(ClientError) as error:
        call()
    return error.value.response["Error"]["Code"]


def test_boto3_reads_a_secret_by_name_full_arn_and_partial_arn(served):
    gateway, store = served
    stored = store.put(NAME, "k3y", region=REGION, account=ACCOUNT)
    assert stored.arn.startswith(PARTIAL + "-") and len(stored.arn) == len(PARTIAL) + 7
    root = _client(gateway, f"LOCAL{ACCOUNT}")
    for secret_id in (NAME, stored.arn, PARTIAL):
        answer = root.get_secret_value(SecretId=secret_id)
        assert (answer["SecretString"], answer["ARN"], answer["Name"]) == ("k3y", stored.arn, NAME)
    assert _code(lambda: root.get_secret_value(SecretId="missing")) == "ResourceNotFoundException"
    # Another account's namespace is its own; its ARN is not reachable (no resource policies here).
    other = _client(gateway, f"LOCAL{OTHER_ACCOUNT}")
    assert _code(lambda: other.get_secret_value(SecretId=NAME)) == "ResourceNotFoundException"
    assert _code(lambda: other.get_secret_value(SecretId=stored.arn)) == "AccessDeniedException"
    assert gateway.endpoint_env()["AWS_ENDPOINT_URL_SECRETS_MANAGER"] == gateway.endpoint_url


def test_iam_is_evaluated_on_the_full_arn(served):
    """The construct grants ``<partial ARN>-??????``: it matches the secret's full ARN, asked by partial ARN."""
    gateway, store = served
    store.put(NAME, "k3y", region=REGION, account=ACCOUNT)
    other = store.put("someone-elses", "x", region=REGION, account=ACCOUNT)
    creds = gateway.register_principal(f"arn:aws:iam::{ACCOUNT}:role/replicator", [{"Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": PARTIAL + "-??????"}]}])
    replicator = _client(gateway, creds.access_key_id)
    assert replicator.get_secret_value(SecretId=PARTIAL)["SecretString"] == "k3y"
    assert _code(lambda: replicator.get_secret_value(SecretId=other.arn)) == "AccessDeniedException"
    assert _code(lambda: replicator.get_secret_value(SecretId="someone-elses")) == "AccessDeniedException"
    nothing = gateway.register_principal(f"arn:aws:iam::{ACCOUNT}:role/no-grant", [])
    assert _code(lambda: _client(gateway, nothing.access_key_id).get_secret_value(SecretId=PARTIAL)) == \
        "AccessDeniedException"


def test_only_get_secret_value_is_served(served):
    gateway, _ = served
    root = _client(gateway, f"LOCAL{ACCOUNT}")
    assert _code(lambda: root.create_secret(Name="x", SecretString="y")) == "ValidationException"


def test_generated_values_follow_generate_secret_string():
    value = generate_value({"PasswordLength": 64, "ExcludePunctuation": True, "IncludeSpace": False})
    assert len(value) == 64 and set(value) <= set(string.ascii_letters + string.digits)
    assert generate_value({"PasswordLength": 64, "ExcludePunctuation": True}) != value
    assert len(generate_value({})) == 32
    assert set(generate_value({"ExcludeCharacters": "abc", "ExcludeUppercase": "true", "ExcludeNumbers": True,
                               "ExcludePunctuation": True})) <= set(string.ascii_lowercase) - set("abc")
    with pytest.raises(SecretError, match="JSON secret"):
        generate_value({"SecretStringTemplate": "{}", "GenerateStringKey": "password"})
