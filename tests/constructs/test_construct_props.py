"""Props that would lose data or fail deep inside CDK are refused at construction, naming the prop and the fix.

Construct only (no synth), so these are cheap.
"""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_dynamodb as dynamodb
from construct_helpers import IMPORTED_STREAM_ARN, PK, SK, SOURCE_ACCOUNT

from cdk_replication import (
    ExistingSource,
    KeySchema,
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
