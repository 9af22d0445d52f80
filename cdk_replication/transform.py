"""Per-replica transforms, construct side: the ``ReplicaTransform`` prop, its builders, the synth-time checks and
the spec the replicator (and the command line) apply.

A one-way replica declared with ``TableLocation(..., transform=ReplicaTransform(...))`` receives only the items
that match ``filter``, only the attributes ``keep``/``drop`` leave, with ``masks`` applied. The spec is the
engine's (``cdk_replication._lambda.replicator.transform``, docs/architecture.md "Replica transforms"); it is
written into the replicator's ``REPLICATION_TARGETS`` entry and into the published ``replicator`` parameter
(both in the source account). The replica table is tagged ``cdk-replication:transform`` = ``published``: a
marker with no information about the spec, which the target account can read.

No constructs here (the generated secret is ``replicated_table.hmac_secret``); the checks raise ``ReplicationConfigError`` naming the
construct, the value and the fix.
"""

from __future__ import annotations

import base64
import decimal
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aws_cdk import Token

from ._lambda.replicator import contract
from ._lambda.replicator import transform as engine
from .errors import ReplicationConfigError

#: Tag on every transformed replica table (the CLI refuses to write such a table unless it applies the spec its
#: source publishes for it).
TRANSFORM_TAG = "cdk-replication:transform"
#: The tag's value: a fixed marker, "this table is transformed; the spec is the source's published parameter".
#: Not the spec's digest: the target account reads the tag, and an unkeyed digest would let it confirm guesses
#: of the spec's filter and redaction values offline.
TRANSFORM_TAG_VALUE = "published"
#: Length of the generated HMAC key, in characters (letters and digits: about 380 bits).
SECRET_LENGTH = 64
#: The generated secret's name is this with the source table's name in place of ``{table}``.
SECRET_NAME = "cdk-replication/{table}/hmac-key"
#: The default redaction constant.
DEFAULT_REDACTION = "REDACTED"

Value = str | int | float | decimal.Decimal | bytes | bool | None


def attribute_value(value: Value | Mapping[str, Any]) -> dict[str, Any]:
    """A Python value as an attribute value in the spec's JSON notation: ``str`` -> S, ``int``/``float``/
    ``Decimal`` -> N, ``bytes`` -> B (base64), ``bool`` -> BOOL, ``None`` -> NULL; a ``{"S": ...}`` mapping is
    taken as it is."""
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, bool):
        return {"BOOL": value}
    if value is None:
        return {"NULL": True}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, bytes):
        return {"B": base64.b64encode(value).decode("ascii")}
    return {"N": str(value)}


@dataclass(frozen=True)
class Filter:
    """Which items a replica holds: a condition on top-level attributes, built with the static methods and
    combined with ``&``, ``|`` and ``~`` (or :meth:`all_of`, :meth:`any_of`, :meth:`negate`).

    Comparisons follow DynamoDB's condition expressions (numbers as exact decimals, strings and binary
    bytewise); an attribute that is missing or of another type does not match (``ne`` then matches).

    Attributes:
        spec: the condition in the spec's JSON form. Required.
    """

    spec: Mapping[str, Any]

    @staticmethod
    def eq(attr: str, value: Value | Mapping[str, Any]) -> Filter:
        """``attr = value``."""
        return Filter({"op": "eq", "attr": attr, "value": attribute_value(value)})

    @staticmethod
    def ne(attr: str, value: Value | Mapping[str, Any]) -> Filter:
        """``attr <> value`` (also true when ``attr`` is missing)."""
        return Filter({"op": "ne", "attr": attr, "value": attribute_value(value)})

    @staticmethod
    def compare(op: str, attr: str, value: Value | Mapping[str, Any]) -> Filter:
        """``attr <op> value`` for ``op`` in ``lt``, ``le``, ``gt``, ``ge``, ``begins_with``."""
        return Filter({"op": op, "attr": attr, "value": attribute_value(value)})

    @staticmethod
    def is_in(attr: str, values: Sequence[Value | Mapping[str, Any]]) -> Filter:
        """``attr IN (values...)`` (1 to 100 values)."""
        return Filter({"op": "in", "attr": attr, "values": [attribute_value(v) for v in values]})

    @staticmethod
    def exists(attr: str) -> Filter:
        """``attribute_exists(attr)``."""
        return Filter({"op": "exists", "attr": attr})

    @staticmethod
    def not_exists(attr: str) -> Filter:
        """``attribute_not_exists(attr)``."""
        return Filter({"op": "not_exists", "attr": attr})

    @staticmethod
    def all_of(*filters: Filter) -> Filter:
        """Every one of ``filters``."""
        return Filter({"op": "and", "args": [dict(f.spec) for f in filters]})

    @staticmethod
    def any_of(*filters: Filter) -> Filter:
        """At least one of ``filters``."""
        return Filter({"op": "or", "args": [dict(f.spec) for f in filters]})

    def negate(self) -> Filter:
        """Not this condition."""
        return Filter({"op": "not", "arg": dict(self.spec)})

    def __and__(self, other: Filter) -> Filter:
        return Filter.all_of(self, other)

    def __or__(self, other: Filter) -> Filter:
        return Filter.any_of(self, other)

    def __invert__(self) -> Filter:
        return self.negate()


