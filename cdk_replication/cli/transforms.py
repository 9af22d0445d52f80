"""Replica transforms on the command line: which transform a TARGET holds, and the safety net around it.

A replica of a ``ReplicatedTable`` may hold a filtered, projected and masked copy of its source
(``TableLocation(transform=ReplicaTransform(...))``). Every command that writes into such a replica must write
exactly what the replicator writes, never the source's item as it is (DESIGN rule 10). The command learns the
transform from what is deployed, not from the app's code:

* the published parameter ``/cdk-replication/<source table>/replicator`` in the SOURCE's account and region
  (its ``targets`` entry for TARGET carries the transform's spec, with its ``digest``);
* the HMAC key of the ``hmac`` masks from Secrets Manager in the SOURCE's account (the spec's ``secretArn``);
* the TARGET table's tag ``cdk-replication:transform``, set by the construct on every transformed replica.
  Its value is a fixed marker (``published``): it says that the table is transformed and that its spec is the
  source's published one, and nothing about the spec (a digest would let the target account confirm guesses
  of the spec's filter and redaction values).

The safety net: a TARGET that carries the tag is never written (nor compared) unless the command applies the
spec the published parameter gives it. If that spec cannot be read (no parameter, no entry for TARGET, an entry
without a transform, access denied), the command stops with exit 2 before anything is written, naming the
parameter, the permission or the fix. The parameter changes only once the replicator's new configuration is
live, so it is the truth about what the replicator writes. An untagged TARGET whose source publishes a
transform for it gets that transform too (safe by default); an untagged TARGET with nothing published is
copied as it is.

``--transform-spec FILE`` gives the spec for tables outside a ``ReplicatedTable`` (a JSON document in the
published form); for a tagged TARGET it must be the published spec (same digest).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cdk_replication.cli.errors import ACCESS_ERROR_CODES, BadInput, error_code, error_message
from cdk_replication.cli.items import Item, KeySchema
from cdk_replication.cli.tables import Connection, TableHandle

#: The tag the construct puts on every transformed replica table (value: a fixed marker, see the module docstring).
TRANSFORM_TAG = "cdk-replication:transform"
#: boto3's per-service endpoint variables honoured before ``--endpoint-url`` (as ``redrive`` does for S3/SQS).
ENDPOINT_VARIABLES = {"ssm": "AWS_ENDPOINT_URL_SSM", "secretsmanager": "AWS_ENDPOINT_URL_SECRETS_MANAGER"}


def replicator_parameter(source_table: str) -> str:
    """The name of the parameter a writer stack publishes for ``source_table`` (contract A.2)."""
    return f"/cdk-replication/{source_table}/replicator"


def load_engine() -> Any:
    """The transform engine the replicator runs (``lambda_src/replicator/transform.py``), imported when needed,
    so the command applies the very code the replicator does."""
    from cdk_replication._lambda.replicator import transform

    return transform


@dataclass(frozen=True)
class ReplicaView:
    """How TARGET holds SOURCE's items: as they are (the default, no transform), or transformed.

    Attributes:
        transform: the engine's ``Transform``; ``None`` (default) holds items as they are.
        digest: the spec's digest; ``None`` without a transform.
        origin: where the spec came from (the parameter's name, or the file), for messages; default ``""``.
        rekeys: a key attribute is masked, so TARGET's key of an item is not SOURCE's (default ``False``):
            a TARGET key then cannot be mapped back to SOURCE's without a scan of SOURCE.
    """

    transform: Any | None = None
    digest: str | None = None
    origin: str = ""
    rekeys: bool = False

    @property
    def identity(self) -> bool:
        """True when TARGET holds SOURCE's items as they are."""
        return self.transform is None

    def item(self, source_item: Item | None) -> Item | None:
        """What TARGET should hold for ``source_item`` (``None``: no item, e.g. filtered out or absent)."""
        if source_item is None or self.transform is None:
            return source_item
        return self.transform.apply(source_item)

    def key(self, source_key: Item) -> Item:
        """TARGET's key for SOURCE's ``source_key`` (hashed where a key attribute is masked)."""
        if self.transform is None or not self.rekeys:
            return source_key
        return dict(self.transform.key(source_key))

    def describe(self) -> str:
        """One line for the progress/summary: which transform is applied."""
        return "as they are" if self.transform is None else f"transformed ({self.origin}, digest {self.digest})"


#: TARGET holds SOURCE's items as they are.
IDENTITY = ReplicaView()


def service_client(conn: Connection, service: str, region: str) -> Any:
    """A client for ``ssm``/``secretsmanager``: at ``AWS_ENDPOINT_URL_<SERVICE>`` when set, else as ``conn``."""
    own = os.environ.get(ENDPOINT_VARIABLES[service])
    if own:
        conn = dataclasses.replace(conn, endpoint_url=own)
    return conn.client(service, region)


#: :func:`target_tag`'s answer when the endpoint has no tags at all (DynamoDB Local).
TAGS_UNSUPPORTED = "<tags unsupported>"


def target_tag(target: TableHandle) -> str | None:
    """TARGET's ``cdk-replication:transform`` tag (a marker: TARGET is transformed), ``None`` if untagged,
    :data:`TAGS_UNSUPPORTED` when the endpoint keeps no tags.

    Raises:
        BadInput: the tags cannot be read; without them the command cannot tell whether TARGET must only
            receive transformed items.
    """
    from botocore.exceptions import ClientError

    tags: list[dict[str, str]] = []
    request: dict[str, Any] = {"ResourceArn": target.info.arn}
    try:
        while True:
            page = target.client.list_tags_of_resource(**request)
            tags.extend(page.get("Tags") or [])
            if not page.get("NextToken"):
                break
            request["NextToken"] = page["NextToken"]
    except ClientError as exc:
        code = error_code(exc)
        if code == "UnknownOperationException":
            # DynamoDB Local has no tags ("Tagging is not currently supported"): there, only the published
            # parameter tells whether TARGET is transformed (an untagged TARGET still gets its transform).
            return TAGS_UNSUPPORTED
        permission = "grant dynamodb:ListTagsOfResource on it" if code in ACCESS_ERROR_CODES else "retry"
        raise BadInput(
            f"cannot read the tags of target table {target.info.label()} ({code}: {error_message(exc)}), so it "
            f"cannot tell whether the table may only receive transformed items (tag {TRANSFORM_TAG}): "
            f"{permission}; nothing was written"
        ) from None
    return next((t["Value"] for t in tags if t.get("Key") == TRANSFORM_TAG), None)


@dataclass(frozen=True)
class PublishedSpec:
    """What the published parameter says about TARGET: its spec (``None``: none), or why it says nothing."""

    spec: dict[str, Any] | None
    origin: str
    problem: str | None = None
    #: The error code when the parameter could not be read (``None``: it was read, or a file was given).
    code: str | None = None


@dataclass(frozen=True)
class TargetId:
    """A TARGET as the parameter's ``targets`` entries name it: table name, region, and account (``None`` or
    DynamoDB Local's placeholder: not compared)."""

    name: str
    region: str
    account: str | None = None

    @classmethod
    def of(cls, target: TableHandle) -> "TargetId":
        """The id of a described table."""
        return cls(target.info.ref.name, target.info.region, target.info.arn.split(":")[4])


def _same_table(listed_arn: str, target: TargetId) -> bool:
    """Whether the parameter's target ``listed_arn`` is TARGET: same name and region, and the same account
    unless one side is unknown or DynamoDB Local's placeholder account (its ARNs never carry the real one)."""
    parts = listed_arn.split(":")
    if len(parts) < 6 or not parts[5].startswith("table/"):
        return False
    accounts = {parts[4], target.account or parts[4]}
    same_account = len(accounts) == 1 or "000000000000" in accounts
    return parts[5] == f"table/{target.name}" and parts[3] == target.region and same_account


def _parameter_problem(exc: BaseException, name: str, arn: str) -> str:
    code = error_code(exc)
    if code == "ParameterNotFound":
        return (f"the parameter {name} does not exist in the source's account and region: deploy the source stack "
                "of the ReplicatedTable, or give the spec with --transform-spec FILE")
    if code in ACCESS_ERROR_CODES:
        return f"access denied ({code}): grant ssm:GetParameter on {arn} to the source credentials (--source-profile)"
    return f"the parameter {name} could not be read ({code or type(exc).__name__}: {error_message(exc)})"


def published(source_conn: Connection, source: TableHandle, target: TargetId) -> PublishedSpec:
    """TARGET's entry of the source's published ``replicator`` parameter (contract A.2), never raising."""
    from botocore.exceptions import BotoCoreError, ClientError

    name = replicator_parameter(source.info.ref.name)
    partition, account = source.info.arn.split(":")[1], source.info.arn.split(":")[4]
    arn = f"arn:{partition}:ssm:{source.info.region}:{account}:parameter{name}"
    origin = f"parameter {name} in {source.info.region}"
    try:
        answer = service_client(source_conn, "ssm", source.info.region).get_parameter(Name=name)
        document = json.loads(answer["Parameter"]["Value"])
    except (ClientError, BotoCoreError, BadInput) as exc:
        return PublishedSpec(None, origin, _parameter_problem(exc, name, arn), error_code(exc) or type(exc).__name__)
    except (ValueError, KeyError, TypeError) as exc:
        return PublishedSpec(None, origin, f"the parameter {name} is not the published JSON ({exc})")
    for entry in document.get("targets") or []:
        if _same_table(str(entry.get("table", "")), target):
            return published_entry(name, source.info.region, entry.get("transform"))
    return PublishedSpec(None, origin, f"the parameter {name} lists no target table {target.name} in {target.region} "
                                    "(the deployed replicator does not send to it: deploy the app, or check the "
                                    "table's name)")


def read_spec_file(path: Path) -> PublishedSpec:
    """A spec given with ``--transform-spec FILE`` (the published form); unreadable files are bad input."""
    try:
        spec = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BadInput(f"--transform-spec {path}: cannot read a JSON transform spec ({exc})") from None
    if not isinstance(spec, dict):
        raise BadInput(f"--transform-spec {path}: expected a JSON object (the spec), got {type(spec).__name__}")
    return PublishedSpec(spec, f"--transform-spec {path}")


def hmac_key(source_conn: Connection, secret_arn: str) -> bytes:
    """The HMAC key of the spec's ``hmac`` masks, from Secrets Manager with the SOURCE's credentials.

    Raises:
        BadInput: the secret cannot be read (the message names the permission).
    """
    from botocore.exceptions import BotoCoreError, ClientError

    region = secret_arn.split(":")[3] if secret_arn.count(":") >= 6 else None
    client = service_client(source_conn, "secretsmanager", region or "")
    try:
        return bytes(load_engine_key(client, secret_arn))
    except (ClientError, BotoCoreError, ValueError) as exc:  # ValueError: an empty secret
        code = error_code(exc)
        fix = (f"grant secretsmanager:GetSecretValue on {secret_arn} to the source credentials (--source-profile)"
               if code in ACCESS_ERROR_CODES else "check that the secret exists in the source account")
        raise BadInput(
            f"cannot read the transform's HMAC key from Secrets Manager ({code or type(exc).__name__}: "
            f"{error_message(exc)}): {fix}; nothing was written"
        ) from None


def load_engine_key(client: Any, secret_arn: str) -> bytes:
    """The key bytes exactly as the replicator derives them (``replicator.secrets.load_hmac_key``), so both
    hash alike; read afresh (no cache), since a rebuild after a rotation must use the current version."""
    from cdk_replication._lambda.replicator import secrets

    return bytes(secrets.load_hmac_key(client, secret_arn, refresh_seconds=0))


def replica_view(source_conn: Connection, source: TableHandle, target: TableHandle, *,
                 spec_file: Path | None = None, notes: list[str] | None = None) -> ReplicaView:
    """How TARGET must hold SOURCE's items, with the safety net applied (module docstring).

    Args:
        spec_file: ``--transform-spec FILE``; default ``None`` reads the published parameter.
        notes: receives one line when an untagged TARGET gets the published transform; default: none kept.

    Raises:
        BadInput: TARGET is tagged and the published spec cannot be had (or ``spec_file`` is not it), or the key
            cannot be read.
    """
    def from_parameter() -> PublishedSpec:
        return published(source_conn, source, TargetId.of(target))

    if spec_file is None:
        return view_for(source_conn, target, from_parameter(), notes=notes)
    return view_for(source_conn, target, read_spec_file(spec_file), notes=notes, published_spec=from_parameter)


def published_entry(parameter: str, region: str, spec: Mapping[str, Any] | None) -> PublishedSpec:
    """TARGET's entry of a ``replicator`` parameter already read (``join`` reads it to check the steps), as
    :func:`published` would give it: the same spec, the same problem when the entry has no transform."""
    origin = f"parameter {parameter} in {region}"
    problem = None if spec else (f"the parameter {parameter} says the deployed replicator sends this table "
                                 "untransformed items (a deployment may be under way: wait until it ends)")
    return PublishedSpec(dict(spec) if spec else None, origin, problem)


def view_for(source_conn: Connection, target: TableHandle, found: PublishedSpec, *, notes: list[str] | None = None,
             published_spec: Callable[[], PublishedSpec] | None = None) -> ReplicaView:
    """The safety net of :func:`replica_view` around the spec ``found`` for TARGET.

    Args:
        published_spec: when ``found`` was given (``--transform-spec``), reads the published one, which a
            tagged TARGET's spec must equal; default ``None``: ``found`` is the published one.

    Raises:
        BadInput: as :func:`replica_view`.
    """
    tagged = _tagged(target, found)
    if tagged and published_spec is not None:
        found = _same_as_published(target, found, published_spec())
    if found.spec is None:
        if not tagged:
            return IDENTITY
        raise BadInput(
            f"target table {target.info.label()} is tagged {TRANSFORM_TAG}: it may only receive items transformed "
            f"by its replica transform, which could not be read from the {found.origin}: {found.problem}; "
            "nothing was written"
        )
    if not tagged and notes is not None:
        notes.append(f"note: target {target.info.label()} is not tagged {TRANSFORM_TAG}, but the {found.origin} "
                     "gives it a transform: items are written transformed")
    return build_view(source_conn, found, target.info.key)


def _tagged(target: TableHandle, found: PublishedSpec) -> bool:
    """Whether TARGET carries the transform tag (any value: it says only "transformed, see the published
    spec"). On an endpoint without tags, refuse when the parameter cannot be read either."""
    tag = target_tag(target)
    if tag != TAGS_UNSUPPORTED:
        return tag is not None
    if found.spec is None and found.code in ACCESS_ERROR_CODES:
        # Neither the tag nor the parameter can tell: refuse rather than risk an untransformed copy.
        raise BadInput(f"cannot tell whether target table {target.info.label()} may only receive transformed "
                       f"items (this endpoint keeps no tags): {found.problem}; nothing was written")
    return False


def _same_as_published(target: TableHandle, given: PublishedSpec, deployed: PublishedSpec) -> PublishedSpec:
    """A tagged TARGET's transform is its source's published one: ``--transform-spec`` must be that very spec
    (same digest; both are read in the source account)."""
    if deployed.spec is None:
        return deployed  # refused by the caller, naming why the published spec could not be read
    if given.spec is None or given.spec.get("digest") != deployed.spec.get("digest"):
        raise BadInput(
            f"target table {target.info.label()} is tagged {TRANSFORM_TAG}: its transform is the one of the "
            f"{deployed.origin}, and the {given.origin} is another spec (digest {(given.spec or {}).get('digest')}, "
            f"published {deployed.spec.get('digest')}): drop --transform-spec; nothing was written"
        )
    return given


def build_view(source_conn: Connection, found: PublishedSpec, key: KeySchema) -> ReplicaView:
    """The engine's ``Transform`` for ``found.spec``, with the HMAC key read when a mask needs it."""
    engine = load_engine()
    spec: Mapping[str, Any] = found.spec or {}
    secret = None
    if engine.Transform.needs_secret(spec):
        secret_arn = spec.get("secretArn")
        if not secret_arn:
            raise BadInput(f"the transform of the {found.origin} hashes attributes but names no secretArn: "
                           "redeploy the app (the construct always sets it); nothing was written")
        secret = hmac_key(source_conn, str(secret_arn))
    try:
        transform = engine.Transform.from_spec(spec, secret, key.names)
    except (ValueError, KeyError, TypeError) as exc:
        raise BadInput(f"the transform of the {found.origin} is not a valid spec ({exc}); nothing was written") \
            from None
    masks = spec.get("masks") or {}
    return ReplicaView(transform, spec.get("digest"), found.origin, rekeys=any(n in masks for n in key.names))


def refuse_multi_active(view: ReplicaView, conflict: Any, target: TableHandle) -> None:
    """A transformed replica is one-way only: the multi-active rules would send its masked items back."""
    if conflict is not None and not view.identity:
        raise BadInput(
            f"target table {target.info.label()} holds a transformed copy ({view.origin}), which is one-way only: "
            "drop --conflict-attribute/--conflict-strategy (a multi-active repair would treat masked values as "
            "the region's own writes); nothing was written"
        )


def refuse_transformed_migration(source_conn: Connection, source: TableHandle, target: TargetId) -> None:
    """``migrate`` cannot make a transformed replica: refuse (exit 2) when the source publishes a transform
    for TARGET, or when that cannot be told because the parameter may not be read.

    A native export holds every item and attribute as they are, and the import copies them into TARGET as
    they are: DynamoDB applies no transform on the way, and the export itself lands in the target account's
    migration bucket. ``backfill`` writes each item transformed instead.
    """
    found = published(source_conn, source, target)
    if found.spec is not None:
        raise BadInput(
            f"target table {target.name} ({target.region}) has a replica transform ({found.origin}): a native "
            "export and import copy every item and attribute as they are (and the export lands in the target "
            "account's bucket), so `migrate` cannot make a filtered or masked copy. Create the replica empty "
            "(without MigrationOptions) and fill it with `cdk-replication backfill SOURCE TARGET`, which writes "
            "each item transformed; nothing was written"
        )
    if found.code in ACCESS_ERROR_CODES:
        raise BadInput(
            f"cannot tell whether target table {target.name} has a replica transform, which `migrate` cannot "
            f"apply: {found.problem}; nothing was written"
        )
