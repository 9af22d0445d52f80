"""What the construct and the replicator agree on: environment variable names, their defaults, the tombstone
lifetime arithmetic and the attribute-name rules. One home for each of these facts.

Standard library only: this module ships in the Lambda asset (``replicator.contract``, imported by
``config.py``) and is imported by the construct library, the command line and the local runtime as
``cdk_replication._lambda.replicator.contract`` (see ``cdk_replication/_lambda.py``). Nothing here reads the
environment; ``config.load_config`` parses it, the construct writes it (``Replicator._environment``).

Durations are in seconds. The attribute-name rules return a problem (a phrase that starts with the offending
value, e.g. ``"'pk' is a key attribute"``) or ``None``; each side puts its own setting name in front
(``REPLICATION_TTL_ATTRIBUTE='pk' is a key attribute`` in the Lambda, ``conflict_attribute 'pk' ...`` at synth).
"""

from __future__ import annotations

from collections.abc import Collection

# --- environment variable names ------------------------------------------------------------------------------

#: ``ONE_WAY`` or ``MULTI_ACTIVE``.
MODE = "REPLICATION_MODE"
#: ``DYNAMODB_STREAMS`` or ``KINESIS``.
CHANGE_SOURCE = "REPLICATION_CHANGE_SOURCE"
#: JSON ``{"tableName", "region", "account"}`` of the table whose changes feed the function.
SOURCE = "REPLICATION_SOURCE"
#: JSON list of ``{"tableName", "region", "account", "roleArn"?}``.
TARGETS = "REPLICATION_TARGETS"
#: JSON ``{"partitionKey": name, "sortKey": name or null}``.
KEY = "REPLICATION_KEY"
#: Prefix of every attribute the replicator adds to items.
METADATA_PREFIX = "REPLICATION_METADATA_PREFIX"
#: Multi-active: the application attribute that orders concurrent writes.
CONFLICT_ATTRIBUTE = "REPLICATION_CONFLICT_ATTRIBUTE"
#: Multi-active: ``TIMESTAMP`` or ``VERSION``.
CONFLICT_STRATEGY = "REPLICATION_CONFLICT_STRATEGY"
#: Concurrent write requests per invocation.
MAX_CONCURRENCY = "REPLICATION_MAX_CONCURRENCY"
#: The tables' TTL attribute, where delete tombstones get their expiry.
TTL_ATTRIBUTE = "REPLICATION_TTL_ATTRIBUTE"
#: ``REPLICATE`` or ``SKIP`` deletes made by DynamoDB's TTL process.
TTL_DELETES = "REPLICATION_TTL_DELETES"
#: Lifetime of a delete tombstone, in seconds.
TOMBSTONE_TTL_SECONDS = "REPLICATION_TOMBSTONE_TTL_SECONDS"
#: Log level; ``POWERTOOLS_LOG_LEVEL`` is read when ``LOG_LEVEL`` is not set (the construct writes both).
LOG_LEVEL = "LOG_LEVEL"
POWERTOOLS_LOG_LEVEL = "POWERTOOLS_LOG_LEVEL"

#: Every variable above, in the order the documentation lists them.
ALL_VARIABLES: tuple[str, ...] = (
    MODE, CHANGE_SOURCE, SOURCE, TARGETS, KEY, METADATA_PREFIX, CONFLICT_ATTRIBUTE, CONFLICT_STRATEGY,
    MAX_CONCURRENCY, TTL_ATTRIBUTE, TTL_DELETES, TOMBSTONE_TTL_SECONDS, LOG_LEVEL, POWERTOOLS_LOG_LEVEL,
)

# --- defaults (applied by the Lambda when a variable is unset, and by the construct before it writes one) ----

#: Default of REPLICATION_METADATA_PREFIX.
DEFAULT_METADATA_PREFIX = "_rep_"
#: Default of REPLICATION_CONFLICT_ATTRIBUTE.
DEFAULT_CONFLICT_ATTRIBUTE = "updatedAt"
#: Default of REPLICATION_MAX_CONCURRENCY. Multi-active writes one conditional PutItem per item, so at 100 ms a
#: shard carries at most this / 0.1 s items/s; 128 measured best (docs/performance.md).
DEFAULT_MAX_CONCURRENCY = 128
#: Upper bound of REPLICATION_MAX_CONCURRENCY: each concurrent write holds a thread and a pooled connection.
MAX_CONCURRENCY_LIMIT = 512
#: Default of LOG_LEVEL.
DEFAULT_LOG_LEVEL = "INFO"
#: The default TTL attribute is the metadata prefix followed by this (``_rep_expiresAt``).
TTL_ATTRIBUTE_SUFFIX = "expiresAt"


def default_ttl_attribute(metadata_prefix: str) -> str:
    """REPLICATION_TTL_ATTRIBUTE's default, and the TTL attribute the construct gives tables that need one
    for the replicator's tombstones and have none of the user's: ``<metadata prefix>expiresAt``."""
    return metadata_prefix + TTL_ATTRIBUTE_SUFFIX