@dataclass(frozen=True)
class Mask:
    """How one attribute reaches the replica (build with :meth:`remove`, :meth:`redact`, :meth:`hmac`).

    Attributes:
        kind: ``remove``, ``redact`` or ``hmac``. Required.
        value: ``redact``'s constant, in the spec's JSON notation. Default: none.
    """

    kind: str
    value: Mapping[str, Any] | None = None

    @staticmethod
    def remove() -> Mask:
        """The attribute is left out."""
        return Mask("remove")

    @staticmethod
    def redact(value: Value | Mapping[str, Any] = DEFAULT_REDACTION) -> Mask:
        """The attribute becomes ``value`` (default: the string ``"REDACTED"``)."""
        return Mask("redact", attribute_value(value))

    @staticmethod
    def hmac() -> Mask:
        """HMAC-SHA256 with the replica's secret: equal values stay equal (they join and index), the type is
        kept for S, N and B (and their sets); other types become S."""
        return Mask("hmac")

    def to_spec(self) -> dict[str, Any]:
        """The mask in the spec's JSON form."""
        return {"kind": self.kind} if self.value is None else {"kind": self.kind, "value": dict(self.value)}


@dataclass(frozen=True)
class ReplicaTransform:
    """A filtered, projected and masked one-way replica (``TableLocation.transform``).

    Adding a transform to a replica that is already deployed (or making it stricter) changes only what is
    written from then on: items copied before keep their raw values in the target account. Rebuild the
    replica right after the deployment with ``cdk-replication verify SOURCE TARGET --repair`` (docs/cli.md,
    "Adding or changing a transform on a running replica"), or give a new replica table the transform.

    Attributes:
        filter: which items the replica holds (``Filter`` or a condition in the spec's JSON form). Default:
            ``None``, every item.
        keep: the only attributes copied (the key attributes are always added). Default: ``None``, all.
        drop: attributes not copied (exclusive with ``keep``; never a key or index key). Default: ``None``.
        masks: attribute name -> ``Mask``. Default: none.
        secret_arn: the Secrets Manager secret whose value keys the ``hmac`` masks (the replicator is granted
            ``secretsmanager:GetSecretValue`` on it), a literal ARN (a token is refused). Default: ``None``: a
            generated secret ``cdk-replication/<source table>/hmac-key`` in the source's stack, one per
            ``ReplicatedTable``, retained when removed. A retained secret cannot be created again (AWS refuses
            the name): after its stack was destroyed or its last ``hmac`` mask removed, pass its complete ARN
            here to reuse it (the replicas keep their hashes). Only read when a mask is ``hmac``.
    """

    filter: Filter | Mapping[str, Any] | None = None
    keep: Sequence[str] | None = None
    drop: Sequence[str] | None = None
    masks: Mapping[str, Mask] = field(default_factory=dict)
    secret_arn: str | None = None

    @property
    def needs_secret(self) -> bool:
        """Whether any mask is ``hmac``."""
        return any(mask.kind == "hmac" for mask in self.masks.values())

    def to_spec(self, key_names: Sequence[str], secret_arn: str | None) -> dict[str, Any]:
        """The spec (with its digest) for a table keyed by ``key_names``; ``secret_arn`` is the secret the
        ``hmac`` masks use (``None`` when none is needed)."""
        condition = self.filter.spec if isinstance(self.filter, Filter) else self.filter
        keep = None if self.keep is None else sorted(set(self.keep) | set(key_names))
        spec = {
            "version": engine.SPEC_VERSION,
            "filter": None if condition is None else dict(condition),
            "keep": keep,
            "drop": None if self.drop is None else sorted(set(self.drop)),
            "masks": {name: mask.to_spec() for name, mask in sorted(self.masks.items())},
            "secretArn": secret_arn if self.needs_secret else None,
        }
        return engine.with_digest(spec)


