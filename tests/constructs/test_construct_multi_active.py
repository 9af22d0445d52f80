"""Multi-active: every location is a writer with a stream and its own replicator (full mesh)."""

from __future__ import annotations

import json

import pytest
from aws_cdk import Duration
from construct_helpers import OTHER_ACCOUNT, SOURCE_ACCOUNT, Synthesized, replicator_config, resources_of_type

from cdk_replication.replicator import tombstone_ttl_seconds

LOCATIONS = {
    "Profiles-us-west-2": (SOURCE_ACCOUNT, "us-west-2"),
    "Profiles-us-east-1": (SOURCE_ACCOUNT, "us-east-1"),
    f"Profiles-{OTHER_ACCOUNT}-eu-west-1": (OTHER_ACCOUNT, "eu-west-1"),
}


def _env(synthesized: Synthesized, stack_name: str) -> dict[str, str]:
    (function,) = resources_of_type(synthesized.template_json(stack_name), "AWS::Lambda::Function").values()
    return function["Properties"]["Environment"]["Variables"]


def test_every_location_has_a_streamed_table_with_tombstone_ttl(multi_active: Synthesized) -> None:
    for stack_name in LOCATIONS:
        (table,) = resources_of_type(multi_active.template_json(stack_name), "AWS::DynamoDB::Table").values()
        assert table["Properties"]["StreamSpecification"] == {"StreamViewType": "NEW_AND_OLD_IMAGES"}
        assert table["Properties"]["TimeToLiveSpecification"] == {"AttributeName": "_rep_expiresAt", "Enabled": True}


def test_full_mesh_of_replicators(multi_active: Synthesized) -> None:
    for stack_name, (account, region) in LOCATIONS.items():
        env = _env(multi_active, stack_name)
        assert env["REPLICATION_MODE"] == "MULTI_ACTIVE"
        assert env["REPLICATION_CONFLICT_ATTRIBUTE"] == "updatedAt"
        assert env["REPLICATION_CONFLICT_STRATEGY"] == "TIMESTAMP"
        assert env["REPLICATION_TTL_ATTRIBUTE"] == "_rep_expiresAt"
        assert json.loads(env["REPLICATION_SOURCE"]) == {"tableName": "Profiles", "region": region, "account": account}
        targets = {(t["account"], t["region"]) for t in json.loads(env["REPLICATION_TARGETS"])}
        assert targets == set(LOCATIONS.values()) - {(account, region)}
        for target in json.loads(env["REPLICATION_TARGETS"]):
            # A writer role exactly when the target is in another account.
            assert ("roleArn" in target) == (target["account"] != account)


def test_mappings_run_five_batches_of_100_per_shard(multi_active: Synthesized) -> None:
    """Issue 17: a conditional write costs ~1 ms of CPU, so one container at 1,024 MB cannot carry a saturated
    shard (1,000 records/s); five lanes of 100-record batches can, with short batches (docs/performance.md)."""
    for stack_name in LOCATIONS:
        (mapping,) = resources_of_type(multi_active.template_json(stack_name), "AWS::Lambda::EventSourceMapping").values()
        assert (mapping["Properties"]["ParallelizationFactor"], mapping["Properties"]["BatchSize"]) == (5, 100)
        assert _env(multi_active, stack_name)["REPLICATION_MAX_CONCURRENCY"] == "128"


def test_environments_are_accepted_by_the_replicator(multi_active: Synthesized) -> None:
    load_config = replicator_config().load_config
    for stack_name in LOCATIONS:
        config = load_config(_env(multi_active, stack_name))
        assert config.mode.value == "MULTI_ACTIVE"
        assert config.ttl_attribute == "_rep_expiresAt"
        # 24 h stream retention + 1 h maximum record age + 24 h margin (rule 5).
        assert config.tombstone_ttl_seconds == (24 + 1 + 24) * 3600
        assert (config.key.partition_key, config.key.sort_key) == ("Id", "Version")


def test_cross_account_writer_roles_each_way(multi_active: Synthesized) -> None:
    def writer_roles(stack_name: str) -> list[str]:
        roles = resources_of_type(multi_active.template_json(stack_name), "AWS::IAM::Role").values()
        return sorted(r["Properties"]["RoleName"] for r in roles if "-writer-" in r["Properties"]["RoleName"])

    assert writer_roles("Profiles-us-west-2") == ["Profiles-us-west-2-writer-222222222222-eu-west-1"]
    assert writer_roles("Profiles-us-east-1") == ["Profiles-us-east-1-writer-222222222222-eu-west-1"]
    assert writer_roles(f"Profiles-{OTHER_ACCOUNT}-eu-west-1") == [
        "Profiles-eu-west-1-writer-111111111111-us-east-1",
        "Profiles-eu-west-1-writer-111111111111-us-west-2",
    ]


def test_no_stack_dependencies(multi_active: Synthesized) -> None:
    """Each stack writes to the others; dependencies would be circular."""
    assert all(stack.dependencies == [] for stack in multi_active.stacks())


def test_surface_lists_every_replicator(multi_active: Synthesized) -> None:
    construct = multi_active.subject
    assert sorted(loc.region for loc in construct.replicators) == ["eu-west-1", "us-east-1", "us-west-2"]
    assert construct.replicator is construct.replicators[construct.source_location]


@pytest.mark.parametrize(("max_record_age", "hours"), [(Duration.hours(6), 24 + 6 + 24), (None, 24 + 24 + 24)])
def test_tombstones_outlive_every_record_that_can_still_arrive(max_record_age: Duration | None, hours: int) -> None:
    assert tombstone_ttl_seconds(max_record_age) == hours * 3600
