"""Adversarial review of the published configuration and statuses (branch r14a, contract sections A and B).
Each finding was xfail(strict) until fixed (all fixed now); the other tests hold what was checked and found sound."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_dynamodb as dynamodb

from cdk_replication import (
    ExistingSource,
    LocationStatus,
    MigrationOptions,
    ReplicatedTable,
    ReplicationConfigError,
    ReplicationMode,
    TableLocation,
)
from construct_helpers import EXPORT_ARN, IMPORTED_STREAM_ARN, PK, SK, SOURCE_ACCOUNT, policy_statements, resources_of_type


def _assembly_parameters(app: cdk.App) -> Counter[tuple[str, str]]:
    """How many ``AWS::SSM::Parameter`` resources of the whole assembly create each (environment, name)."""
    names: Counter[tuple[str, str]] = Counter()
    for stack in app.synth().stacks:
        for resource in resources_of_type(stack.template, "AWS::SSM::Parameter").values():
            names[(stack.environment.name, resource["Properties"]["Name"])] += 1
    return names


def test_two_replicated_tables_on_one_existing_source_are_refused_at_synth():
    """Was a finding (xfail strict): two ReplicatedTables reading one existing_source (the 4 KB error's own
    advice) both created /cdk-replication/<source>/status and /replicator in the source's account and region (and
    the same replicator function and role names), so the second stack failed to deploy. Fixed by refusing the
    second at synth, naming the table and the fix; distinct names would break the names the CLI derives."""
    app = cdk.App()
    source = ExistingSource(stream_arn=IMPORTED_STREAM_ARN, stream_view_type=dynamodb.StreamViewType.NEW_AND_OLD_IMAGES,
                            partition_key=PK, sort_key=SK)

    def orders(construct_id: str, region: str) -> ReplicatedTable:
        return ReplicatedTable(app, construct_id, source=TableLocation(region="us-west-2", account=SOURCE_ACCOUNT),
                               replicas=[TableLocation(region=region)], partition_key=PK, sort_key=SK,
                               existing_source=source, dashboard=False)

    orders("OrdersEast", "us-east-1")
    with pytest.raises(ReplicationConfigError, match=r"'Orders' in \d{12}/us-west-2 is also a copy of "
                                                     r"ReplicatedTable OrdersEast.*single ReplicatedTable"):
        orders("OrdersWest", "eu-west-1")
    # What is left synthesizes with each SSM name created once per account and region.
    assert {key: count for key, count in _assembly_parameters(app).items() if count > 1} == {}


def _stack_dependencies(app: cdk.App) -> dict[str, set[str]]:
    """Each stack's name -> the stack names it depends on (what ``cdk deploy --all`` deploys first)."""
    stacks = app.synth().stacks
    names = {stack.id: stack.stack_name for stack in stacks}
    return {stack.stack_name: {names.get(d.id, d.id) for d in stack.dependencies} for stack in stacks}


def test_a_joining_multi_active_region_is_deployed_before_the_regions_that_send_to_it():
    app = cdk.App()
    ReplicatedTable(app, "Profiles", source=TableLocation(region="us-west-2", account=SOURCE_ACCOUNT), partition_key=PK,
                    mode=ReplicationMode.MULTI_ACTIVE, dashboard=False,
                    replicas=[TableLocation(region="us-east-1"),
                              TableLocation(region="eu-west-1", status=LocationStatus.JOINING)])
    dependencies = _stack_dependencies(app)
    joining = "Profiles-eu-west-1"
    assert joining in dependencies
    # Each existing region's replicator sends to the joining table from this deploy on (its published document
    # says so), so its stack must wait for the stack that creates that table, as one-way's source stack does.
    assert {name: joining in deps for name, deps in dependencies.items() if name != joining} == {
        "Profiles-us-west-2": True, "Profiles-us-east-1": True}


def test_no_role_of_ours_gains_ssm_permissions():
    """Sound (rule 8): publishing the parameters grants nothing to any role (checked over the JOINING and LEAVING
    shapes; the conftest shapes were checked the same way during the review)."""
    app = cdk.App()
    ReplicatedTable(app, "Profiles", source=TableLocation(region="us-west-2", account=SOURCE_ACCOUNT), partition_key=PK,
                    mode=ReplicationMode.MULTI_ACTIVE, dashboard=False,
                    replicas=[TableLocation(region="us-east-1", status=LocationStatus.LEAVING),
                              TableLocation(region="eu-west-1", status=LocationStatus.JOINING),
                              TableLocation(region="ap-south-1")])
    for stack in app.synth().stacks:
        actions: list[Any] = [statement.get("Action") for _, _, statement in policy_statements(stack.template)]
        assert "ssm" not in json.dumps(actions).lower(), stack.stack_name


def test_copies_whose_names_differ_only_in_punctuation_get_distinct_status_outputs():
    app = cdk.App()
    construct = ReplicatedTable(app, "Orders", source=TableLocation(region="us-west-2", account=SOURCE_ACCOUNT),
                                partition_key=PK, dashboard=False,
                                replicas=[TableLocation(region="us-west-2", table_name="Orders-audit"),
                                          TableLocation(region="us-west-2", table_name="Orders_audit")])
    outputs = app.synth().get_stack_by_name(construct.source_stack.stack_name).template["Outputs"]
    # One status output per copy (the source and its two same-region copies), whatever their ids.
    assert sorted(v["Value"] for k, v in outputs.items() if k.startswith("ReplicationStatus")) == ["ACTIVE"] * 3


