"""Cross-account replication with ``CrossAccountAccess.RESOURCE_POLICY`` (and a writer role's trust policy),
deployed on the local runtime with IAM and account boundaries enforced (DESIGN.md rule 9): the replicator
signs with its own account's role, reaches the replica in 222222222222 only by its table ARN, and only because
both its identity policy and the replica's resource policy allow it. A missing permission or a wrong principal
in the template must fail the records with AccessDenied, as on AWS, and leave the replica unchanged."""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cdk_replication.local import MappingSettings, TemplateError, compare_tables, deploy, workload

WALLETS_STACKS = ["Wallets-us-west-2", "Wallets-222222222222-eu-west-1"]
OTHER_ROLE = "arn:aws:iam::111111111111:role/SomeOtherRole"


def _write(topology, ops: list[workload.Operation]) -> None:
    client = topology.source.client()
    for op in ops:
        workload.apply(client, topology.source.name, op)


def _stacks(name: str) -> list[str]:
    """The two stacks of one one-way topology of apps/resource_policy_app.py."""
    return [f"{name}-222222222222-us-east-1", f"{name}-us-west-2"]


def _mutated(cdk_out: Path, tmp_path: Path, stack: str, mutate: Callable[[dict[str, Any]], None]) -> Path:
    """A copy of the assembly with one stack's template changed by ``mutate`` (before the local deploy)."""
    copy = tmp_path / "cdk.out"
    shutil.copytree(cdk_out, copy, symlinks=True)
    manifest = json.loads((copy / "manifest.json").read_text())
    (template_file,) = [a["properties"]["templateFile"] for a in manifest["artifacts"].values()
                        if a.get("type") == "aws:cloudformation:stack" and a["properties"].get("stackName") == stack]
    template = json.loads((copy / template_file).read_text())
    mutate(template)
    (copy / template_file).write_text(json.dumps(template))
    return copy


def _no_retries(settings: MappingSettings) -> MappingSettings:
    # A refused write is refused on every retry; one retry is enough to see it reach the failure queue.
    return dataclasses.replace(settings, maximum_retry_attempts=1)


@pytest.fixture
def ledger(resource_policy_app: Path, topology_of):
    """``ledger(name, cdk_out=None, settings_override=None)``: the Topology of one one-way topology."""

    def make(name: str, cdk_out: Path | None = None, settings_override=None):
        return topology_of(cdk_out or resource_policy_app, stacks=_stacks(name), settings_override=settings_override)

    return make


def test_one_way_replica_in_another_account_through_its_resource_policy(ledger):
    topology = ledger("Ledger")
    assert (topology.source.account, topology.replica.account) == ("111111111111", "222222222222")
    ops = workload.generate(300, seed=21)
    _write(topology, ops)
    topology.settle()
    result = topology.compare()
    # Named by its plain name, the replica would be a table of 111111111111: every write refused, as on AWS
    # (AccessDeniedException here, since the role may write only the replica's ARN; ResourceNotFoundException
    # for a role allowed on its own account's table of that name). The first errors say which.
    errors = [line for line in topology.function.logs() if "Exception" in line][:3]
    assert result.equal, (result.missing[:5], result.different, result.unexpected[:5], errors)
    assert 0 < result.source_items < 300  # inserts, updates and deletes
    assert topology.mapping.stats.function_errors == 0 and len(topology.failures()) == 0
    assert topology.deployment.gateway.stats.denials == []
    # The function signed as its own role: no AssumeRole, and nothing reached the source account's database
    # under the replica's name.
    assert not [c for c in topology.deployment.gateway.calls if c.get("Action") == "AssumeRole"]
    own = topology.deployment.ddb.client(region="us-east-1", account="111111111111")
    assert "Ledger" not in own.list_tables()["TableNames"]


def test_multi_active_writers_in_two_accounts_converge(resource_policy_app: Path, e2e_ddb):
    with deploy(resource_policy_app, e2e_ddb, stacks=WALLETS_STACKS) as deployment:
        west = deployment.table("Wallets", region="us-west-2")
        europe = deployment.table("Wallets", region="eu-west-1")
        assert (west.account, europe.account) == ("111111111111", "222222222222")
        for i in range(30):
            west.client().put_item(TableName="Wallets", Item={"pk": {"S": f"w{i}"}, "updatedAt": {"N": str(1000 + i)}})
            europe.client().put_item(TableName="Wallets", Item={"pk": {"S": f"e{i}"}, "updatedAt": {"N": str(2000 + i)}})
        deployment.run_until_idle()
        for i in range(0, 30, 3):  # deletes of items written in the other account, versioned by tombstones
            west.client().delete_item(TableName="Wallets", Key={"pk": {"S": f"e{i}"}})
        deployment.run_until_idle()
        result = compare_tables(west.client(), "Wallets", europe.client(), "Wallets", ["pk"], "_rep_",
                                "_rep_deleted")
        assert result.equal, (result.missing[:5], result.different, result.unexpected[:5])
        assert result.source_items == 50
        assert deployment.gateway.stats.denials == []
        assert all(m.stats.function_errors == 0 for m in deployment.mappings)


def _statement(template: dict[str, Any], sid: str) -> dict[str, Any]:
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::IAM::Role":
            for policy in resource["Properties"].get("Policies", []):
                for statement in policy["PolicyDocument"]["Statement"]:
                    if statement.get("Sid") == sid:
                        return statement
        if resource["Type"] == "AWS::DynamoDB::Table" and "ResourcePolicy" in resource["Properties"]:
            for statement in resource["Properties"]["ResourcePolicy"]["PolicyDocument"]["Statement"]:
                if statement.get("Sid") == sid:
                    return statement
    raise AssertionError(f"no statement {sid!r} in the template")


