"""Issue 13 item 8: an ``ExistingSource``'s stream ARN names the source's region and account, so ``source=``
need not repeat them; a ``source`` that says otherwise is refused naming both values and the fix.

These construct only (no synth), so they are cheap.
"""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_dynamodb as dynamodb
from construct_helpers import OTHER_ACCOUNT, PK, SOURCE_ACCOUNT

from cdk_replication import ExistingSource, ReplicatedTable, ReplicationConfigError, TableLocation

STREAM_ARN = "arn:aws:dynamodb:us-west-2:111111111111:table/Orders/stream/2026-01-01T00:00:00.000"


def build(source: TableLocation, stream_arn: str = STREAM_ARN, **overrides: Any) -> ReplicatedTable:
    props: dict[str, Any] = {
        "source": source,
        "replicas": [TableLocation(region="us-east-1")],
        "existing_source": ExistingSource(
            stream_arn=stream_arn, stream_view_type=dynamodb.StreamViewType.NEW_AND_OLD_IMAGES, partition_key=PK
        ),
    }
    props.update(overrides)
    return ReplicatedTable(cdk.App(), "Orders", **props)


def test_region_and_account_come_from_the_stream_arn() -> None:
    construct = build(TableLocation())
    assert (construct.source_location.region, construct.source_location.account) == ("us-west-2", SOURCE_ACCOUNT)
    assert construct.source_location.table_name == "Orders"
    # Replicas default to the source's account, now the ARN's.
    assert construct.replica_locations[0].account == SOURCE_ACCOUNT
    assert sorted(stack.stack_name for stack in construct.stacks.values()) == ["Orders-us-east-1", "Orders-us-west-2"]


def test_a_source_that_repeats_the_arn_is_accepted() -> None:
    construct = build(TableLocation(region="us-west-2", account=SOURCE_ACCOUNT))
    assert construct.source_location.env_key == (SOURCE_ACCOUNT, "us-west-2")


@pytest.mark.parametrize(
    ("source", "match"),
    [
        (
            TableLocation(region="eu-west-1"),
            r"source region 'eu-west-1' differs from the region of existing_source.stream_arn \('us-west-2'\)"
            r".*leave source region unset \(it is taken from the stream ARN\)",
        ),
        (
            TableLocation(account=OTHER_ACCOUNT),
            r"source account '222222222222' differs from the account of existing_source.stream_arn "
            r"\('111111111111'\).*leave source account unset",
        ),
    ],
)
def test_a_contradiction_is_refused_naming_both_values(source: TableLocation, match: str) -> None:
    with pytest.raises(ReplicationConfigError, match=match):
        build(source)


def test_without_existing_source_the_region_is_still_required() -> None:
    with pytest.raises(ReplicationConfigError, match=r"source region is None.*pass the region as a string"):
        ReplicatedTable(
            cdk.App(), "Orders", source=TableLocation(account=SOURCE_ACCOUNT),
            replicas=[TableLocation(region="us-east-1")], partition_key=PK,
        )


def test_a_replica_still_needs_its_region() -> None:
    with pytest.raises(ReplicationConfigError, match=r"replicas\[0\] has no region.*set region="):
        build(TableLocation(), replicas=[TableLocation(account=OTHER_ACCOUNT)])


def test_a_token_stream_arn_is_refused_as_before() -> None:
    with pytest.raises(ReplicationConfigError, match=r"not a literal ARN"):
        build(TableLocation(region="us-west-2", account=SOURCE_ACCOUNT), stream_arn=cdk.Token.as_string(cdk.Aws.NO_VALUE))
