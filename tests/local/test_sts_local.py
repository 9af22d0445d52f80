"""The local STS hands out the role account's credentials, and refuses roles the deployment lacks."""

from __future__ import annotations

import boto3
import pytest
from botocore.exceptions import ClientError

from cdk_replication.local import LocalSts, credentials_for_account

ROLE = "arn:aws:iam::222222222222:role/writer"


@pytest.fixture
def sts():
    server = LocalSts(known_roles={ROLE})
    yield server
    server.close()


def _client(sts):
    creds = credentials_for_account("111111111111")
    return boto3.session.Session().client("sts", region_name="us-east-1", endpoint_url=sts.endpoint_url,
                                          aws_access_key_id=creds.access_key_id,
                                          aws_secret_access_key=creds.secret_access_key)


def test_assume_role_returns_the_role_accounts_key(sts):
    answer = _client(sts).assume_role(RoleArn=ROLE, RoleSessionName="replicator")
    assert answer["Credentials"]["AccessKeyId"] == credentials_for_account("222222222222").access_key_id
    assert answer["AssumedRoleUser"]["Arn"] == "arn:aws:sts::222222222222:assumed-role/writer/replicator"
    assert _client(sts).get_caller_identity()["Account"] == "111111111111"


def test_unknown_role_is_denied(sts):
    with pytest.raises(ClientError, match="AccessDenied"):
        _client(sts).assume_role(RoleArn="arn:aws:iam::222222222222:role/other", RoleSessionName="session")