def transform_secret_name(table_name: str) -> str:
    """The name of the generated HMAC secret of ``table_name``'s masked replicas."""
    return SECRET_NAME.format(table=table_name)


# --- synth-time checks ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TransformContext:
    """What the checks need to know of the table a transform applies to.

    Attributes:
        one_way: the topology is ``ONE_WAY``. Required.
        key_types: primary key attribute name -> type (``S``, ``N`` or ``B``). Required.
        index_key_types: every GSI and LSI key attribute (other than the primary key) -> its type. Default: none.
        ttl_attribute: the replica's TTL attribute, if any. Default: none.
        metadata_prefix: the replicator's metadata prefix. Default: ``contract.DEFAULT_METADATA_PREFIX``.
        has_migration: the replica is loaded from a native export. Default: ``False``.
    """

    one_way: bool
    key_types: Mapping[str, str]
    index_key_types: Mapping[str, str] = field(default_factory=dict)
    ttl_attribute: str | None = None
    metadata_prefix: str = contract.DEFAULT_METADATA_PREFIX
    has_migration: bool = False


def check_transform(path: str, where: str, transform: ReplicaTransform, context: TransformContext) -> None:
    """Refuse a transform the replica could not hold correctly; ``where`` names the location in messages.

    Raises:
        ReplicationConfigError: naming the construct, the value and the fix.
    """
    if not context.one_way:
        raise ReplicationConfigError(
            path, f"{where} has a transform in MULTI_ACTIVE mode; conflict resolution compares and writes whole "
            "items in every region, so every copy must hold every item whole",
            "remove transform=..., or use a ONE_WAY ReplicatedTable for the reduced copy (e.g. reading this "
            "table's region as an existing_source)")
    if context.has_migration:
        raise ReplicationConfigError(
            path, f"{where} has a transform and a migration; a native import copies the export as it is and "
            "cannot filter, project or mask it",
            "remove migration=... and load the replica with `cdk-replication backfill`, which applies the "
            "transform (with change_source=KINESIS when the load takes longer than a day)")
    if transform.keep is not None and transform.drop is not None:
        raise ReplicationConfigError(path, f"{where}: transform has both keep and drop",
                                     "give the attributes to keep or those to drop, not both")
    _check_secret_arn(path, where, transform.secret_arn)
    _check_projection(path, where, transform, context)
    for name, mask in transform.masks.items():
        _check_mask(path, where, name, mask, transform, context)
    _check_filter_on_masks(path, where, transform)
    spec = transform.to_spec(list(context.key_types), "arn:aws:secretsmanager:us-east-1:000000000000:secret:check")
    try:
        engine.Transform.from_spec(spec, b"synth-check" if transform.needs_secret else None, list(context.key_types))
    except engine.TransformError as exc:
        raise ReplicationConfigError(
            path, f"{where}: transform {exc}",
            "see docs/architecture.md, 'Replica transforms', for the filter operators and value forms") from None


#: Filter operators that compare an attribute's value (``exists``/``not_exists`` look at its presence only,
#: which a hashed or redacted attribute shows anyway).
VALUE_OPERATORS = frozenset({"eq", "ne", "lt", "le", "gt", "ge", "begins_with", "in"})


