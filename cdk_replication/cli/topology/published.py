"""The construct's published configuration (SSM Parameter Store), as the topology commands read it.

Two parameters per location (docs/cli.md, "join"):

* ``/cdk-replication/<table name>/status`` in the (account, region) of every copy: ``ACTIVE``, ``JOINING`` or
  ``LEAVING``;
* ``/cdk-replication/<table name>/replicator`` in every writer's (account, region): JSON naming the tables its
  deployed replicator sends to (``targets``), its mode, conflict attribute and metadata prefix. It is updated only
  once the function's new configuration is live, so a target listed there is one the replicator sends to.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from typing import Any

from cdk_replication._lambda.replicator import contract
from cdk_replication.cli.errors import ACCESS_ERROR_CODES, BadInput, error_code, error_message
from cdk_replication.cli.tables import Connection, TableInfo

STATUS_PARAMETER = "/cdk-replication/{table}/status"
REPLICATOR_PARAMETER = "/cdk-replication/{table}/replicator"
STATUSES = ("ACTIVE", "JOINING", "LEAVING")
ONE_WAY, MULTI_ACTIVE = "ONE_WAY", "MULTI_ACTIVE"


def table_identity(arn: str) -> tuple[str, str]:
    """``(region, table name)`` of a table ARN: how a published target is matched to a table on the command
    line (DynamoDB Local reports one placeholder account in every ARN, so the account is left out)."""
    parts = arn.split(":", 5)
    if len(parts) < 6 or not parts[5].startswith("table/"):
        raise BadInput(f"the published parameter names {arn!r}, which is not a table ARN")
    return parts[3], parts[5][len("table/"):]


def identity_of(info: TableInfo) -> tuple[str, str]:
    """``(region, table name)`` of a described table (the region it was reached in, not its ARN's)."""
    return info.region, info.arn.rsplit("/", 1)[-1]


def location_id(info: TableInfo) -> str:
    """``region:table`` of a described table: how reports and state files name a location (emulators report
    one region and account in every ARN, so the ARN does not tell two regions' tables apart)."""
    region, name = identity_of(info)
    return f"{region}:{name}"


@dataclass(frozen=True)
class PublishedReplicator:
    """One writer's ``replicator`` parameter.

    Attributes:
        parameter: the parameter's name, for messages.
        region: the region it was read in.
        mode: ``ONE_WAY`` or ``MULTI_ACTIVE``.
        metadata_prefix: the replicator's metadata prefix (default ``_rep_`` when the parameter has none).
        conflict_attribute: multi-active: the attribute that orders writes; ``None`` one-way.
        conflict_strategy: ``TIMESTAMP`` or ``VERSION``; ``None`` one-way.
        targets: ``(region, table name)`` -> the target's status, for every table the replicator sends to.
        transforms: ``(region, table name)`` -> the target's replica transform spec (contract C), ``None`` for an
            exact copy; default: none.
        enabled: whether its event source mapping is deployed enabled (``False``: created disabled, a replica
            awaiting its export; nothing reaches ``targets``). A document without the field is taken as enabled:
            only documents published earlier in this same unreleased version lack it, and the construct
            created a mapping disabled only for a migration replica, whose ``join`` is not this command's.
        ttl_attribute: the attribute the replicator writes its tombstones' expiry to (``ttlAttribute``);
            ``None`` when the document does not say (older documents): the reader must find it another way.
        version: the parameter's SSM version when read (``None`` when not known): it changes on every update,
            so a copy made under one version is not trusted under another (the writer may have stopped sending
            in between).
    """

    parameter: str
    region: str
    mode: str
    metadata_prefix: str
    conflict_attribute: str | None
    conflict_strategy: str | None
    targets: dict[tuple[str, str], str]
    transforms: dict[tuple[str, str], dict[str, Any] | None] = dataclasses.field(default_factory=dict)
    enabled: bool = True
    ttl_attribute: str | None = None
    version: int | None = None

    @classmethod
    def parse(cls, parameter: str, region: str, text: str, version: int | None = None) -> "PublishedReplicator":
        """Read the parameter's JSON value; a value of an unknown shape is refused (:class:`BadInput`)."""
        try:
            doc: dict[str, Any] = json.loads(text)
            targets = {table_identity(t["table"]): str(t.get("status") or "ACTIVE") for t in doc["targets"]}
            mode = str(doc["mode"])
            transforms = {table_identity(t["table"]): t.get("transform") or None for t in doc["targets"]}
            enabled = doc.get("enabled", True)
            if not isinstance(enabled, bool):
                raise TypeError(f"enabled is {enabled!r}, not true or false")
        except (ValueError, KeyError, TypeError) as exc:
            raise BadInput(f"parameter {parameter} in {region} is not the construct's replicator document "
                           f"({type(exc).__name__}: {exc}): deploy the app with this cdk-replication") from None
        return cls(parameter, region, mode, str(doc.get("metadataPrefix") or contract.DEFAULT_METADATA_PREFIX),
                   doc.get("conflictAttribute"), doc.get("conflictStrategy") or None, targets, transforms,
                   enabled, doc.get("ttlAttribute") or None, version)

    def sends_to(self, info: TableInfo) -> bool:
        """Whether the deployed replicator sends to the table ``info``: listed in ``targets`` and its mapping
        enabled (a disabled mapping sends nothing, whatever it lists)."""
        return self.enabled and identity_of(info) in self.targets


def read_parameter(conn: Connection, region: str, name: str) -> tuple[str, int | None] | None:
    """The value and SSM version of parameter ``name`` in ``region`` (``None`` when it does not exist).

    Raises:
        BadInput: access denied (names ``ssm:GetParameter`` and the parameter).
    """
    from botocore.exceptions import ClientError

    own = os.environ.get("AWS_ENDPOINT_URL_SSM")  # as redrive honours AWS_ENDPOINT_URL_<SERVICE>
    client = (dataclasses.replace(conn, endpoint_url=own) if own else conn).client("ssm", region)
    try:
        found = client.get_parameter(Name=name)["Parameter"]
    except ClientError as exc:
        code = error_code(exc)
        if code == "ParameterNotFound":
            return None
        if code in ACCESS_ERROR_CODES:
            raise BadInput(f"access denied: ssm:GetParameter on {name} in {region} ({code}: {error_message(exc)}): "
                           "grant ssm:GetParameter on arn:aws:ssm:<region>:<account>:parameter/cdk-replication/*"
                           ) from None
        raise
    version = found.get("Version")
    return str(found["Value"]), None if version is None else int(version)


def get_parameter(conn: Connection, region: str, name: str) -> str | None:
    """The value of parameter ``name`` in ``region`` (``None`` when it does not exist); see
    :func:`read_parameter`."""
    found = read_parameter(conn, region, name)
    return None if found is None else found[0]


def read_status(conn: Connection, info: TableInfo) -> str | None:
    """The published status of the location holding table ``info``; ``None``: not deployed by the construct
    (or by a version that does not publish it)."""
    return get_parameter(conn, info.region, STATUS_PARAMETER.format(table=identity_of(info)[1]))


def read_replicator(conn: Connection, info: TableInfo) -> PublishedReplicator | None:
    """The published ``replicator`` parameter of writer table ``info``; ``None`` when it has none."""
    name = REPLICATOR_PARAMETER.format(table=identity_of(info)[1])
    found = read_parameter(conn, info.region, name)
    return None if found is None else PublishedReplicator.parse(name, info.region, *found)
