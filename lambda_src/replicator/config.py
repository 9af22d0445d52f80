"""The replicator's configuration: the environment variables the construct writes, parsed once at cold start.

Every variable is validated here, so a bad value fails the cold start with a message naming the variable
instead of failing each record later. The names, defaults and attribute-name rules are contract.py's (shared
with the construct); docs/architecture.md describes them.
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from . import contract
from .transform import Transform, TransformError


class ConfigError(ValueError):
    """An environment variable is missing or holds a value the replicator cannot use."""


class Mode(enum.Enum):
    ONE_WAY = "ONE_WAY"
    MULTI_ACTIVE = "MULTI_ACTIVE"


class ChangeSource(enum.Enum):
    """Where the changes come from. DynamoDB Streams deliver one item's records in write order; a Kinesis
    data stream fed by the table may reorder and duplicate them, so its records are ordered by their
    ``ApproximateCreationDateTime`` and written conditionally (ordered_one_way.py)."""

    DYNAMODB_STREAMS = "DYNAMODB_STREAMS"
    KINESIS = "KINESIS"


class ConflictStrategy(enum.Enum):
    """How the conflict attribute orders writes. Both are numbers; the names document the intent."""

    TIMESTAMP = "TIMESTAMP"
    VERSION = "VERSION"


class TtlDeletes(enum.Enum):
    """What to do with a delete made by DynamoDB's TTL process (userIdentity dynamodb.amazonaws.com).

    ``REPLICATE`` (default in both modes) sends it like any delete; multi-active versions it with a tombstone.
    ``SKIP`` (one-way only) leaves each copy to its own TTL; multi-active refuses it (rule 1, see load_config).
    """

    REPLICATE = "REPLICATE"
    SKIP = "SKIP"


_ACCOUNT = re.compile(r"^\d{12}$")
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d+$")
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def partition_of(region: str) -> str:
    """The AWS partition a region belongs to (``aws``, ``aws-cn``, ``aws-us-gov``, ...)."""
    for prefix, partition in (("cn-", "aws-cn"), ("us-gov-", "aws-us-gov"), ("us-isob-", "aws-iso-b"),
                              ("us-iso-", "aws-iso")):
        if region.startswith(prefix):
            return partition
    return "aws"


@dataclass(frozen=True)
class TableRef:
    """One table: where it lives and, for a target in another account, the writer role to assume.

    ``by_arn`` says that requests must name the table by its ARN: it lives in another account than the
    caller's and is reached with the caller's own credentials (its resource policy lets the caller in). AWS
    reads a plain table name as a table of the account whose credentials signed the request, so a plain name
    would address a table of the caller's own account (ResourceNotFoundException on AWS).

    ``transform`` is a one-way target's transform spec (transform.py; ``None``: an exact copy). It is not
    part of the table's identity (equality and hash), so a target is the same dict key with or without it.
    """

    table_name: str
    region: str
    account: str
    role_arn: str | None = None
    by_arn: bool = False
    transform: dict[str, Any] | None = field(default=None, compare=False, repr=False)

    @property
    def arn(self) -> str:
        return f"arn:{partition_of(self.region)}:dynamodb:{self.region}:{self.account}:table/{self.table_name}"

    @property
    def request_name(self) -> str:
        """What requests pass as ``TableName`` (or as the ``RequestItems`` key)."""
        return self.arn if self.by_arn else self.table_name

    def describe(self) -> str:
        """``region/account/table``: how logs and metrics name a table."""
        return f"{self.region}/{self.account}/{self.table_name}"


@dataclass(frozen=True)
class KeySchema:
    """The table's primary key attribute names (the same in every copy)."""

    partition_key: str
    sort_key: str | None = None

    @property
    def names(self) -> tuple[str, ...]:
        return (self.partition_key,) if self.sort_key is None else (self.partition_key, self.sort_key)