def _compared_attributes(condition: Any) -> set[str]:
    """Every attribute whose value the filter ``condition`` (spec form) compares, at any depth."""
    if not isinstance(condition, Mapping):
        return set()
    found = {str(condition["attr"])} if condition.get("op") in VALUE_OPERATORS and "attr" in condition else set()
    for child in [*(condition.get("args") or []), condition.get("arg")]:
        found |= _compared_attributes(child)
    return found


def _check_filter_on_masks(path: str, where: str, transform: ReplicaTransform) -> None:
    """Rule 10: a filter comparing a masked attribute's value tells the target that value (or a few candidates,
    or a prefix, or which value it is not) for every item it holds, whatever the mask does to it."""
    condition = transform.filter.spec if isinstance(transform.filter, Filter) else transform.filter
    pinned = sorted(_compared_attributes(condition) & set(transform.masks))
    if pinned:
        names = ", ".join(repr(n) for n in pinned)
        raise ReplicationConfigError(
            path, f"{where}: the transform's filter compares the value of {names}, which it masks; every item "
            "the replica holds then tells the target account the original value (one of the filter's values, "
            "its prefix, or not that value), which the mask is meant to keep in the source account",
            f"filter on another attribute (one the replica may know, e.g. a status or a tenant), or leave "
            f"{names} unmasked if its value is not secret; Filter.exists/not_exists on it are allowed")


#: A Secrets Manager secret ARN, complete (``...:secret:<name>-AbCdEf``) or without its random suffix.
_SECRET_ARN = re.compile(r"^arn:[a-z-]+:secretsmanager:[a-z0-9-]+:\d{12}:secret:[\w/+=.@-]+$")


def _check_secret_arn(path: str, where: str, secret_arn: str | None) -> None:
    """``secret_arn`` must be a literal secret ARN: it goes into the replicator's environment and the
    published parameter, both checked (size, content) at synth, and into the role's policy."""
    if secret_arn is None:
        return
    if Token.is_unresolved(secret_arn):
        raise ReplicationConfigError(
            path, f"{where}: transform secret_arn is a token ({secret_arn!r}); the replicator's environment "
            "and the published parameter carry it and are checked at synth, so it must be literal",
            "pass the secret's ARN as a literal string, e.g. the complete ARN of an existing (or retained) "
            "secret, 'arn:aws:secretsmanager:<region>:<account>:secret:<name>-AbCdEf'")
    if not _SECRET_ARN.match(secret_arn):
        raise ReplicationConfigError(
            path, f"{where}: transform secret_arn {secret_arn!r} is not a Secrets Manager secret ARN",
            "pass 'arn:<partition>:secretsmanager:<region>:<account>:secret:<name>-AbCdEf' (the complete ARN "
            "`aws secretsmanager describe-secret` prints)")


def _check_projection(path: str, where: str, transform: ReplicaTransform, context: TransformContext) -> None:
    for name in transform.drop or ():
        if name in context.key_types or name in context.index_key_types:
            raise ReplicationConfigError(
                path, f"{where}: transform drops {name!r}, a {_role(name, context)}",
                f"remove {name!r} from drop; to hide its values keep it and mask it with Mask.hmac(), which keeps "
                "its type so the key or index still works")
    if transform.keep is not None:
        for name in sorted(context.index_key_types):
            if name not in transform.keep:
                raise ReplicationConfigError(
                    path, f"{where}: transform keep leaves out {name!r}, a {_role(name, context)}",
                    f"add {name!r} to keep (mask it with Mask.hmac() to hide its values), or remove the index")


def _role(name: str, context: TransformContext) -> str:
    return "key attribute of the table" if name in context.key_types else "key attribute of a secondary index"


