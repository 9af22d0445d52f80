"""The topology resolver (issue 11, "resolve, then build"): props in, one frozen ``Topology`` out.

Plain values only: no ``App``, no stack, nothing synthesized, so these run in milliseconds. The messages of
the rules are pinned by the construct tests (test_construct_validation.py and friends), which go through
the same resolver; here: the defaults it fills in, and that the replicator options are checked once.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import aws_cdk as cdk
import pytest

from cdk_replication import (
    ChangeSource,
    ConflictStrategy,
    MigrationOptions,
    ReplicatedTable,
    ReplicationConfigError,
    ReplicationMode,
    ReplicatorOptions,
    ResolvedTable,
    TableLocation,
)
from cdk_replication import defaults
from cdk_replication.topology import ReplicatedTableProps, Topology, resolve

from construct_helpers import EXPORT_ARN, OTHER_ACCOUNT, PK, SOURCE_ACCOUNT

SOURCE = TableLocation(region="us-west-2", account=SOURCE_ACCOUNT)
HOUR = int(defaults.MAX_RECORD_AGE.to_seconds())


def topology(**overrides: Any) -> Topology:
    props: dict[str, Any] = {"source": SOURCE, "replicas": [TableLocation(region="us-east-1")], "partition_key": PK}
    props.update(overrides)
    return resolve("Orders", "Orders", ReplicatedTableProps(**props))


def test_one_way_defaults_are_filled_in() -> None:
    resolved = topology(replicas=[TableLocation(region="us-east-1"), TableLocation(region="eu-west-1", account=OTHER_ACCOUNT)])
    source = ResolvedTable("Orders", "us-west-2", SOURCE_ACCOUNT)
    assert resolved.source == source
    assert resolved.replicas == (
        ResolvedTable("Orders", "us-east-1", SOURCE_ACCOUNT),
        ResolvedTable("Orders", "eu-west-1", OTHER_ACCOUNT),
    )
    assert resolved.writers == (source,)
    assert resolved.others(source) == resolved.replicas
    assert resolved.key.partition_key == "Id" and resolved.key.sort_key is None
    assert (resolved.conflict_attribute, resolved.conflict_strategy, resolved.tombstone_ttl_attribute) == (None, None, None)
    assert resolved.table_options.time_to_live_attribute is None
    assert resolved.replica_table_options == resolved.table_options
    assert resolved.stack_name_prefix == "Orders"
    assert resolved.replicator.max_record_age.to_seconds() == HOUR
    assert resolved.migrations == {} and resolved.kinesis is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        resolved.mode = ReplicationMode.MULTI_ACTIVE  # type: ignore[misc]


def test_multi_active_gets_conflict_defaults_and_tombstone_ttl_everywhere() -> None:
    resolved = topology(mode=ReplicationMode.MULTI_ACTIVE)
    expires = defaults.METADATA_PREFIX + defaults.TOMBSTONE_TTL_SUFFIX
    assert resolved.conflict_attribute == defaults.CONFLICT_ATTRIBUTE
    assert resolved.conflict_strategy == ConflictStrategy.TIMESTAMP
    assert resolved.table_options.time_to_live_attribute == expires
    assert resolved.tombstone_ttl_attribute == expires
    assert resolved.writers == resolved.locations
    assert resolved.others(resolved.replicas[0]) == (resolved.source,)


def test_multi_active_keeps_a_given_ttl_attribute_and_conflict_settings() -> None:
    resolved = topology(
        mode=ReplicationMode.MULTI_ACTIVE,
        time_to_live_attribute="expiresAt",
        conflict_attribute="version",
        conflict_strategy=ConflictStrategy.VERSION,
    )
    assert (resolved.conflict_attribute, resolved.conflict_strategy) == ("version", ConflictStrategy.VERSION)
    assert resolved.tombstone_ttl_attribute == "expiresAt" == resolved.table_options.time_to_live_attribute


def test_kinesis_gives_only_the_replicas_a_tombstone_ttl_and_lifts_the_age_limit() -> None:
    resolved = topology(change_source=ChangeSource.KINESIS)
    expires = defaults.METADATA_PREFIX + defaults.TOMBSTONE_TTL_SUFFIX
    assert resolved.table_options.time_to_live_attribute is None
    assert resolved.replica_table_options.time_to_live_attribute == expires == resolved.tombstone_ttl_attribute
    assert resolved.kinesis is not None
    assert resolved.replicator.max_record_age is None


def test_a_migration_starts_the_mapping_disabled_without_an_age_limit() -> None:
    resolved = topology(replicas=[TableLocation(region="us-east-1", migration=MigrationOptions())])
    assert resolved.replicator.enabled is False
    assert resolved.replicator.max_record_age is None
    assert list(resolved.migrations) == [resolved.replicas[0]]
    loaded = topology(
        replicas=[TableLocation(region="us-east-1", migration=MigrationOptions(export_arn=EXPORT_ARN))],
        replicator=ReplicatorOptions(enabled=True, max_record_age=cdk.Duration.hours(5)),
    )
    assert loaded.replicator.enabled is True
    assert loaded.replicator.max_record_age.to_seconds() == 5 * 3600  # a value given is kept


def test_rules_are_refused_without_building_anything() -> None:
    with pytest.raises(ReplicationConfigError, match=r"^Orders: replicas is empty"):
        topology(replicas=[])
    with pytest.raises(ReplicationConfigError, match=r"^Orders: conflict_attribute='v' .* ONE_WAY mode"):
        topology(conflict_attribute="v")


def test_resolved_replicator_options_are_checked_and_a_changed_copy_is_not() -> None:
    options = topology().replicator
    assert options._checked
    assert options.resolve("elsewhere", backlog=True) is options  # not checked (nor rewritten) again
    changed = dataclasses.replace(options, batch_size=0)
    assert not changed._checked
    with pytest.raises(ReplicationConfigError, match=r"^elsewhere: batch_size is 0"):
        changed.resolve("elsewhere", backlog=False)


def test_replicated_table_checks_the_replicator_options_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Once per ReplicatedTable, not once more in each Replicator it builds (issue 11: they were validated and
    rewritten twice)."""
    calls: list[str] = []
    validate = ReplicatorOptions.validate

    def counting(self: ReplicatorOptions, path: str) -> None:
        calls.append(path)
        validate(self, path)

    monkeypatch.setattr(ReplicatorOptions, "validate", counting)
    ReplicatedTable(
        cdk.App(),
        "Orders",
        source=SOURCE,
        replicas=[TableLocation(region="us-east-1"), TableLocation(region="eu-west-1")],
        partition_key=PK,
        mode=ReplicationMode.MULTI_ACTIVE,
        encryption=cdk.aws_dynamodb.TableEncryption.DEFAULT,
    )
    assert calls == ["Orders"]


def test_the_props_are_the_constructor_parameters_with_the_same_defaults() -> None:
    """``ReplicatedTableProps`` repeats ``ReplicatedTable``'s signature (users read the signature; the resolver
    is usable without a construct): the two must not drift apart."""
    import inspect

    parameters = inspect.signature(ReplicatedTable.__init__).parameters
    given = {name: p.default for name, p in parameters.items() if p.kind is inspect.Parameter.KEYWORD_ONLY}
    fields = {f.name: f.default for f in dataclasses.fields(ReplicatedTableProps)}
    missing = inspect.Parameter.empty, dataclasses.MISSING
    assert list(given) == list(fields)
    assert {n: (None if v in missing else v) for n, v in given.items()} == {
        n: (None if v in missing else v) for n, v in fields.items()
    }
