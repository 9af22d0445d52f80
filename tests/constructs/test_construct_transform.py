"""Replica transforms (issue 15): the spec in REPLICATION_TARGETS and the published parameter, the replica's
digest tag, the HMAC secret in the source's stack and the replicator's one permission on it, cdk-nag and
cfn-lint, and the synth-time checks that name the construct, the value and the fix."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_dynamodb as dynamodb
from cfnlint.api import lint_all

from cdk_replication import (
    Filter,
    Mask,
    MigrationOptions,
    ReplicatedTable,
    ReplicaTransform,
    ReplicationConfigError,
    ReplicationMode,
    TableLocation,
)
from cdk_replication._lambda.replicator.transform import Transform, spec_digest
from construct_helpers import (
    OTHER_ACCOUNT,
    PK,
    SOURCE_ACCOUNT,
    Synthesized,
    replicator_config,
    resources_of_type,
    role_statements,
    synth,
)

SOURCE_STACK, MASKED_STACK, EXACT_STACK = "Employee-us-west-2", f"Employee-{OTHER_ACCOUNT}-eu-west-1", "Employee-us-east-1"
EMAIL = dynamodb.Attribute(name="email", type=dynamodb.AttributeType.STRING)
GSI = dynamodb.GlobalSecondaryIndexProps(index_name="by-email", partition_key=EMAIL)
TRANSFORM = ReplicaTransform(
    filter=Filter.eq("status", "active") & ~Filter.exists("deletedAt"),
    drop=["address"],
    masks={"email": Mask.hmac(), "Id": Mask.hmac(), "name": Mask.redact()},
)
USER_SECRET = f"arn:aws:secretsmanager:us-west-2:{SOURCE_ACCOUNT}:secret:employee-hmac-AbCdEf"
#: The generated secret's ARN without its random suffix: literal at synth, accepted by GetSecretValue.
GENERATED_SECRET = f"arn:aws:secretsmanager:us-west-2:{SOURCE_ACCOUNT}:secret:cdk-replication/Employee/hmac-key"


def _table(app: cdk.App, replicas: list[TableLocation], **props: Any) -> ReplicatedTable:
    return ReplicatedTable(
        app, "Employee",
        source=TableLocation(region="us-west-2", account=SOURCE_ACCOUNT),
        replicas=replicas, partition_key=PK, global_secondary_indexes=[GSI], **props,
    )


@pytest.fixture(scope="module")
def masked(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    """A masked, filtered replica in another account, and an exact copy in another region."""
    return synth(tmp_path_factory.mktemp("transform"), lambda app: _table(app, [
        TableLocation(region="eu-west-1", account=OTHER_ACCOUNT, transform=TRANSFORM),
        TableLocation(region="us-east-1"),
    ]))


def _targets(template: dict[str, Any]) -> list[dict[str, Any]]:
    (function,) = [f for f in resources_of_type(template, "AWS::Lambda::Function").values()
                   if "REPLICATION_TARGETS" in f["Properties"].get("Environment", {}).get("Variables", {})]
    raw = function["Properties"]["Environment"]["Variables"]["REPLICATION_TARGETS"]
    return json.loads(raw)


def _secret_id(template: dict[str, Any]) -> str:
    (logical_id,) = resources_of_type(template, "AWS::SecretsManager::Secret")
    return logical_id


def test_the_spec_reaches_the_replicator_with_the_generated_secret(masked: Synthesized) -> None:
    source = masked.template_json(SOURCE_STACK)
    secret = _secret_id(source)
    by_region = {t["region"]: t for t in _targets(source)}
    assert "transform" not in by_region["us-east-1"]
    spec = by_region["eu-west-1"]["transform"]
    assert spec["secretArn"] == GENERATED_SECRET
    assert source["Resources"][secret]["Properties"]["Name"] == "cdk-replication/Employee/hmac-key"
    assert spec == TRANSFORM.to_spec(["Id"], spec["secretArn"])
    assert spec["masks"] == {"Id": {"kind": "hmac"}, "email": {"kind": "hmac"},
                             "name": {"kind": "redact", "value": {"S": "REDACTED"}}}
    assert spec["digest"] == spec_digest(spec)
    # What the replicator will do with it (the engine accepts it for this key).
    Transform.from_spec(spec, b"k", ["Id"])


def test_the_replicator_accepts_the_environment_at_cold_start(masked: Synthesized) -> None:
    source = masked.template_json(SOURCE_STACK)
    (function,) = [f for f in resources_of_type(source, "AWS::Lambda::Function").values()
                   if "REPLICATION_TARGETS" in f["Properties"].get("Environment", {}).get("Variables", {})]
    config = replicator_config().load_config(function["Properties"]["Environment"]["Variables"])
    by_region = {t.region: t for t in config.targets}
    assert by_region["eu-west-1"].transform == {t["region"]: t for t in _targets(source)}["eu-west-1"]["transform"]
    assert by_region["us-east-1"].transform is None


def test_the_published_parameter_carries_the_same_spec(masked: Synthesized) -> None:
    source = masked.template_json(SOURCE_STACK)
    (parameter,) = [p for p in resources_of_type(source, "AWS::SSM::Parameter").values()
                    if p["Properties"]["Name"] == "/cdk-replication/Employee/replicator"]
    document = json.loads(parameter["Properties"]["Value"])
    by_table = {t["table"].split(":")[4]: t for t in document["targets"]}
    assert by_table[OTHER_ACCOUNT]["transform"] == {t["region"]: t for t in _targets(source)}["eu-west-1"]["transform"]
    assert by_table[SOURCE_ACCOUNT]["transform"] is None


def test_only_the_transformed_replica_is_tagged_with_the_marker(masked: Synthesized) -> None:
    """The tag says "transformed, see the published spec" and nothing about the spec (the target reads it)."""
    spec = {t["region"]: t for t in _targets(masked.template_json(SOURCE_STACK))}["eu-west-1"]["transform"]
    (replica,) = resources_of_type(masked.template_json(MASKED_STACK), "AWS::DynamoDB::Table").values()
    assert {"Key": "cdk-replication:transform", "Value": "published"} in replica["Properties"]["Tags"]
    assert spec["digest"] not in json.dumps(masked.template_json(MASKED_STACK))
    (exact,) = resources_of_type(masked.template_json(EXACT_STACK), "AWS::DynamoDB::Table").values()
    assert all(t["Key"] != "cdk-replication:transform" for t in exact["Properties"].get("Tags", []))


def test_the_secret_is_generated_retained_and_readable_only_by_the_replicator(masked: Synthesized) -> None:
    source = masked.template_json(SOURCE_STACK)
    secret_id = _secret_id(source)
    secret = source["Resources"][secret_id]
    assert secret["DeletionPolicy"] == "Retain" and secret["UpdateReplacePolicy"] == "Retain"
    generate = secret["Properties"]["GenerateSecretString"]
    assert generate["PasswordLength"] == 64 and generate["ExcludePunctuation"] is True
    assert "SecretString" not in secret["Properties"]
    statements = role_statements(source, "ReplicatorRole")
    reads = [s for s in statements if "secretsmanager" in json.dumps(s["Action"])]
    assert reads == [{"Sid": "ReadTransformSecret", "Effect": "Allow", "Action": "secretsmanager:GetSecretValue",
                      "Resource": GENERATED_SECRET + "-??????"}]
    for stack in (MASKED_STACK, EXACT_STACK):
        template = masked.template_json(stack)
        assert not resources_of_type(template, "AWS::SecretsManager::Secret")
        assert "secretsmanager" not in json.dumps(template)


def test_cdk_nag_and_cfn_lint_are_clean(masked: Synthesized) -> None:
    assert masked.nag_error is None, masked.nag_report()
    findings = []
    for stack in masked.stacks():
        path = masked.assembly.get_stack_by_name(stack.stack_name).template_full_path
        for match in lint_all(Path(path).read_text()):
            if match.rule.id not in {"I4010", "I1022", "W3005"}:
                findings.append((stack.stack_name, match.rule.id, match.message))
    assert findings == []


def test_a_given_secret_is_used_and_no_secret_is_created() -> None:
    app = cdk.App()
    table = _table(app, [TableLocation(region="eu-west-1", transform=ReplicaTransform(
        masks={"email": Mask.hmac()}, secret_arn=USER_SECRET))])
    source = app.synth().get_stack_by_name(SOURCE_STACK).template
    assert table.transform_secret is None and not resources_of_type(source, "AWS::SecretsManager::Secret")
    (entry,) = _targets(source)
    assert entry["transform"]["secretArn"] == USER_SECRET
    reads = [s for s in role_statements(source, "ReplicatorRole") if s.get("Sid") == "ReadTransformSecret"]
    assert [r["Resource"] for r in reads] == [USER_SECRET]


def test_without_hmac_there_is_no_secret_and_no_permission() -> None:
    app = cdk.App()
    _table(app, [TableLocation(region="eu-west-1", transform=ReplicaTransform(
        keep=["email", "status"], masks={"status": Mask.redact("x")}))])
    source = app.synth().get_stack_by_name(SOURCE_STACK).template
    assert "secretsmanager" not in json.dumps(source)
    (entry,) = _targets(source)
    assert entry["transform"]["keep"] == ["Id", "email", "status"] and entry["transform"]["secretArn"] is None


# --- synth-time checks ------------------------------------------------------------------------------------------


def _refused(match: str, replica: TableLocation | None = None, **props: Any) -> None:
    with pytest.raises(ReplicationConfigError, match=match):
        _table(cdk.App(), [replica or TableLocation(region="eu-west-1")], **props)


@pytest.mark.parametrize(
    ("transform", "match"),
    [
        (ReplicaTransform(masks={"Id": Mask.remove()}),
         r"Employee: replica 'Employee' \(111111111111/eu-west-1\): mask 'remove' on 'Id': 'Id' is a key "
         r"attribute.*Fix: use Mask.hmac\(\) on 'Id' \(keeps its type N\)"),
        (ReplicaTransform(masks={"Id": Mask.redact(0)}), "mask 'redact' on 'Id': 'Id' is a key attribute"),
        (ReplicaTransform(drop=["email"]), r"drops 'email', a key attribute of a secondary index.*Fix: remove "
         r"'email' from drop"),
        (ReplicaTransform(drop=["Id"]), "drops 'Id', a key attribute of the table"),
        (ReplicaTransform(keep=["status"]), r"keep leaves out 'email'.*Fix: add 'email' to keep"),
        (ReplicaTransform(masks={"email": Mask.redact(7)}), r"the constant is of type N, but 'email' is a key "
         r"attribute of a secondary index of type S.*Fix: redact 'email' to a S value, or use Mask.hmac\(\)"),
        (ReplicaTransform(masks={"email": Mask.remove()}), "secondary index, which would hold no item"),
        (ReplicaTransform(filter={"op": "contains", "attr": "a", "value": {"S": "x"}}),
         r"transform filter.op='contains' is not one of .*Fix: see docs/architecture.md"),
        (ReplicaTransform(filter=Filter.compare("lt", "a", {"SS": ["x"]})), "lt compares B/N/S values, not SS"),
        (ReplicaTransform(keep=["email"], drop=["a"]), "has both keep and drop"),
        (ReplicaTransform(drop=["a"], masks={"a": Mask.hmac()}), "the projection already leaves 'a' out"),
        (ReplicaTransform(masks={"a": Mask("scramble")}), "'scramble' on 'a' is not a mask kind"),
        (ReplicaTransform(masks={"expires": Mask.hmac()}), "'expires' is the replica's TTL attribute"),
    ],
)
def test_transforms_that_would_break_the_replica_are_refused(transform: ReplicaTransform, match: str) -> None:
    _refused(match, TableLocation(region="eu-west-1", transform=transform), time_to_live_attribute="expires")


def test_a_transform_is_refused_in_multi_active_mode_with_the_reason() -> None:
    _refused(r"has a transform in MULTI_ACTIVE mode; conflict resolution compares and writes whole items",
             TableLocation(region="eu-west-1", transform=ReplicaTransform(drop=["a"])),
             mode=ReplicationMode.MULTI_ACTIVE)


def test_a_transform_with_a_migration_is_refused_naming_backfill() -> None:
    replica = TableLocation(region="eu-west-1", transform=ReplicaTransform(drop=["a"]),
                            migration=MigrationOptions())
    _refused(r"a native import copies the export as it is.*Fix: remove migration=\.\.\. and load the replica "
             r"with `cdk-replication backfill`", replica)


def test_a_transform_on_the_source_is_refused() -> None:
    with pytest.raises(ReplicationConfigError, match="the source TableLocation has a transform"):
        ReplicatedTable(cdk.App(), "Employee", partition_key=PK, replicas=[TableLocation(region="eu-west-1")],
                        source=TableLocation(region="us-west-2", account=SOURCE_ACCOUNT,
                                             transform=ReplicaTransform(drop=["a"])))