def _check_mask(
    path: str, where: str, name: str, mask: Mask, transform: ReplicaTransform, context: TransformContext
) -> None:
    what = f"{where}: mask {mask.kind!r} on {name!r}"
    if mask.kind not in engine.MASK_KINDS:
        raise ReplicationConfigError(path, f"{what} is not a mask kind",
                                     "use Mask.remove(), Mask.redact(value) or Mask.hmac()")
    if name.startswith(context.metadata_prefix):
        raise ReplicationConfigError(path, f"{what}: {name!r} is replication metadata (prefix "
                                     f"{context.metadata_prefix!r})", f"remove the mask on {name!r}")
    if (transform.keep is not None and name not in transform.keep and name not in context.key_types) or (
        name in (transform.drop or ())
    ):
        raise ReplicationConfigError(path, f"{what}: the projection already leaves {name!r} out",
                                     f"remove the mask on {name!r}, or keep the attribute")
    if name in context.key_types and mask.kind != "hmac":
        raise ReplicationConfigError(
            path, f"{what}: {name!r} is a key attribute of the table; '{mask.kind}' would leave items without "
            "a key or merge distinct items into one",
            f"use Mask.hmac() on {name!r} (keeps its type {context.key_types[name]}), or no mask")
    if name in context.index_key_types:
        _check_index_key_mask(path, what, name, mask, context.index_key_types[name])
    if name == context.ttl_attribute and mask.kind != "remove":
        raise ReplicationConfigError(
            path, f"{what}: {name!r} is the replica's TTL attribute; a changed value would expire items at "
            "other times than the source", f"leave {name!r} unmasked, or Mask.remove() it (the source's TTL "
            "deletes still reach the replica)")


def _check_index_key_mask(path: str, what: str, name: str, mask: Mask, key_type: str) -> None:
    if mask.kind == "remove":
        raise ReplicationConfigError(
            path, f"{what}: {name!r} is a key attribute of a secondary index, which would hold no item",
            f"use Mask.hmac() on {name!r} (keeps its type {key_type}) or Mask.redact() with a {key_type} value")
    if mask.kind == "redact":
        value_type = next(iter(mask.value or {"?": None}))
        if value_type != key_type:
            raise ReplicationConfigError(
                path, f"{what}: the constant is of type {value_type}, but {name!r} is a key attribute of a "
                f"secondary index of type {key_type}; DynamoDB would refuse every item",
                f"redact {name!r} to a {key_type} value, or use Mask.hmac()")
        problem = _key_value_problem(key_type, (mask.value or {}).get(value_type))
        if problem is not None:
            raise ReplicationConfigError(
                path, f"{what}: the constant {problem}, but {name!r} is a key attribute of a secondary index; "
                "DynamoDB would refuse every item", f"redact {name!r} to a valid {key_type} key value (e.g. "
                f"{'REDACTED' if key_type == 'S' else '0' if key_type == 'N' else 'a non-empty byte string'}), "
                "or use Mask.hmac()")


#: The largest key value DynamoDB takes, in bytes: a sort key's limit (a partition key's is 2,048 bytes; the
#: check does not know which role the attribute has in each index, so it takes the smaller).
MAX_KEY_BYTES = 1024


def _key_value_problem(key_type: str, raw: Any) -> str | None:
    """Why the spec value ``raw`` of type ``key_type`` (S, N or B) is no valid key value, or ``None``."""
    if key_type == "N":
        try:
            number = decimal.Decimal(str(raw))
        except (decimal.InvalidOperation, ValueError):
            return f"{raw!r} is not a number"
        # Significant digits without rounding (normalize() would round to the context's 28 digits).
        significant = "".join(map(str, number.as_tuple().digits)).strip("0") if number.is_finite() else ""
        if not number.is_finite() or len(significant) > 38 or (
                number != 0 and not decimal.Decimal("1E-130") <= abs(number) < decimal.Decimal("1E126")):
            return f"{raw!r} is outside DynamoDB's numbers (38 digits, magnitude 1E-130 to 1E126)"
        return None
    try:
        data = base64.b64decode(str(raw), validate=True) if key_type == "B" else str(raw).encode("utf-8")
    except (ValueError, TypeError):
        return "is not base64"
    if not data:
        return "is empty (DynamoDB refuses an empty string or binary as a key)"
    if len(data) > MAX_KEY_BYTES:
        return f"has {len(data):,} bytes (a key value has at most {MAX_KEY_BYTES:,})"
    return None
