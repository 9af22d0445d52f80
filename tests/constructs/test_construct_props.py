"""Props that would lose data or fail deep inside CDK are refused at construction, naming the prop and the fix.

Construct only (no synth), so these are cheap.
"""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
import constructs
import pytest
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk.assertions import Template
from construct_helpers import IMPORTED_STREAM_ARN, PK, SK, SOURCE_ACCOUNT

from cdk_replication import (
    ExistingSource,
    KeySchema,
    MigrationOptions,
    ReplicatedTable,
    ReplicaTable,
    ReplicationConfigError,
    ReplicationTarget,
    Replicator,
    ReplicatorOptions,
    ResolvedTable,
    TableLocation,
    TableOptions,
)

SOURCE = TableLocation(region="us-west-2", account=SOURCE_ACCOUNT)


def build(**overrides: Any) -> ReplicatedTable:
    props: dict[str, Any] = {"source": SOURCE, "replicas": [TableLocation(region="us-east-1")], "partition_key": PK}
    props.update(overrides)
    return ReplicatedTable(cdk.App(), "Employee", **props)


def _stack(region: str = "us-west-2") -> cdk.Stack:
    return cdk.Stack(cdk.App(), "Mine", env=cdk.Environment(account=SOURCE_ACCOUNT, region=region))


def replicator(scope: cdk.Stack | None = None, **overrides: Any) -> Replicator:
    props: dict[str, Any] = {
        "source": ResolvedTable("Employee", "us-west-2", SOURCE_ACCOUNT),
        "stream_arn": IMPORTED_STREAM_ARN,
        "key": KeySchema("Id"),
        "targets": [ReplicationTarget(ResolvedTable("Employee", "eu-west-1", SOURCE_ACCOUNT))],
    }
    props.update(overrides)
    return Replicator(scope or _stack(), "Replicator", **props)


# --- defect 4: a partial batch response Lambda would ignore -------------------------------------------------

_IGNORED_RESPONSE = (
    r"report_batch_item_failures=False.*Lambda would ignore the replicator's partial batch response.*"
    r"silently.*Fix: drop report_batch_item_failures"
)


def test_report_batch_item_failures_false_is_refused_by_replicated_table() -> None:
    with pytest.raises(ReplicationConfigError, match=r"^Employee: " + _IGNORED_RESPONSE):
        build(replicator=ReplicatorOptions(report_batch_item_failures=False))


def test_report_batch_item_failures_false_is_refused_by_replicator() -> None:
    with pytest.raises(ReplicationConfigError, match=r"^Mine/Replicator: " + _IGNORED_RESPONSE):
        replicator(options=ReplicatorOptions(report_batch_item_failures=False))


def test_report_batch_item_failures_true_still_accepted() -> None:
    """Code written against the old option keeps working when it asks for what is now the only behaviour."""
    construct = replicator(options=ReplicatorOptions(report_batch_item_failures=True))
    assert construct.options.report_batch_item_failures is True


# --- props of the wrong type: refused naming the prop, the type given and the type expected ------------------

GSI_AS_DICT = {"index_name": "byOwner", "partition_key": dynamodb.Attribute(name="owner", type=dynamodb.AttributeType.STRING)}


def test_a_gsi_given_as_a_dict_names_the_prop_and_the_struct_to_build() -> None:
    """Before: AttributeError: 'dict' object has no attribute '_values', from inside the library."""
    with pytest.raises(
        ReplicationConfigError,
        match=r"^Employee: global_secondary_indexes\[0\] is a dict \(\{'index_name': 'byOwner'.*\), not a "
        r"GlobalSecondaryIndexProps\. Fix: pass aws_dynamodb\.GlobalSecondaryIndexProps "
        r"\(from aws_cdk import aws_dynamodb\); build it with keyword arguments: "
        r"aws_dynamodb\.GlobalSecondaryIndexProps\(\*\*your_dict\)$",
    ):
        build(global_secondary_indexes=[GSI_AS_DICT])