def test_a_replica_loaded_from_an_export_set_active_keeps_the_running_mapping_enabled():
    app = cdk.App()
    construct = ReplicatedTable(
        app, "Employee", source=TableLocation(region="us-west-2", account=SOURCE_ACCOUNT), partition_key=PK,
        dashboard=False,
        replicas=[TableLocation(region="us-east-1"),
                  # Was JOINING (mapping enabled, then a target once export_arn was set); join done, now ACTIVE.
                  TableLocation(region="eu-central-1",
                                migration=MigrationOptions(export_arn=EXPORT_ARN.replace("Orders", "Employee")))],
    )
    template = app.synth().get_stack_by_name(construct.source_stack.stack_name).template
    (mapping,) = resources_of_type(template, "AWS::Lambda::EventSourceMapping").values()
    # The previous deploy (status=JOINING) had Enabled=True: this deploy must not pause us-east-1's replication.
    assert mapping["Properties"]["Enabled"] is True


def _resources_by_stack(app: cdk.App) -> dict[str, dict[str, str]]:
    """Stack name -> {logical id: resource type} of every stack of ``app``."""
    return {stack.stack_name: {k: v["Type"] for k, v in stack.template["Resources"].items()}
            for stack in app.synth().stacks}


def _profiles(source: TableLocation, replicas: list[TableLocation]) -> cdk.App:
    app = cdk.App()
    ReplicatedTable(app, "Profiles", source=source, replicas=replicas, partition_key=PK,
                    mode=ReplicationMode.MULTI_ACTIVE, dashboard=False)
    return app


def test_a_leaving_multi_active_source_is_refused_with_the_reason_and_what_to_do():
    """Was a finding (xfail strict): multi-active accepted status=LEAVING on the source location, but removing it
    means promoting another region to source=, which renames every logical id of that region's stack (table,
    function, role, mapping, parameter: all named, so CloudFormation fails). Checked below that this is so; the
    fix refuses a LEAVING source at synth, saying why and what to do instead."""
    east, europe = (TableLocation(region=r, account=SOURCE_ACCOUNT) for r in ("us-east-1", "eu-west-1"))
    promoted = _resources_by_stack(_profiles(east, [europe]))["Profiles-us-east-1"]
    as_replica = _resources_by_stack(_profiles(TableLocation(region="us-west-2", account=SOURCE_ACCOUNT),
                                               [east, europe]))["Profiles-us-east-1"]
    assert promoted != as_replica  # why the source cannot leave: its successor's resources would be replaced
    with pytest.raises(ReplicationConfigError, match=r"source TableLocation .*us-west-2\) has status=LEAVING in "
                                                     r"MULTI_ACTIVE mode, but it cannot be removed.*Fix: leave the "
                                                     r"source's status unset .*new MULTI_ACTIVE ReplicatedTable"):
        _profiles(TableLocation(region="us-west-2", account=SOURCE_ACCOUNT, status=LocationStatus.LEAVING),
                  [east, europe])


def test_removing_a_replica_or_a_non_source_region_keeps_the_other_stacks_resources():
    """Sound: the removal step of the procedure only removes resources (the remaining copies' logical ids are
    kept, so nothing named is replaced), one-way and multi-active."""
    source = TableLocation(region="us-west-2", account=SOURCE_ACCOUNT)
    east, europe = TableLocation(region="us-east-1"), TableLocation(region="eu-west-1")
    before, after = _resources_by_stack(_profiles(source, [east, europe])), _resources_by_stack(_profiles(source, [europe]))
    assert set(after) == {"Profiles-us-west-2", "Profiles-eu-west-1"}
    assert all(after[name].items() <= before[name].items() for name in after)
    one_way = []
    for replicas in ([east, TableLocation(region="us-west-2", table_name="OrdersAudit"), europe],
                     [TableLocation(region="us-west-2", table_name="OrdersAudit"), europe]):
        app = cdk.App()
        ReplicatedTable(app, "Orders", source=source, replicas=replicas, partition_key=PK, dashboard=False)
        one_way.append(_resources_by_stack(app))
    assert all(one_way[1][name].items() <= one_way[0][name].items() for name in one_way[1])


def test_the_published_document_does_not_claim_targets_while_the_mapping_is_disabled():
    app = cdk.App()
    construct = ReplicatedTable(
        app, "Employee", source=TableLocation(region="us-west-2", account=SOURCE_ACCOUNT), partition_key=PK,
        dashboard=False,
        replicas=[TableLocation(region="us-east-1", status=LocationStatus.JOINING),  # empty, `join` fills it
                  TableLocation(region="eu-central-1", migration=MigrationOptions())],  # waits for its export
    )
    template = app.synth().get_stack_by_name(construct.source_stack.stack_name).template
    (mapping,) = resources_of_type(template, "AWS::Lambda::EventSourceMapping").values()
    assert mapping["Properties"]["Enabled"] is False  # the migration's safe order: nothing is replicated yet
    (parameter,) = [p for p in resources_of_type(template, "AWS::SSM::Parameter").values()
                    if p["Properties"]["Name"].endswith("/replicator")]
    document = json.loads(parameter["Properties"]["Value"])
    # Either no target is claimed, or the document says the function is not running (a key the CLI can check).
    assert document["targets"] == [] or document.get("enabled") is False
