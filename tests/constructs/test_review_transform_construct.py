"""Adversarial review of the replica transform's construct side (issue 15, rules 8 and 10): each test states
what the construct must guarantee and is marked ``xfail(strict=True)`` while the merged code does not
(review r15a). The lead assigns the fixes; a fix turns its test into an XPASS, which fails the suite until
the mark goes."""

from __future__ import annotations

import json
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_dynamodb as dynamodb

from cdk_replication import Filter, Mask, ReplicatedTable, ReplicaTransform, ReplicationConfigError, TableLocation
from construct_helpers import OTHER_ACCOUNT, PK, SOURCE_ACCOUNT, resources_of_type

SOURCE_STACK, MASKED_STACK = "Employee-us-west-2", f"Employee-{OTHER_ACCOUNT}-eu-west-1"
EMAIL = dynamodb.Attribute(name="email", type=dynamodb.AttributeType.STRING)
GSI = dynamodb.GlobalSecondaryIndexProps(index_name="by-email", partition_key=EMAIL)


def _table(app: cdk.App, transform: ReplicaTransform, **props: Any) -> ReplicatedTable:
    return ReplicatedTable(
        app, "Employee",
        source=TableLocation(region="us-west-2", account=SOURCE_ACCOUNT),
        replicas=[TableLocation(region="eu-west-1", account=OTHER_ACCOUNT, transform=transform)],
        partition_key=PK, global_secondary_indexes=[GSI], **props,
    )


def test_an_empty_redaction_of_an_index_key_is_refused() -> None:
    """The index-key check compares only the constant's type. DynamoDB refuses an empty string or binary as
    a secondary index key ("A value specified for a secondary index key is not supported", checked against
    DynamoDB Local), so every write of a masked item would fail and go to the failure destination."""
    with pytest.raises(ReplicationConfigError, match="email"):
        _table(cdk.App(), ReplicaTransform(masks={"email": Mask.redact("")}))


@pytest.mark.parametrize(("key_type", "constant", "problem"), [
    (dynamodb.AttributeType.STRING, "x" * 1025, "1,025 bytes"),
    (dynamodb.AttributeType.BINARY, b"", "empty"),
    (dynamodb.AttributeType.NUMBER, {"N": "not-a-number"}, "not a number"),
    (dynamodb.AttributeType.NUMBER, {"N": "1" * 39}, "38 digits"),
])
def test_a_redaction_invalid_as_an_index_key_value_is_refused(key_type: Any, constant: Any, problem: str) -> None:
    gsi = dynamodb.GlobalSecondaryIndexProps(index_name="by-code",
                                             partition_key=dynamodb.Attribute(name="code", type=key_type))
    with pytest.raises(ReplicationConfigError, match=problem):
        ReplicatedTable(cdk.App(), "Employee", source=TableLocation(region="us-west-2", account=SOURCE_ACCOUNT),
                        replicas=[TableLocation(region="eu-west-1", account=OTHER_ACCOUNT,
                                                transform=ReplicaTransform(masks={"code": Mask.redact(constant)}))],
                        partition_key=PK, global_secondary_indexes=[gsi])


def test_a_valid_redaction_of_an_index_key_passes() -> None:
    _table(cdk.App(), ReplicaTransform(masks={"email": Mask.redact("x" * 1024)}))


@pytest.mark.parametrize("condition", [
    Filter.eq("ssn", "078-05-1120"),
    Filter.is_in("ssn", ["078-05-1120", "219-09-9999"]),
    Filter.compare("begins_with", "ssn", "078-"),
    Filter.eq("status", "active") & ~Filter.ne("ssn", "078-05-1120"),  # nested
])
def test_a_filter_that_pins_a_masked_attribute_is_refused(condition: Filter) -> None:
    """Rule 10: no original masked value reaches the target account. A replica filtered on ``ssn = X`` with
    ``ssn`` hashed (or redacted, or removed) holds only items whose ``ssn`` is ``X`` -- the target knows the
    masked value of every item it holds (with ``in``/``begins_with``: one of a few values, or a prefix), and
    with ``hmac`` it also learns ``H(X)`` for the joins. Synth accepts it without a word; it should refuse
    (or at least demand an explicit acknowledgement) with the fix: filter on another attribute."""
    with pytest.raises(ReplicationConfigError, match="ssn"):
        _table(cdk.App(), ReplicaTransform(filter=condition, masks={"ssn": Mask.hmac()}))


