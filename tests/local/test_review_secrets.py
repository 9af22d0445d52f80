"""Adversarial review of the local Secrets Manager (issue 15, rule 9): each test states what AWS does and is
marked ``xfail(strict=True)`` while the local runtime is kinder (review r15a)."""

from __future__ import annotations

from pathlib import Path

import aws_cdk as cdk
import pytest
from aws_cdk import aws_secretsmanager as secretsmanager

from cdk_replication.local import deploy
from cdk_replication.local.intrinsics import TemplateError

ACCOUNT, REGION, NAME = "777777777777", "us-east-1", "cdk-replication/Review/hmac-key"


def _assembly(outdir: Path, with_secret: bool) -> Path:
    """One stack, holding (or no longer holding) a named, retained, generated secret -- the shape of
    ``replicated_table.hmac_secret``."""
    app = cdk.App(outdir=str(outdir))
    stack = cdk.Stack(app, "ReviewSecrets", env=cdk.Environment(account=ACCOUNT, region=REGION))
    if with_secret:
        secretsmanager.Secret(stack, "TransformSecret", secret_name=NAME, removal_policy=cdk.RemovalPolicy.RETAIN,
                              generate_secret_string=secretsmanager.SecretStringGenerator(
                                  password_length=64, exclude_punctuation=True))
    else:
        cdk.CfnOutput(stack, "Nothing", value="none")  # a stack that no longer has the secret
    app.synth()
    return outdir


def test_a_new_secret_resource_with_the_name_of_a_retained_secret_fails_as_on_aws(ddb_local, tmp_path):
    """The construct names the generated HMAC secret and retains it. Once it has left the stack (the last
    ``hmac`` mask removed, or ``cdk destroy``), the name still exists in the account, so a later deploy that
    adds the secret again is a NEW resource whose CreateSecret fails on AWS ("ResourceExistsException: ... a
    secret with this name already exists"), and the stack rolls back. The local deploy instead adopts the
    retained secret silently (``_create_secret`` keeps any existing value), so no local test can see that
    re-adding a masked replica -- or redeploying a destroyed dev stack -- fails on AWS (rule 9). Tables do
    fail locally the same way (DynamoDB Local's ResourceInUseException)."""
    with_secret = _assembly(tmp_path / "a", True)
    without = _assembly(tmp_path / "b", False)
    with deploy(with_secret, ddb_local) as deployment:
        assert deployment.secrets.get(NAME, region=REGION, account=ACCOUNT) is not None
        deployment.update(without)  # retained: the secret stays in the account
        assert deployment.secrets.get(NAME, region=REGION, account=ACCOUNT) is not None
        with pytest.raises(TemplateError, match="already exists"):
            deployment.update(with_secret)  # a new resource of that name