def test_a_gsi_given_as_a_dict_to_replica_table_is_refused_too() -> None:
    options = TableOptions(partition_key=PK, global_secondary_indexes=[GSI_AS_DICT])  # type: ignore[list-item]
    with pytest.raises(
        ReplicationConfigError,
        match=r"^Mine/Copy: options\.global_secondary_indexes\[0\] is a dict .*GlobalSecondaryIndexProps",
    ):
        ReplicaTable(_stack(), "Copy", table_name="Employee", options=options)


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        (
            {"partition_key": "Id"},
            r"partition_key is a str \('Id'\), not an Attribute or None\. Fix: pass aws_dynamodb\.Attribute "
            r"\(from aws_cdk import aws_dynamodb\)",
        ),
        (
            {"replicas": TableLocation(region="us-east-1")},
            r"replicas is a TableLocation .*, not a sequence of TableLocation\. Fix: pass a list of TableLocation "
            r"\(from cdk_replication import TableLocation\)",
        ),
        (
            {"replicas": [{"region": "us-east-1"}]},
            r"replicas\[0\] is a dict .*, not a TableLocation.*TableLocation\(\*\*your_dict\)",
        ),
        ({"source": TableLocation(region=1)}, r"source\.region is an int \(1\), not a str"),  # type: ignore[arg-type]
        ({"mode": "MULTI_ACTIVE"}, r"mode is a str \('MULTI_ACTIVE'\), not a ReplicationMode\. Fix: pass "
                                   r"ReplicationMode\.MULTI_ACTIVE \(from cdk_replication import ReplicationMode\)"),
        ({"billing_mode": "PROVISIONED"}, r"billing_mode is a str .*Fix: pass aws_dynamodb\.BillingMode\.PROVISIONED"),
        ({"point_in_time_recovery": "yes"}, r"point_in_time_recovery is a str \('yes'\), not a bool"),
        ({"read_capacity": True}, r"read_capacity is a bool \(True\), not an int or None"),
        ({"replicator": {"batch_size": 10}}, r"replicator is a dict .*ReplicatorOptions\(\*\*your_dict\)"),
        ({"replicator": ReplicatorOptions(batch_size="10")}, r"replicator\.batch_size is a str \('10'\), not an int"),
        (
            {"partition_key": None, "existing_source": {"stream_arn": IMPORTED_STREAM_ARN}},
            r"existing_source is a dict .*not an ExistingSource or None.*ExistingSource\(\*\*your_dict\)",
        ),
        (
            {"partition_key": None, "existing_source": ExistingSource(IMPORTED_STREAM_ARN, "NEW_AND_OLD_IMAGES")},
            r"existing_source\.stream_view_type is a str .*Fix: pass aws_dynamodb\.StreamViewType\.NEW_AND_OLD_IMAGES",
        ),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_replicated_table_props_of_the_wrong_type(overrides: dict[str, Any], match: str) -> None:
    with pytest.raises(ReplicationConfigError, match=r"^Employee: " + match):
        build(**overrides)


def test_replicator_props_of_the_wrong_type() -> None:
    with pytest.raises(ReplicationConfigError, match=r"^Mine/Replicator: key is a str \('Id'\), not a KeySchema"):
        replicator(key="Id")
    with pytest.raises(ReplicationConfigError, match=r"targets\[0\] is a ResolvedTable .*not a ReplicationTarget"):
        replicator(targets=[ResolvedTable("Employee", "eu-west-1", SOURCE_ACCOUNT)])
    with pytest.raises(ReplicationConfigError, match=r"options\.timeout is an int \(60\), not a Duration.*"
                                                     r"from aws_cdk import Duration"):
        replicator(options=ReplicatorOptions(timeout=60))