def test_a_filter_on_the_presence_of_a_masked_attribute_passes() -> None:
    """Presence is no value: a hashed or redacted attribute shows it anyway."""
    _table(cdk.App(), ReplicaTransform(filter=Filter.exists("ssn") & Filter.eq("status", "active"),
                                       masks={"ssn": Mask.hmac()}))


def test_the_replica_tag_does_not_confirm_guesses_of_the_spec(tmp_path) -> None:
    """The target account reads its table's ``cdk-replication:transform`` tag (and its own stack's template).
    The tag is ``sha256(canonical spec without secretArn)``: every value in it (filter constants, redaction
    constants) is guessable offline from the shape the replica's data shows (hashed attributes look like 64
    hex digits). Here a replica leaves out one customer; 100 guesses find which one from the tag alone. A
    keyed digest (HMAC under the transform secret, or a random salt kept in the source account) would not
    let the target confirm anything, and the CLI, which reads the published spec and the secret, can still
    check it."""
    excluded = "tenant-0042"
    transform = ReplicaTransform(filter=Filter.ne("tenant", excluded), masks={"email": Mask.hmac()})
    app = cdk.App(outdir=str(tmp_path))
    _table(app, transform)
    target = app.synth().get_stack_by_name(MASKED_STACK).template
    assert excluded not in json.dumps(target)  # the value itself is not in the target's template...
    (replica,) = resources_of_type(target, "AWS::DynamoDB::Table").values()
    (tag,) = [t["Value"] for t in replica["Properties"]["Tags"] if t["Key"] == "cdk-replication:transform"]
    # ...but the attacker's dictionary attack: the spec skeleton, one guess per candidate tenant.
    confirmed = [guess for guess in (f"tenant-{i:04d}" for i in range(100))
                 if ReplicaTransform(filter=Filter.ne("tenant", guess), masks={"email": Mask.hmac()})
                 .to_spec(["Id"], None)["digest"] == tag]
    assert confirmed == []  # fails: ['tenant-0042']


@pytest.mark.parametrize(("secret_arn", "problem"), [
    (cdk.Fn.import_value("HmacSecretArn"), "secret_arn is a token"),
    ("hmac-key", "not a Secrets Manager secret ARN"),
], ids=["token", "plain-name"])  # a token's text differs per process: xdist workers must collect the same ids
def test_a_secret_arn_that_is_no_literal_secret_arn_is_refused_with_its_own_reason(secret_arn: str,
                                                                                  problem: str) -> None:
    """A token ``secret_arn`` was refused by the replicator's environment check with "pass literal table names,
    regions and accounts", which names neither the prop nor the fix."""
    with pytest.raises(ReplicationConfigError, match=problem) as refused:
        _table(cdk.App(), ReplicaTransform(masks={"email": Mask.hmac()}, secret_arn=secret_arn))
    assert "table names" not in str(refused.value)


def test_a_retained_secret_is_reused_by_its_literal_arn(tmp_path) -> None:
    """The documented path after the generated secret was retained (a stack destroyed, the last hmac mask
    removed): give its ARN, and the stack references it (no new secret, which CreateSecret would refuse)."""
    arn = f"arn:aws:secretsmanager:us-west-2:{SOURCE_ACCOUNT}:secret:cdk-replication/Employee/hmac-key-AbCdEf"
    app = cdk.App(outdir=str(tmp_path))
    _table(app, ReplicaTransform(masks={"email": Mask.hmac()}, secret_arn=arn))
    source = app.synth().get_stack_by_name(SOURCE_STACK).template
    assert resources_of_type(source, "AWS::SecretsManager::Secret") == {}
    assert arn in json.dumps(source)
