"""Topology changes (issue 14): each copy's ``LocationStatus`` and each replicator's deployed configuration are
published in SSM (contract section A), the statuses are checked against the mode at synth time, and a
replica that joins a running topology from an export does not stop the others' replication (section B)."""

from __future__ import annotations

import json
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Template

from cdk_replication import (
    LocationStatus,
    MigrationOptions,
    ReplicatedTable,
    ReplicationConfigError,
    ReplicationMode,
    TableLocation,
)
from construct_helpers import EXPORT_ARN, OTHER_ACCOUNT, PK, SOURCE_ACCOUNT, Synthesized, resources_of_type

JOINING, LEAVING = LocationStatus.JOINING, LocationStatus.LEAVING


def _source(**location: Any) -> TableLocation:
    return TableLocation(region="us-west-2", account=SOURCE_ACCOUNT, **location)


def _arn(region: str, table: str, account: str = SOURCE_ACCOUNT) -> str:
    return f"arn:aws:dynamodb:{region}:{account}:table/{table}"


def _templates(construct: ReplicatedTable) -> dict[str, dict[str, Any]]:
    """Every stack's template by stack name (one synthesis)."""
    assembly = cdk.App.of(construct).synth()  # type: ignore[union-attr]
    return {stack.stack_name: assembly.get_stack_by_name(stack.stack_name).template
            for stack in construct.stacks.values()}


def _parameter(template: dict[str, Any], name: str) -> tuple[str, dict[str, Any]]:
    found = [(k, v) for k, v in resources_of_type(template, "AWS::SSM::Parameter").items()
             if v["Properties"]["Name"] == name]
    assert len(found) == 1, f"expected one parameter {name}, found {found}"
    return found[0]


def _published(template: dict[str, Any], table: str) -> dict[str, Any]:
    """The replicator document published in ``template``, checked to be compact JSON with sorted keys."""
    _, resource = _parameter(template, f"/cdk-replication/{table}/replicator")
    value = resource["Properties"]["Value"]
    assert isinstance(value, str), "the document must be a literal (no token)"
    document = json.loads(value)
    assert value == json.dumps(document, separators=(",", ":"), sort_keys=True)
    return document


def _only(template: dict[str, Any], kind: str) -> tuple[str, dict[str, Any]]:
    (found,) = resources_of_type(template, kind).items()
    return found


@pytest.fixture
def joining_one_way(joining_replica: Synthesized) -> dict[str, dict[str, Any]]:
    """One-way (conftest's ``joining_replica`` shape): an ACTIVE replica, a JOINING empty replica in another
    account, and a JOINING replica that waits for its export (left out of the targets: no table yet)."""
    return {stack.stack_name: joining_replica.template_json(stack.stack_name) for stack in joining_replica.stacks()}


def test_every_copy_publishes_its_status_as_a_parameter_and_an_output(joining_one_way):
    expected = {"Employee-us-west-2": "ACTIVE", "Employee-us-east-1": "ACTIVE",
                f"Employee-{OTHER_ACCOUNT}-eu-west-1": "JOINING", "Employee-eu-central-1": "JOINING"}
    for stack, status in expected.items():
        template = joining_one_way[stack]
        _, parameter = _parameter(template, "/cdk-replication/Employee/status")
        assert parameter["Properties"] == {**parameter["Properties"], "Type": "String", "Value": status,
                                           "Tier": "Standard"}
        assert template["Outputs"]["ReplicationStatus"]["Value"] == status


def test_the_writer_publishes_exactly_what_its_function_sends_to(joining_one_way):
    template = joining_one_way["Employee-us-west-2"]
    document = _published(template, "Employee")
    assert document == {
        "version": 1, "mode": "ONE_WAY", "changeSource": "DYNAMODB_STREAMS",
        "source": _arn("us-west-2", "Employee"), "function": "Employee-us-west-2-replicator",
        "metadataPrefix": "_rep_", "conflictAttribute": None, "conflictStrategy": None, "enabled": True,
        "ttlAttribute": "_rep_expiresAt",
        "targets": [
            {"table": _arn("us-east-1", "Employee"), "status": "ACTIVE", "transform": None},
            {"table": _arn("eu-west-1", "Employee", OTHER_ACCOUNT), "status": "JOINING", "transform": None},
        ],
    }
    _, function = _only(template, "AWS::Lambda::Function")
    env_targets = json.loads(function["Properties"]["Environment"]["Variables"]["REPLICATION_TARGETS"])
    assert [_arn(t["region"], t["tableName"], t["account"]) for t in env_targets] == \
        [t["table"] for t in document["targets"]]