@dataclass(frozen=True)
class Config:
    """Everything the replicator needs, immutable for the life of the container."""

    mode: Mode
    source: TableRef
    targets: tuple[TableRef, ...]
    key: KeySchema
    metadata_prefix: str = contract.DEFAULT_METADATA_PREFIX
    conflict_attribute: str = contract.DEFAULT_CONFLICT_ATTRIBUTE
    conflict_strategy: ConflictStrategy = ConflictStrategy.TIMESTAMP
    max_concurrency: int = contract.DEFAULT_MAX_CONCURRENCY
    log_level: str = contract.DEFAULT_LOG_LEVEL
    ttl_deletes: TtlDeletes = TtlDeletes.REPLICATE
    tombstone_ttl_seconds: int = contract.DEFAULT_TOMBSTONE_TTL_SECONDS
    ttl_attribute: str = contract.default_ttl_attribute(contract.DEFAULT_METADATA_PREFIX)
    change_source: ChangeSource = ChangeSource.DYNAMODB_STREAMS


def _required(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise ConfigError(f"{name} is required")
    return value


def _json(env: Mapping[str, str], name: str) -> Any:
    raw = _required(env, name)
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{name} is not valid JSON: {exc.msg} at position {exc.pos}") from None


def _enum(env: Mapping[str, str], name: str, kind: type[enum.Enum], default: enum.Enum) -> Any:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return kind(raw.upper())
    except ValueError:
        allowed = ", ".join(m.value for m in kind)
        raise ConfigError(f"{name}={raw!r} is not one of {allowed}") from None


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not an integer") from None
    if not low <= value <= high:
        raise ConfigError(f"{name}={value} is outside {low}..{high}")
    return value


def _table_ref(value: Any, name: str, allow_role: bool) -> TableRef:
    if not isinstance(value, dict):
        raise ConfigError(f"{name} must be a JSON object with tableName, region and account")
    unknown = set(value) - {"tableName", "region", "account", *(("roleArn", "transform") if allow_role else ())}
    if unknown:
        raise ConfigError(f"{name} has unknown field(s): {', '.join(sorted(unknown))}")
    fields: dict[str, str] = {}
    for field in ("tableName", "region", "account"):
        raw = value.get(field)
        if not isinstance(raw, str) or not raw:
            raise ConfigError(f"{name}.{field} must be a non-empty string")
        fields[field] = raw
    if not _ACCOUNT.match(fields["account"]):
        raise ConfigError(f"{name}.account={fields['account']!r} is not a 12-digit account id")
    if not _REGION.match(fields["region"]):
        raise ConfigError(f"{name}.region={fields['region']!r} is not a region name such as us-east-1")
    role = value.get("roleArn")
    if role is not None and (not isinstance(role, str) or not role.startswith("arn:")):
        raise ConfigError(f"{name}.roleArn must be an IAM role ARN")
    transform = value.get("transform")
    if transform is not None and not isinstance(transform, dict):
        raise ConfigError(f"{name}.transform must be a transform spec (a JSON object) or null")
    return TableRef(fields["tableName"], fields["region"], fields["account"], role, transform=transform)


def _reached_from(target: TableRef, caller_account: str) -> TableRef:
    """``target`` as the function (running in ``caller_account``, the source's) must name it."""
    foreign = target.account != caller_account and target.role_arn is None
    return replace(target, by_arn=foreign)


def _text(env: Mapping[str, str], name: str, default: str) -> str:
    """``env[name]`` stripped, or ``default`` when it is unset or blank."""
    return env.get(name, "").strip() or default


def _refuse(name: str, problem: str | None) -> None:
    """Raise a ConfigError naming the variable if an attribute-name rule of the contract found a problem."""
    if problem is not None:
        raise ConfigError(f"{name}={problem}")


def _targets(env: Mapping[str, str], mode: Mode, source: TableRef) -> tuple[TableRef, ...]:
    raw_targets = _json(env, contract.TARGETS)
    if not isinstance(raw_targets, list) or not raw_targets:
        raise ConfigError(f"{contract.TARGETS} must be a non-empty JSON list")
    targets = tuple(
        _reached_from(_table_ref(t, f"{contract.TARGETS}[{i}]", allow_role=True), source.account)
        for i, t in enumerate(raw_targets)
    )
    seen: set[tuple[str, str, str]] = set()
    for target in targets:
        where = (target.table_name, target.region, target.account)
        if where in seen:
            raise ConfigError(f"{contract.TARGETS} names {target.describe()} twice")
        seen.add(where)
        if where == (source.table_name, source.region, source.account):
            raise ConfigError(f"{contract.TARGETS} names the source table {source.describe()}")
    if mode is Mode.MULTI_ACTIVE:
        # The origin region is the tie-breaker between equal conflict values, so it must identify one copy.
        regions = [source.region, *(t.region for t in targets)]
        if len(set(regions)) != len(regions):
            raise ConfigError(
                f"{contract.TARGETS}: in {Mode.MULTI_ACTIVE.value} mode every copy must be in its own region"
            )
    return targets


def _key(env: Mapping[str, str]) -> KeySchema:
    raw_key = _json(env, contract.KEY)
    if not isinstance(raw_key, dict) or not isinstance(raw_key.get("partitionKey"), str) or not raw_key["partitionKey"]:
        raise ConfigError(f'{contract.KEY} must be {{"partitionKey": name, "sortKey": name or null}}')
    sort_key = raw_key.get("sortKey")
    if sort_key is not None and (not isinstance(sort_key, str) or not sort_key):
        raise ConfigError(f"{contract.KEY}.sortKey must be a non-empty string or null")
    return KeySchema(raw_key["partitionKey"], sort_key)


def _check_transforms(targets: Sequence[TableRef], mode: Mode, key: KeySchema) -> None:
    """Refuse a transform the replicator could not apply, at cold start rather than per record."""
    for index, target in enumerate(targets):
        if target.transform is None:
            continue
        name = f"{contract.TARGETS}[{index}].transform"
        if mode is Mode.MULTI_ACTIVE:
            # Conflict resolution compares whole items in every region; a reduced copy cannot take part.
            raise ConfigError(f"{name}: transforms are for {Mode.ONE_WAY.value} targets only")
        needs_secret = Transform.needs_secret(target.transform)
        if needs_secret and not isinstance(target.transform.get("secretArn"), str):
            raise ConfigError(f"{name}: masks use 'hmac', so the spec must name the secret (secretArn)")
        try:
            # A stand-in key checks the spec's shape; the secret itself is read once the config is valid.
            Transform.from_spec(target.transform, b"shape-check" if needs_secret else None, key.names)
        except TransformError as exc:
            raise ConfigError(f"{name}: {exc}") from None


def _log_level(env: Mapping[str, str]) -> str:
    raw = env.get(contract.LOG_LEVEL) or env.get(contract.POWERTOOLS_LOG_LEVEL) or contract.DEFAULT_LOG_LEVEL
    log_level = raw.strip().upper()
    if log_level not in _LOG_LEVELS:
        raise ConfigError(f"{contract.LOG_LEVEL}={log_level!r} is not one of {', '.join(_LOG_LEVELS)}")
    return log_level


def _ttl_deletes(env: Mapping[str, str], mode: Mode) -> TtlDeletes:
    # TTL deletes are replicated in both modes. A one-way copy must mirror the source. Multi-active copies do
    # hold the same TTL values, but each region's TTL process removes its copy on its own schedule (hours or
    # days apart) and, skipped, leaves nothing that remembers the expired version: a re-create with a lower
    # conflict value, or a late older write, then lands where the item is gone and loses where it is not, and
    # the copies never agree again (issue 10, defect 5). Replicated, an expiry is a versioned delete (rule 5),
    # as Global Tables replicates it; docs/conflicts.md "Deletes by TTL" states the cost.
    ttl_deletes = _enum(env, contract.TTL_DELETES, TtlDeletes, TtlDeletes.REPLICATE)
    if mode is Mode.MULTI_ACTIVE and ttl_deletes is TtlDeletes.SKIP:
        raise ConfigError(
            f"{contract.TTL_DELETES}={TtlDeletes.SKIP.value} is not supported with {contract.MODE}="
            f"{Mode.MULTI_ACTIVE.value}: regions expire items at different times, so unreplicated TTL deletes "
            "let the copies diverge (docs/conflicts.md)"
        )
    return ttl_deletes


def _tombstone_ttl_seconds(env: Mapping[str, str], change_source: ChangeSource) -> int:
    if change_source is ChangeSource.KINESIS:
        default, low = contract.DEFAULT_KINESIS_TOMBSTONE_TTL_SECONDS, contract.MIN_KINESIS_TOMBSTONE_TTL_SECONDS
    else:
        default, low = contract.DEFAULT_TOMBSTONE_TTL_SECONDS, contract.MIN_TOMBSTONE_TTL_SECONDS
    return _int(env, contract.TOMBSTONE_TTL_SECONDS, default, low, contract.MAX_TOMBSTONE_TTL_SECONDS)


def load_config(env: Mapping[str, str]) -> Config:
    """Parse and validate the REPLICATION_* variables (and LOG_LEVEL) of ``env`` (names and defaults: contract.py).

    Raises:
        ConfigError: naming the first variable that is missing or invalid.
    """
    mode = _enum(env, contract.MODE, Mode, Mode.ONE_WAY)
    change_source = _enum(env, contract.CHANGE_SOURCE, ChangeSource, ChangeSource.DYNAMODB_STREAMS)
    if change_source is ChangeSource.KINESIS and mode is Mode.MULTI_ACTIVE:
        # Multi-active decides with each record's old image, which is only meaningful in write order.
        raise ConfigError(
            f"{contract.CHANGE_SOURCE}={ChangeSource.KINESIS.value} supports "
            f"{contract.MODE}={Mode.ONE_WAY.value} only"
        )
    source = _table_ref(_json(env, contract.SOURCE), contract.SOURCE, allow_role=False)
    targets = _targets(env, mode, source)
    key = _key(env)
    _check_transforms(targets, mode, key)

    prefix = _text(env, contract.METADATA_PREFIX, contract.DEFAULT_METADATA_PREFIX)
    _refuse(contract.METADATA_PREFIX, contract.metadata_prefix_problem(prefix, key.names))
    conflict_attribute = _text(env, contract.CONFLICT_ATTRIBUTE, contract.DEFAULT_CONFLICT_ATTRIBUTE)
    if mode is Mode.MULTI_ACTIVE:
        problem = contract.conflict_attribute_problem(conflict_attribute, prefix, key.names)
        _refuse(contract.CONFLICT_ATTRIBUTE, problem)
    log_level = _log_level(env)
    ttl_deletes = _ttl_deletes(env, mode)
    ttl_attribute = _text(env, contract.TTL_ATTRIBUTE, contract.default_ttl_attribute(prefix))
    _refuse(contract.TTL_ATTRIBUTE, contract.ttl_attribute_problem(ttl_attribute, key.names, conflict_attribute))
    return Config(
        mode=mode,
        source=source,
        targets=targets,
        key=key,
        metadata_prefix=prefix,
        conflict_attribute=conflict_attribute,
        conflict_strategy=_enum(env, contract.CONFLICT_STRATEGY, ConflictStrategy, ConflictStrategy.TIMESTAMP),
        max_concurrency=_int(
            env, contract.MAX_CONCURRENCY, contract.DEFAULT_MAX_CONCURRENCY, 1, contract.MAX_CONCURRENCY_LIMIT
        ),
        log_level=log_level,
        ttl_deletes=ttl_deletes,
        tombstone_ttl_seconds=_tombstone_ttl_seconds(env, change_source),
        ttl_attribute=ttl_attribute,
        change_source=change_source,
    )