def test_right_types_still_pass_including_tuples() -> None:
    """Sequences may be lists or tuples; None where allowed."""
    construct = build(
        replicas=(TableLocation(region="us-east-1"),),
        sort_key=SK,
        billing_mode=dynamodb.BillingMode.PROVISIONED,
        read_capacity=5,
        write_capacity=5,
        global_secondary_indexes=(dynamodb.GlobalSecondaryIndexProps(**GSI_AS_DICT, read_capacity=1, write_capacity=1),),
        replicator=ReplicatorOptions(max_record_age=None),
    )
    assert construct.key == KeySchema("Id", "Version")


# --- a Replicator whose key is not the key of a table of this app that it replicates -------------------------


def _copy(stack: cdk.Stack, name: str = "Employee", sort_key: dynamodb.Attribute | None = SK) -> ReplicaTable:
    return ReplicaTable(stack, f"Copy-{name}", table_name=name, options=TableOptions(partition_key=PK, sort_key=sort_key))


_WRONG_KEY = (
    r"Replicator Mine/Replicator has key \(Id\), but table 'Employee' \(111111111111/us-west-2\) that it "
    r"replicates is keyed \(Id, Version\).*Fix: give the Replicator key=KeySchema"
)


def test_a_replicator_keyed_differently_from_its_source_table_in_the_app_is_refused() -> None:
    stack = _stack()
    _copy(stack)  # the source table, keyed (Id, Version)
    with pytest.raises(ReplicationConfigError, match=r"^Mine/Replicator: " + _WRONG_KEY):
        replicator(stack, key=KeySchema("Id"))


def test_a_table_created_after_its_replicator_is_compared_too() -> None:
    stack = _stack()
    replicator(stack, key=KeySchema("Id"))
    with pytest.raises(ReplicationConfigError, match=r"^Mine/Copy-Employee: " + _WRONG_KEY):
        _copy(stack)


def test_a_target_table_keyed_differently_is_refused() -> None:
    app = cdk.App()
    target_stack = cdk.Stack(app, "Target", env=cdk.Environment(account=SOURCE_ACCOUNT, region="eu-west-1"))
    _copy(target_stack, sort_key=None)
    source_stack = cdk.Stack(app, "Mine", env=cdk.Environment(account=SOURCE_ACCOUNT, region="us-west-2"))
    with pytest.raises(ReplicationConfigError, match=r"table 'Employee' \(111111111111/eu-west-1\) .* keyed \(Id\)"):
        replicator(source_stack, key=KeySchema("Id", "Version"))


def test_matching_keys_and_unrelated_tables_pass() -> None:
    stack = _stack()
    _copy(stack)
    _copy(stack, name="Unrelated", sort_key=None)
    construct = replicator(stack, key=KeySchema("Id", "Version"))
    assert construct.key == KeySchema("Id", "Version")


def test_a_replicator_that_failed_half_built_does_not_break_the_next_table() -> None:
    """Before: the refused Replicator stayed in the tree without ``source``, and the next ReplicaTable crashed
    with AttributeError: 'Replicator' object has no attribute 'source'."""
    stack = _stack()
    with pytest.raises(ReplicationConfigError, match=r"batch_size is 0"):
        replicator(stack, options=ReplicatorOptions(batch_size=0))
    copy = _copy(stack)
    assert copy.key_schema == KeySchema("Id", "Version")


def test_a_table_that_failed_half_built_does_not_break_the_next_replicator() -> None:
    """Before: AttributeError: 'ReplicaTable' object has no attribute 'table_name'. The refused table is keyed
    (Id, Version), so comparing with it would refuse the replicator keyed (Id) as well."""
    stack = _stack()
    with pytest.raises(ReplicationConfigError, match=r"billing_mode PROVISIONED needs read_capacity"):
        ReplicaTable(
            stack,
            "Broken",
            table_name="Employee",
            options=TableOptions(partition_key=PK, sort_key=SK, billing_mode=dynamodb.BillingMode.PROVISIONED),
        )
    construct = replicator(stack, key=KeySchema("Id"))
    assert construct.key == KeySchema("Id")