# --- tombstone lifetimes (rule 5: a tombstone outlives every record that could still arrive) ----------------

_HOUR = 3600
_DAY = 24 * _HOUR

#: DynamoDB Streams keep records this long; no stream record the replicator receives is older.
STREAM_RETENTION_SECONDS = _DAY
#: Added to every tombstone lifetime the construct computes: covers DynamoDB's TTL deletion delay and clock
#: differences between regions.
TOMBSTONE_MARGIN_SECONDS = _DAY
#: The construct's default retention of a Kinesis data stream it creates (``defaults.KINESIS_RETENTION``): a
#: week, so an initial load may take days before the mapping is enabled.
DEFAULT_KINESIS_RETENTION_SECONDS = 7 * _DAY


def multi_active_tombstone_ttl_seconds(max_record_age_seconds: int | None) -> int:
    """How long a multi-active delete tombstone must live, in seconds: stream retention, plus the mapping's
    maximum record age (``None``, unlimited, counts as the retention, since no stream record outlives it;
    a longer age is capped at it), plus ``TOMBSTONE_MARGIN_SECONDS``. With the default age of 1 h: 49 h."""
    age = STREAM_RETENTION_SECONDS if max_record_age_seconds is None else max_record_age_seconds
    return STREAM_RETENTION_SECONDS + min(age, STREAM_RETENTION_SECONDS) + TOMBSTONE_MARGIN_SECONDS


def kinesis_tombstone_ttl_seconds(retention_seconds: int) -> int:
    """How long a tombstone of a one-way copy fed by Kinesis must live, in seconds: the data stream's
    retention (a late duplicate can arrive as long as the stream keeps it) plus ``TOMBSTONE_MARGIN_SECONDS``."""
    return retention_seconds + TOMBSTONE_MARGIN_SECONDS


#: Lambda's default of REPLICATION_TOMBSTONE_TTL_SECONDS when the variable is unset (the construct always
#: writes it where tombstones are used): two days, comfortably above stream retention (24 h) plus the
#: construct's default maximum record age (1 h) plus DynamoDB's TTL deletion delay.
DEFAULT_TOMBSTONE_TTL_SECONDS = 2 * _DAY
#: The same with REPLICATION_CHANGE_SOURCE=KINESIS: the construct's default data stream retention plus the margin
#: (eight days).
DEFAULT_KINESIS_TOMBSTONE_TTL_SECONDS = kinesis_tombstone_ttl_seconds(DEFAULT_KINESIS_RETENTION_SECONDS)
#: Smallest REPLICATION_TOMBSTONE_TTL_SECONDS accepted: twice the stream retention. A multi-active tombstone's
#: logical expiry is sound only while its lifetime is at least twice the longest a record can wait to be
#: applied (at most the retention: metadata.compare); every lifetime the construct computes is at least this.
MIN_TOMBSTONE_TTL_SECONDS = 2 * STREAM_RETENTION_SECONDS
#: ... and with KINESIS: a data stream keeps records at least 24 h, and the construct adds a day of margin.
MIN_KINESIS_TOMBSTONE_TTL_SECONDS = 2 * STREAM_RETENTION_SECONDS
#: Largest REPLICATION_TOMBSTONE_TTL_SECONDS accepted: a year (Kinesis keeps records at most 365 days).
MAX_TOMBSTONE_TTL_SECONDS = 366 * _DAY

# --- attribute-name rules (checked at synth time by the construct and at cold start by the Lambda) -----------


def metadata_prefix_problem(metadata_prefix: str, key_names: Collection[str]) -> str | None:
    """The prefix must not start a key attribute's name: the replicator would take the key for its own
    metadata (and drop it from every comparison)."""
    for name in key_names:
        if name.startswith(metadata_prefix):
            return f"{metadata_prefix!r} is a prefix of key attribute {name!r}"
    return None


def conflict_attribute_problem(
    conflict_attribute: str, metadata_prefix: str, key_names: Collection[str]
) -> str | None:
    """Multi-active: the conflict attribute is the application's, so it must not look like metadata (it would
    be stripped before every write) and cannot be a key attribute (a key never changes, so it orders nothing)."""
    if conflict_attribute.startswith(metadata_prefix):
        return f"{conflict_attribute!r} starts with the metadata prefix {metadata_prefix!r}"
    if conflict_attribute in key_names:
        return f"{conflict_attribute!r} is a key attribute"
    return None


def ttl_attribute_problem(ttl_attribute: str, key_names: Collection[str], conflict_attribute: str) -> str | None:
    """The TTL attribute receives each tombstone's expiry, so it cannot be a key attribute or the conflict
    attribute (the tombstone keeps both, with their own values)."""
    if ttl_attribute in key_names or ttl_attribute == conflict_attribute:
        return f"{ttl_attribute!r} is a key or the conflict attribute"
    return None