def test_the_replicator_parameter_changes_only_after_the_function_and_the_mapping(joining_one_way):
    template = joining_one_way["Employee-us-west-2"]
    _, parameter = _parameter(template, "/cdk-replication/Employee/replicator")
    function_id, _ = _only(template, "AWS::Lambda::Function")
    mapping_id, _ = _only(template, "AWS::Lambda::EventSourceMapping")
    assert sorted(parameter["DependsOn"]) == sorted([function_id, mapping_id])
    # Replica stacks hold no replicator, so no replicator parameter.
    assert [p for p in resources_of_type(joining_one_way["Employee-us-east-1"], "AWS::SSM::Parameter").values()
            if p["Properties"]["Name"].endswith("/replicator")] == []


def test_a_replica_joining_a_running_topology_from_an_export_keeps_the_mapping_running(joining_one_way):
    template = joining_one_way["Employee-us-west-2"]
    _, mapping = _only(template, "AWS::Lambda::EventSourceMapping")
    assert mapping["Properties"]["Enabled"] is True
    assert "ReplicatorEventSourceMappingUuid" not in template["Outputs"]
    # The record age keeps its default: the mapping has no backlog to catch up on.
    assert mapping["Properties"]["MaximumRecordAgeInSeconds"] != -1
    waiting = joining_one_way["Employee-eu-central-1"]
    assert resources_of_type(waiting, "AWS::DynamoDB::Table") == {}
    assert len(resources_of_type(waiting, "AWS::S3::Bucket")) == 1


def test_once_exported_the_joining_replica_becomes_a_target_and_the_mapping_stays_enabled():
    app = cdk.App()
    construct = ReplicatedTable(
        app, "Employee", source=_source(), partition_key=PK,
        replicas=[TableLocation(region="us-east-1"),
                  TableLocation(region="eu-central-1", status=JOINING,
                                migration=MigrationOptions(export_arn=EXPORT_ARN.replace("Orders", "Employee")))],
    )
    template = Template.from_stack(construct.source_stack).to_json()
    assert [t["table"] for t in _published(template, "Employee")["targets"]] == [
        _arn("us-east-1", "Employee"), _arn("eu-central-1", "Employee")]
    _, mapping = _only(template, "AWS::Lambda::EventSourceMapping")
    assert mapping["Properties"]["Enabled"] is True


def test_without_an_active_replica_a_waiting_migration_still_disables_the_mapping():
    app = cdk.App()
    construct = ReplicatedTable(
        app, "Employee", source=_source(), partition_key=PK,
        replicas=[TableLocation(region="eu-central-1", status=JOINING, migration=MigrationOptions())],
    )
    assert construct.replicator.enabled is False
    template = Template.from_stack(construct.source_stack).to_json()
    assert [t["table"] for t in _published(template, "Employee")["targets"]] == [_arn("eu-central-1", "Employee")]


def test_multi_active_regions_publish_statuses_and_each_replicator_its_targets():
    app = cdk.App()
    construct = ReplicatedTable(
        app, "Profiles", source=_source(), partition_key=PK, mode=ReplicationMode.MULTI_ACTIVE,
        replicas=[TableLocation(region="us-east-1", status=LEAVING),
                  TableLocation(region="eu-west-1", status=JOINING),
                  TableLocation(region="ap-south-1")],
    )
    templates = _templates(construct)
    statuses = {"us-west-2": "ACTIVE", "us-east-1": "LEAVING", "eu-west-1": "JOINING", "ap-south-1": "ACTIVE"}
    for region, status in statuses.items():
        template = templates[f"Profiles-{region}"]
        assert template["Outputs"]["ReplicationStatus"]["Value"] == status
        document = _published(template, "Profiles")
        assert (document["mode"], document["conflictAttribute"], document["conflictStrategy"]) == (
            "MULTI_ACTIVE", "updatedAt", "TIMESTAMP")
        assert document["source"] == _arn(region, "Profiles")
        assert {t["table"]: t["status"] for t in document["targets"]} == {
            _arn(other, "Profiles"): value for other, value in statuses.items() if other != region}