def test_the_key_comparison_does_not_scan_the_whole_app(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each construct scanning every node of the app made synth quadratic in the number of tables (N=120
    ReplicatedTables of 4 locations: 127 s instead of 7.7 s); the comparison uses a registry instead."""

    def scan(self: object, *args: object) -> None:
        raise AssertionError("node.find_all() called while constructing")

    monkeypatch.setattr(constructs.Node, "find_all", scan)
    stack = _stack()
    _copy(stack)
    with pytest.raises(ReplicationConfigError, match=r"^Mine/Replicator: " + _WRONG_KEY):
        replicator(stack, key=KeySchema("Id"))
    build(sort_key=SK)


# --- what worked before the type check keeps working ------------------------------------------------------

OWNER = dynamodb.Attribute(name="owner", type=dynamodb.AttributeType.STRING)


def _table_properties(construct: ReplicatedTable, region: str = "us-east-1") -> dict[str, Any]:
    template = Template.from_stack(construct.stack_for(region)).find_resources("AWS::DynamoDB::Table")
    (table,) = template.values()
    properties: dict[str, Any] = table["Properties"]
    return properties


def test_a_v2_gsi_without_capacities_is_accepted_as_before() -> None:
    """GlobalSecondaryIndexPropsV2 (TableV2's struct) shares every field with GlobalSecondaryIndexProps except the
    capacities; without them it was passed through before the type check, and still is."""
    construct = build(
        global_secondary_indexes=[
            dynamodb.GlobalSecondaryIndexPropsV2(
                index_name="byOwner", partition_key=OWNER, projection_type=dynamodb.ProjectionType.KEYS_ONLY
            )
        ]
    )
    (gsi,) = construct.table_options.global_secondary_indexes
    assert isinstance(gsi, dynamodb.GlobalSecondaryIndexProps)
    assert _table_properties(construct)["GlobalSecondaryIndexes"] == [
        {
            "IndexName": "byOwner",
            "KeySchema": [{"AttributeName": "owner", "KeyType": "HASH"}],
            "Projection": {"ProjectionType": "KEYS_ONLY"},
        }
    ]


def test_a_v2_gsi_with_capacities_is_refused_naming_the_struct_to_use() -> None:
    """Its capacities are Capacity objects, which Table's add_global_secondary_index does not take."""
    gsi = dynamodb.GlobalSecondaryIndexPropsV2(
        index_name="byOwner", partition_key=OWNER, read_capacity=dynamodb.Capacity.fixed(5)
    )
    with pytest.raises(
        ReplicationConfigError,
        match=r"^Employee: global_secondary_indexes\[0\] is a GlobalSecondaryIndexPropsV2 with read_capacity: "
        r"GlobalSecondaryIndexPropsV2 is for TableV2\. Fix: use aws_dynamodb\.GlobalSecondaryIndexProps\(\.\.\.\), "
        r"with read_capacity and write_capacity as numbers \(from aws_cdk import aws_dynamodb\)$",
    ):
        build(
            billing_mode=dynamodb.BillingMode.PROVISIONED,
            read_capacity=5,
            write_capacity=5,
            global_secondary_indexes=[gsi],
        )


def test_a_v2_gsi_in_table_options_is_accepted_too() -> None:
    options = TableOptions(
        partition_key=PK,
        global_secondary_indexes=[dynamodb.GlobalSecondaryIndexPropsV2(index_name="byOwner", partition_key=OWNER)],
    )
    assert [g["IndexName"] for g in _gsis_of(ReplicaTable(_stack(), "Copy", table_name="Employee", options=options))] == [
        "byOwner"
    ]


def _gsis_of(copy: ReplicaTable) -> list[dict[str, Any]]:
    tables = Template.from_stack(cdk.Stack.of(copy)).find_resources("AWS::DynamoDB::Table")
    (table,) = tables.values()
    gsis: list[dict[str, Any]] = table["Properties"]["GlobalSecondaryIndexes"]
    return gsis


def test_any_iterable_is_accepted_for_a_sequence_and_read_once() -> None:
    """Generators worked before the type check (all but replicas with a migration, read a second time and then
    empty); they are materialized once."""
    regions = ("us-east-1", "eu-west-1")
    construct = build(
        replicas=(TableLocation(region=region) for region in regions),
        global_secondary_indexes=(gsi for gsi in [dynamodb.GlobalSecondaryIndexProps(index_name="byOwner", partition_key=OWNER)]),
        sort_key=SK,
        local_secondary_indexes=iter([dynamodb.LocalSecondaryIndexProps(index_name="byName", sort_key=OWNER)]),
    )
    assert [location.region for location in construct.replica_locations] == list(regions)
    assert [lsi.index_name for lsi in construct.table_options.local_secondary_indexes] == ["byName"]
    properties = _table_properties(construct, "eu-west-1")
    assert [g["IndexName"] for g in properties["GlobalSecondaryIndexes"]] == ["byOwner"]
    assert [i["IndexName"] for i in properties["LocalSecondaryIndexes"]] == ["byName"]

    target = ReplicationTarget(ResolvedTable("Employee", "eu-west-1", SOURCE_ACCOUNT))
    assert replicator(targets=(t for t in [target])).targets == (target,)

    options = TableOptions(
        partition_key=PK,
        global_secondary_indexes=(g for g in [dynamodb.GlobalSecondaryIndexProps(index_name="byOwner", partition_key=OWNER)]),
    )
    assert [g["IndexName"] for g in _gsis_of(ReplicaTable(_stack(), "Copy", table_name="Employee", options=options))] == [
        "byOwner"
    ]


def test_a_generator_of_replicas_keeps_its_migration() -> None:
    """Before the type check a generator of replicas was read twice, the second time empty: a replica's
    migration was dropped, its table created empty and the mapping enabled (3de0f55: migrations == {})."""
    construct = build(replicas=(loc for loc in [TableLocation(region="us-east-1", migration=MigrationOptions())]))
    assert [location.region for location in construct.migrations] == ["us-east-1"]
    assert construct.replica_tables == {}  # created from the export, once its ARN is set
    assert construct.replicator.enabled is False


def test_a_string_or_a_dict_is_still_no_sequence() -> None:
    with pytest.raises(ReplicationConfigError, match=r"replicas is a str \('us-east-1'\), not a sequence of TableLocation"):
        build(replicas="us-east-1")
    with pytest.raises(ReplicationConfigError, match=r"global_secondary_indexes is a dict .*not a sequence of"):
        build(global_secondary_indexes=GSI_AS_DICT)


# --- number tokens: the construct checks ranges at synth, so it needs literals ------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda stack: cdk.Token.as_number(cdk.Aws.ACCOUNT_ID),
        lambda stack: cdk.CfnParameter(stack, "Capacity", type="Number").value_as_number,
    ],
    ids=["Token.as_number", "CfnParameter.value_as_number"],
)
def test_a_number_token_is_refused_as_a_token(make: Any) -> None:
    """Before: "read_capacity is a float (-1.8881545897087186e+289), not an int or None ... pass int"."""
    app = cdk.App()
    token = make(cdk.Stack(app, "Params"))
    with pytest.raises(
        ReplicationConfigError,
        match=r"^Employee: read_capacity is a token \(an unresolved value such as Token\.as_number\(\.\.\.\) or "
        r"CfnParameter\.value_as_number\), which cannot be used there: the construct checks it at synth time\. "
        r"Fix: pass a literal int$",
    ):
        ReplicatedTable(
            app,
            "Employee",
            source=SOURCE,
            replicas=[TableLocation(region="us-east-1")],
            partition_key=PK,
            billing_mode=dynamodb.BillingMode.PROVISIONED,
            read_capacity=token,
            write_capacity=5,
        )


def test_a_number_token_in_nested_options_is_refused_as_a_token() -> None:
    with pytest.raises(
        ReplicationConfigError, match=r"^Mine/Replicator: options\.batch_size is a token .* Fix: pass a literal int$"
    ):
        replicator(options=ReplicatorOptions(batch_size=cdk.Token.as_number(cdk.Aws.ACCOUNT_ID)))