def _assert_refused(topology, reason: str) -> None:
    """Every record failed with AccessDenied, went to the failure queue, and the replica is unchanged."""
    client = topology.source.client()
    for i in range(5):
        client.put_item(TableName=topology.source.name, Item={"Id": {"N": str(i)}, "Name": {"S": f"e{i}"}})
    topology.settle()
    denials = topology.deployment.gateway.stats.denials
    assert denials and all(reason in d for d in denials), denials[:3]
    assert any("AccessDenied" in line for line in topology.function.logs()), topology.function.logs()[-5:]
    stats = topology.mapping.stats
    # Reported as failed (never as applied), retried, then discarded to the on-failure destination.
    assert stats.records_discarded == 5 and stats.on_failure_records >= 1 and len(topology.failures()) >= 1
    assert topology.replica.client().scan(TableName=topology.replica.name)["Count"] == 0


def test_a_missing_write_permission_fails_with_access_denied(ledger, resource_policy_app: Path, tmp_path: Path):
    def drop_writes(template: dict[str, Any]) -> None:
        statement = _statement(template, "WriteTargetTables")
        statement["Action"] = [a for a in statement["Action"]
                               if a not in ("dynamodb:PutItem", "dynamodb:BatchWriteItem")]

    topology = ledger("LedgerDenied", _mutated(resource_policy_app, tmp_path, "LedgerDenied-us-west-2", drop_writes),
                      _no_retries)
    _assert_refused(topology, "because no identity-based policy allows the dynamodb:")


def test_a_wrong_principal_in_the_resource_policy_fails_with_access_denied(ledger, resource_policy_app: Path,
                                                                          tmp_path: Path):
    def other_role(template: dict[str, Any]) -> None:
        _statement(template, "Replicator0")["Condition"]["ArnEquals"]["aws:PrincipalArn"] = OTHER_ROLE

    topology = ledger("LedgerWrongPrincipal", _mutated(resource_policy_app, tmp_path,
                                                       "LedgerWrongPrincipal-222222222222-us-east-1", other_role),
                      _no_retries)
    _assert_refused(topology, "because no resource-based policy allows the dynamodb:")


def test_a_writer_role_trusting_another_role_refuses_the_assume_role(example_app, topology_of, tmp_path: Path):
    """CrossAccountAccess.WRITER_ROLE: the writer role's trust policy names another role of the source account,
    so the replicator's AssumeRole is refused and no record is applied."""

    def trust_other_role(template: dict[str, Any]) -> None:
        for logical_id, resource in template["Resources"].items():
            if resource["Type"] == "AWS::IAM::Role" and logical_id.startswith("Writer"):
                (statement,) = resource["Properties"]["AssumeRolePolicyDocument"]["Statement"]
                statement["Condition"]["ArnEquals"]["aws:PrincipalArn"] = OTHER_ROLE
                return
        raise AssertionError("no writer role in the template")

    cdk_out = _mutated(example_app["E2eWrongTrust"], tmp_path, "E2eWrongTrust-222222222222-us-east-1",
                       trust_other_role)
    topology = topology_of(cdk_out, settings_override=_no_retries)
    assert topology.replica.account == "222222222222"
    client = topology.source.client()
    for i in range(5):
        client.put_item(TableName=topology.source.name, Item={"Id": {"N": str(i)}, "Name": {"S": f"e{i}"}})
    topology.settle()
    denials = topology.deployment.gateway.stats.denials
    assert denials and all("sts:AssumeRole" in d and ":222222222222:role/" in d for d in denials), denials[:3]
    assert topology.mapping.stats.records_discarded == 5 and len(topology.failures()) >= 1
    assert topology.replica.client().scan(TableName=topology.replica.name)["Count"] == 0


#: The replicator role's statement (by Sid) whose absence the deploy must refuse, and Lambda's message. The
#: failure destination is S3 (objects, bucket) or SQS, whichever the construct made: only the present ones run.
_REQUIRED_STATEMENTS = {
    "ReadSourceStream": "Cannot access stream arn:aws:dynamodb:us-west-2:111111111111:table/LedgerDenied/stream/",
    "WriteFailureRecords": "The provided execution role does not have permissions to call PutObject on S3",
    "ListFailureBucket": "The provided execution role does not have permissions to call ListBucket on S3",
}


@pytest.mark.parametrize("sid", list(_REQUIRED_STATEMENTS))
def test_a_mapping_whose_role_cannot_read_or_report_fails_the_deploy(resource_policy_app: Path, e2e_ddb,
                                                                    tmp_path: Path, sid: str):
    dropped: list[str] = []

    def drop(template: dict[str, Any]) -> None:
        for resource in template["Resources"].values():
            if resource["Type"] == "AWS::IAM::Role":
                for policy in resource["Properties"].get("Policies", []):
                    statements = policy["PolicyDocument"]["Statement"]
                    dropped.extend(s["Sid"] for s in statements if s.get("Sid") == sid)
                    policy["PolicyDocument"]["Statement"] = [s for s in statements if s.get("Sid") != sid]

    cdk_out = _mutated(resource_policy_app, tmp_path, "LedgerDenied-us-west-2", drop)
    assert dropped, f"the replicator role has no {sid} statement"
    with pytest.raises(TemplateError, match="ReplicatorStreamMapping") as info:
        deploy(cdk_out, e2e_ddb, stacks=_stacks("LedgerDenied"))
    assert _REQUIRED_STATEMENTS[sid] in str(info.value)