def test_every_multi_active_replicator_publishes_the_attribute_its_tombstones_expire_on():
    """`join` and `leave` read tombstones with it (another attribute reads a tombstone as a live item), without
    needing DescribeTimeToLive on every table."""
    app = cdk.App()
    construct = ReplicatedTable(
        app, "Profiles", source=_source(), partition_key=PK, mode=ReplicationMode.MULTI_ACTIVE,
        replicas=[TableLocation(region="eu-west-1", status=JOINING)], time_to_live_attribute="expires",
    )
    for template in _templates(construct).values():
        assert _published(template, "Profiles")["ttlAttribute"] == "expires"


# --- synth-time rules ----------------------------------------------------------------------------------------


def _refused(match: str, **props: Any) -> None:
    with pytest.raises(ReplicationConfigError, match=match) as refused:
        ReplicatedTable(cdk.App(), "Employee", partition_key=PK, **props)
    assert refused.value.construct_path == "Employee"


@pytest.mark.parametrize("status", [JOINING, LEAVING])
def test_the_one_way_source_is_always_active(status):
    _refused(f"source TableLocation has status={status.value} in ONE_WAY mode.*Fix: leave the source's status unset",
             source=_source(status=status), replicas=[TableLocation(region="us-east-1")])


def test_a_one_way_replica_is_removed_not_drained():
    _refused(r"replicas\[1\] \('Employee' in 111111111111/eu-west-1\) has status=LEAVING in ONE_WAY mode.*"
             "Fix: remove that TableLocation from replicas and deploy",
             source=_source(), replicas=[TableLocation(region="us-east-1"),
                                         TableLocation(region="eu-west-1", status=LEAVING)])


def test_multi_active_needs_an_active_location():
    _refused("no location is ACTIVE .*us-west-2: JOINING, us-east-1: LEAVING.*Fix: keep at least one location ACTIVE",
             source=_source(status=JOINING), replicas=[TableLocation(region="us-east-1", status=LEAVING)],
             mode=ReplicationMode.MULTI_ACTIVE)


def test_multi_active_needs_two_locations_that_stay():
    _refused("only 1 location would stay once the LEAVING ones are removed.*Fix: add a JOINING region first",
             source=_source(), replicas=[TableLocation(region="us-east-1", status=LEAVING)],
             mode=ReplicationMode.MULTI_ACTIVE)


def test_a_status_given_as_a_string_is_refused_with_the_enum_to_use():
    _refused(r"replicas\[0\]\.status is a str \('JOINING'\), not a LocationStatus",
             source=_source(), replicas=[TableLocation(region="us-east-1", status="JOINING")])  # type: ignore[arg-type]


def test_a_published_configuration_over_4_kb_is_refused_with_its_size():
    # 30 same-region replicas: the function's environment still fits Lambda's 4 KB, the published document not.
    replicas = [TableLocation(region="us-east-1", table_name=f"{'r' * 46}{index:04d}") for index in range(30)]
    _refused(r"published replicator configuration of 'Employee' \(/cdk-replication/Employee/replicator\) is "
             r"\d{4} bytes, above SSM's 4096-byte standard-tier limit \(30 targets\).*Fix: use shorter table names",
             source=_source(), replicas=replicas)


def test_a_joining_multi_active_source_is_refused_because_the_running_source_would_be_renamed():
    # A JOINING region joins a running topology, whose source= is already deployed under the source's logical
    # ids; naming the newcomer source= would give the running source a replica's ids, which CloudFormation
    # cannot deploy over its named table, function and role.
    _refused(r"the source TableLocation \('Employee' in 111111111111/us-west-2\) has status=JOINING in "
             r"MULTI_ACTIVE mode.*Fix: keep the deployed source as source= and add the new region to replicas",
             source=_source(status=JOINING), replicas=[TableLocation(region="us-east-1")],
             mode=ReplicationMode.MULTI_ACTIVE)
