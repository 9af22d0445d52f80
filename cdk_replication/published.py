"""What a ``ReplicatedTable`` publishes about itself in SSM Parameter Store, so that the command line and the
application read the deployed truth rather than guess it from the app's source.

* ``/cdk-replication/<table>/status`` in the stack of every copy: its ``LocationStatus`` as a plain string
  (an application may ``ssm:GetParameter`` it and refuse to write unless ``ACTIVE``), also the stack output
  ``ReplicationStatus``.
* ``/cdk-replication/<table>/replicator`` in every writer's stack: the deployed replicator's configuration as
  compact JSON with sorted keys (:func:`replicator_document`). It ``DependsOn`` the function and its event
  source mapping, so CloudFormation changes it only once the function's new configuration is deployed: a
  target listed there is one the function sends to (a ``cdk-replication join`` waits for that).

Both are standard-tier ``String`` parameters (free, at most 4 KB each).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from aws_cdk import CfnOutput, CfnResource, Stack
from aws_cdk import aws_ssm as ssm

from ._lambda.replicator import contract
from .errors import ReplicationConfigError
from .model import ConflictStrategy, LocationStatus, ReplicationTarget, ResolvedTable
from .physical_names import (
    REPLICATOR_DOCUMENT_VERSION,
    partition_for_region,
    replicator_parameter_name,
    status_parameter_name,
    table_arn,
)
from .replicator import Replicator

#: SSM's standard tier holds values of at most 4 KB.
MAX_PARAMETER_BYTES = 4096
#: The stack output holding a copy's status (one copy in the stack; with several, the table name follows).
STATUS_OUTPUT = "ReplicationStatus"


def publish_status(stack: Stack, location: ResolvedTable, status: LocationStatus, output_id: str) -> ssm.StringParameter:
    """The status parameter of ``location`` in ``stack`` (its own stack), and the stack output ``output_id``."""
    parameter = ssm.StringParameter(
        stack,
        f"Status-{location.table_name}",
        parameter_name=status_parameter_name(location.table_name),
        string_value=status.value,
        tier=ssm.ParameterTier.STANDARD,
        description=f"Replication status of {location.table_name} here: ACTIVE, JOINING or LEAVING; write to "
        "this copy only while ACTIVE (cdk-replication)",
    )
    CfnOutput(
        stack,
        output_id,
        value=status.value,
        description=f"Replication status of table {location.table_name} in this stack (also in SSM parameter "
        f"{status_parameter_name(location.table_name)})",
    )
    return parameter


def target_entry(target: ReplicationTarget, status: LocationStatus) -> dict[str, Any]:
    """One element of the published document's ``targets``: the table the replicator sends to, its status, and
    the transform applied on the way (``None``: the replica receives every item whole)."""
    table = target.table
    return {"table": table_arn(_partition(table), table.region, table.account, table.table_name),
            "status": status.value, "transform": None if target.transform is None else dict(target.transform)}


def replicator_document(
    replicator: Replicator,
    statuses: Mapping[ResolvedTable, LocationStatus],
    conflict_attribute: str | None,
    conflict_strategy: ConflictStrategy | None,
) -> dict[str, Any]:
    """The published configuration of ``replicator``: exactly the targets its ``REPLICATION_TARGETS`` names,
    and whether its event source mapping is deployed enabled (``enabled``: when ``False`` nothing reaches them).

    Args:
        replicator: the deployed replicator.
        statuses: every location's status (``ACTIVE`` for a location not in it).
        conflict_attribute: multi-active's conflict attribute; ``None`` one-way.
        conflict_strategy: multi-active's conflict strategy; ``None`` one-way.
    """
    source = replicator.source
    function_name = replicator.function_name or replicator.function.function_name
    return {
        "version": REPLICATOR_DOCUMENT_VERSION,
        "mode": replicator.mode.value,
        "changeSource": replicator.change_source.value,
        "source": table_arn(_partition(source), source.region, source.account, source.table_name),
        "function": function_name,
        "metadataPrefix": replicator.options.metadata_prefix,
        "conflictAttribute": conflict_attribute,
        "conflictStrategy": conflict_strategy.value if conflict_strategy is not None else None,
        # The mapping as deployed: while False (created disabled, a replica waiting for its export) nothing is
        # sent to the targets, so a reader must not take them as replicated to (`join` checks it).
        "enabled": replicator.enabled,
        # Where its tombstones carry their expiry: a reader of a tombstone needs it (with another attribute a
        # tombstone no longer matches its marker and reads as a live item), and `join` would otherwise need
        # DescribeTimeToLive on every table.
        "ttlAttribute": replicator.environment.get(contract.TTL_ATTRIBUTE)
        or contract.default_ttl_attribute(replicator.options.metadata_prefix),
        "targets": [target_entry(t, statuses.get(t.table, LocationStatus.ACTIVE)) for t in replicator.targets],
    }


def publish_replicator(path: str, replicator: Replicator, document: Mapping[str, Any]) -> ssm.StringParameter:
    """The replicator parameter of ``replicator`` (in its stack), ``DependsOn`` its function and mapping.

    Raises:
        ReplicationConfigError: the document is over SSM's 4 KB (the message names the size and the fix).
    """
    value = json.dumps(document, separators=(",", ":"), sort_keys=True)
    # With a generated function name (a token) the size is an estimate; a ReplicatedTable's is literal.
    size = len(value.encode())
    if size > MAX_PARAMETER_BYTES:
        raise ReplicationConfigError(
            path,
            f"the published replicator configuration of {replicator.source.table_name!r} "
            f"({replicator_parameter_name(replicator.source.table_name)}) is {size} bytes, above SSM's "
            f"{MAX_PARAMETER_BYTES}-byte standard-tier limit ({len(replicator.targets)} targets)",
            # Not "split the replicas over two ReplicatedTables": they would share this parameter, the
            # function and its role (all named after the source table), which the app refuses.
            "use shorter table names, or fewer replicas per ReplicatedTable (a second ReplicatedTable cannot read "
            "the same source: its replicator and parameters would have the same names); or compose ReplicaTable "
            "and Replicator yourself",
        )
    parameter = ssm.StringParameter(
        replicator,
        "PublishedConfiguration",
        parameter_name=replicator_parameter_name(replicator.source.table_name),
        string_value=value,
        tier=ssm.ParameterTier.STANDARD,
        description=f"Deployed configuration of the replicator of {replicator.source.table_name} (cdk-replication)",
    )
    for dependency in (replicator.function, replicator.event_source_mapping):
        child = dependency.node.default_child
        assert isinstance(child, CfnResource)
        # Changed only once the function's new configuration and its mapping are deployed.
        parameter.node.add_dependency(child)
    return parameter


def _partition(location: ResolvedTable) -> str:
    return partition_for_region(location.region)


def status_output_id(table_name: str, copies_in_stack: int) -> str:
    """The status output's id: ``ReplicationStatus``, followed by the table name's letters and digits when the
    stack holds several copies of the table (a same-region audit copy), and then, when the name has other
    characters (``-``, ``_``, ``.``, which an output id cannot hold), 8 hex digits of its SHA-256: tables
    ``Orders-audit`` and ``Orders_audit`` get distinct ids."""
    if copies_in_stack == 1:
        return STATUS_OUTPUT
    letters = "".join(ch for ch in table_name if ch.isascii() and ch.isalnum())
    if letters == table_name:
        return STATUS_OUTPUT + letters
    return STATUS_OUTPUT + letters + hashlib.sha256(table_name.encode()).hexdigest()[:8]


__all__ = [
    "MAX_PARAMETER_BYTES",
    "STATUS_OUTPUT",
    "publish_replicator",
    "publish_status",
    "replicator_document",
    "status_output_id",
    "target_entry",
]
