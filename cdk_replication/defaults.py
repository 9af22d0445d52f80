"""Every default the construct library applies, in one place.

Each value here is part of a contract: the replicator (lambda_src/replicator) and the local runtime
(cdk_replication/local) read the synthesized templates, and users rely on these defaults being stable.
Changing one is a breaking change and must be reflected in the construct tests that pin it.

The defaults the replicator applies too (metadata prefix, conflict attribute, concurrency, log level, the
TTL attribute's name, the tombstone lifetimes) have their one home in the replicator's contract module
(lambda_src/replicator/contract.py); the names here are the construct's view of them.
"""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_kinesis as kinesis
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3

from . import physical_names
from ._lambda.replicator import contract

# --- tables -------------------------------------------------------------------------------------------------

#: On-demand capacity: replicas absorb bursts of replicated writes without capacity planning.
BILLING_MODE = dynamodb.BillingMode.PAY_PER_REQUEST
#: The only stream view that lets the replicator tell a replicated write from an application write
#: (rule 3 compares old and new images) and apply deletes with their last state.
STREAM_VIEW = dynamodb.StreamViewType.NEW_AND_OLD_IMAGES
#: Point-in-time recovery is on: a replication bug must be recoverable.
POINT_IN_TIME_RECOVERY = True
#: Tables outlive their stacks: deleting a stack must never delete data.
REMOVAL_POLICY = RemovalPolicy.RETAIN
#: Deletion protection is off by default so that test stacks can be cleaned up; RETAIN already keeps data.
DELETION_PROTECTION = False
#: Encryption with an AWS-owned key (DynamoDB's own default; no KMS cost and no key policy to manage).
TABLE_ENCRYPTION = dynamodb.TableEncryption.DEFAULT

# --- replicator function ----------------------------------------------------------------------------------

#: Lambda runtime of the replicator. Python 3.13 is the version the replicator is tested against.
RUNTIME = lambda_.Runtime.PYTHON_3_13
#: Graviton: cheaper per GB-second, and the replicator is pure Python + boto3.
ARCHITECTURE = lambda_.Architecture.ARM_64
#: Memory in MiB. Lambda scales CPU with memory (1 vCPU at 1,769 MiB); 1,024 MiB (~0.58 vCPU) lets one
#: saturated shard reach the rates in docs/performance.md, 512 MiB would cap it by CPU.
MEMORY_SIZE_MIB = 1024
#: Per-invocation timeout. One batch of up to BATCH_SIZE records with retries of throttled writes fits easily.
TIMEOUT = Duration.seconds(60)
#: Retention of the replicator's own log group.
LOG_RETENTION = logs.RetentionDays.ONE_MONTH
#: Handler inside the lambda_src/ asset.
HANDLER = "replicator.handler.handler"
#: Log level passed as LOG_LEVEL / POWERTOOLS_LOG_LEVEL.
LOG_LEVEL = contract.DEFAULT_LOG_LEVEL

# --- event source mapping ----------------------------------------------------------------------------------

#: Start from the oldest record still in the stream so that nothing written before the mapping existed is lost.
STARTING_POSITION = lambda_.StartingPosition.TRIM_HORIZON
#: Most records per invocation of a one-way replicator fed by DynamoDB Streams (the other paths:
#: ``MAPPING_DEFAULTS``). A batch costs at least one cross-region round trip and little CPU per record (one
#: 25-item BatchWriteItem per 25 records), so one batch of 1,000 at a time carries ~4,000 records/s across
#: 100 ms (docs/performance.md). With no batching window, a quiet shard still gets small batches at once.
BATCH_SIZE = 1000
#: How long Lambda gathers records before invoking; zero keeps replication lag minimal.
MAX_BATCHING_WINDOW = Duration.seconds(0)
#: Retries of a failing batch before its records go to the failure destination. Bounded so a poison record
#: cannot hold its shard until the stream drops it.
RETRY_ATTEMPTS = 10
#: Records older than this are sent to the failure destination instead of being retried (rule 6: a poison record
#: must not hold its shard for a day). Tombstones must live stream retention (24 h) plus this value.
MAX_RECORD_AGE = Duration.hours(1)
#: The maximum record age, unless given, of a mapping that starts with a backlog older than MAX_RECORD_AGE:
#: a Kinesis change source (a load of days is the point of it) or a mapping created disabled for a migration
#: (enabled after the load, its first changes are as old as the load took). ``None``: up to the stream's
#: retention. Poison records are still bounded by RETRY_ATTEMPTS and bisection.
BACKLOG_MAX_RECORD_AGE: Duration | None = None
#: Split a failing batch in two and retry each half, isolating a poison record quickly.
BISECT_BATCH_ON_ERROR = True
#: The replicator returns the first failed record so Lambda resumes from there instead of replaying the batch.
#: Not a choice: without it Lambda ignores that answer and checkpoints past failed records (refused at synth).
REPORT_BATCH_ITEM_FAILURES = True
#: Concurrent batches per shard of a one-way replicator fed by DynamoDB Streams (the other paths:
#: ``MAPPING_DEFAULTS``). Lambda keeps each partition key's records in order at any factor (one key's records
#: are never in two concurrent batches), so the factor is a throughput setting, not an ordering one.
PARALLELIZATION_FACTOR = 1
#: Concurrent batches per shard when each item costs a conditional PutItem (multi-active; one-way fed by
#: Kinesis): ~1 ms of client CPU per record, so one container at the default memory (~0.58 vCPU) carries
#: ~270 records/s in batches of 100 across 100 ms; five lanes carry a saturated shard (1,000 records/s)
#: with a margin, and keep each batch, and so the lag, short (docs/performance.md, issue 17).
CONDITIONAL_PARALLELIZATION_FACTOR = 5
#: Most records per invocation with conditional writes: 100 keeps a batch near 0.3-0.4 s at 100 ms (one
#: round trip, two for a delete, plus ~0.2 s of CPU at 0.58 vCPU); the factor, not the batch, gives the rate.
CONDITIONAL_BATCH_SIZE = 100
#: (parallelization factor, batch size) per replication path, ``"streams-one-way"``, ``"kinesis-one-way"``,
#: ``"multi-active"`` (:func:`mapping_defaults`). Reserve concurrency for shards x factor.
MAPPING_DEFAULTS: dict[str, tuple[int, int]] = {
    "streams-one-way": (PARALLELIZATION_FACTOR, BATCH_SIZE),
    "kinesis-one-way": (CONDITIONAL_PARALLELIZATION_FACTOR, CONDITIONAL_BATCH_SIZE),
    "multi-active": (CONDITIONAL_PARALLELIZATION_FACTOR, CONDITIONAL_BATCH_SIZE),
}


def replication_path(multi_active: bool, kinesis: bool) -> str:
    """The key of ``MAPPING_DEFAULTS`` for a replicator's mode and change source."""
    if multi_active:
        return "multi-active"
    return "kinesis-one-way" if kinesis else "streams-one-way"


def mapping_defaults(multi_active: bool, kinesis: bool) -> tuple[int, int]:
    """(parallelization factor, batch size) of a replicator's mapping by default."""
    return MAPPING_DEFAULTS[replication_path(multi_active, kinesis)]


#: Mapping enabled on creation (``ReplicatorOptions.enabled=None``), except in a ``ReplicatedTable`` with a
#: migration configured, where it starts disabled: the copy must be loaded before the stream is applied.
ENABLED = True

# --- Kinesis Data Streams as the change source (ChangeSource.KINESIS) -------------------------------------

#: How long the data stream keeps changes: a week, so an initial load may take days before the mapping is
#: enabled (DynamoDB Streams keep 24 h). Kinesis accepts 24 h-365 days; beyond 24 h retention costs extra.
KINESIS_RETENTION = Duration.seconds(contract.DEFAULT_KINESIS_RETENTION_SECONDS)
#: On-demand capacity: the stream follows the table's write rate with no shard planning.
KINESIS_STREAM_MODE = kinesis.StreamMode.ON_DEMAND
#: Server-side encryption with the AWS managed key ``aws/kinesis``: no key policy to manage, and DynamoDB
#: and Lambda use it without extra grants. A stream of your own with a customer-managed key is supported
#: through ``KinesisOptions(stream_arn=..., encryption_key_arn=...)``.
KINESIS_ENCRYPTION = kinesis.StreamEncryption.MANAGED
#: Microseconds: the change time orders one item's changes (Kinesis may reorder and duplicate them).
KINESIS_TIMESTAMP_PRECISION = dynamodb.ApproximateCreationDateTimePrecision.MICROSECOND

# --- failure destination -----------------------------------------------------------------------------------

#: How long failure objects (Lambda's failure record with the whole invocation payload) stay in the default
#: S3 failure destination: long enough for a weekend incident, its redrive and an audit afterwards, short
#: enough that copies of table data do not accumulate. ``FailureDestination.s3(expiration=...)`` changes it.
FAILURE_BUCKET_EXPIRATION = Duration.days(30)
#: SSE-S3: Lambda writes with the replicator role and needs no key permission; no key policy to manage.
FAILURE_BUCKET_ENCRYPTION = s3.BucketEncryption.S3_MANAGED
#: Versioning off: every failure record is a new key (a random UUID in it), nothing is overwritten, and
#: a versioned bucket would keep expired copies of table data as noncurrent versions.
FAILURE_BUCKET_VERSIONED = False
#: The bucket holds the only copy of records the stream has forgotten: kept when it leaves the stack. Its
#: lifecycle rule stays on the retained bucket and empties it within FAILURE_BUCKET_EXPIRATION.
FAILURE_BUCKET_REMOVAL_POLICY = RemovalPolicy.RETAIN
#: How long the on-failure records (shard + sequence range) are kept in an SQS destination
#: (``FailureDestination.sqs()``): SQS's maximum.
FAILURE_QUEUE_RETENTION = Duration.days(14)
#: The event source mapping's own metrics (``MetricsConfig``): ``EventCount`` gives PolledEventCount,
#: OnFailureDestinationDeliveredEventCount and DroppedEventCount, which the alarms and dashboard read.
MAPPING_METRICS = (lambda_.MetricType.EVENT_COUNT,)

# --- alarms (ReplicationAlarms; the reasons for each default are in its docstring and docs/operations.md) ----

#: IteratorAge (Maximum) at or above this for 5 minutes: far below MAX_RECORD_AGE (1 h), far above normal.
ALARM_ITERATOR_AGE = Duration.minutes(5)
#: RecordsFailed per 5 minutes, in 2 of 3 periods.
ALARM_FAILED_RECORDS = 1
#: Function Errors per 5 minutes.
ALARM_FUNCTION_ERRORS = 1
#: Function Throttles per 5 minutes, 3 periods in a row.
ALARM_THROTTLES = 1
#: Records delivered to the failure destination per 5 minutes (messages visible, with SQS).
ALARM_FAILURE_DESTINATION = 1
#: Records the mapping dropped (past max age or retries and not sent to a destination) per 5 minutes.
ALARM_DROPPED_RECORDS = 1
#: Failed attempts to send a failure record to the failure destination (DestinationDeliveryFailures) per 5 minutes.
ALARM_DESTINATION_DELIVERY_FAILURES = 1
#: p99 of ReplicationLagMs at or above this for 3 five-minute periods in a row.
ALARM_REPLICATION_LAG_P99 = Duration.minutes(1)

# --- dashboard ---------------------------------------------------------------------------------------------

#: A ReplicatedTable creates a CloudWatch dashboard in its source (first writer's) stack.
DASHBOARD = True
#: Suffix of the dashboard's default name, ``<stack name prefix>-replication``.
DASHBOARD_SUFFIX = "-replication"

# --- replicator behaviour (environment) -------------------------------------------------------------------

#: Prefix of every metadata attribute the replicator adds to items.
METADATA_PREFIX = contract.DEFAULT_METADATA_PREFIX
#: Multi-active: the application attribute that orders concurrent writes.
CONFLICT_ATTRIBUTE = contract.DEFAULT_CONFLICT_ATTRIBUTE
#: Concurrent writes per invocation (see ``contract.DEFAULT_MAX_CONCURRENCY`` for why 128).
MAX_CONCURRENCY = contract.DEFAULT_MAX_CONCURRENCY
#: Multi-active: with no table TTL attribute of the user's, tables get TTL on ``<metadata prefix>expiresAt``
#: (``contract.default_ttl_attribute``) so that the replicator's delete tombstones expire.
TOMBSTONE_TTL_SUFFIX = contract.TTL_ATTRIBUTE_SUFFIX

# --- migration (initial load through a native export) ------------------------------------------------------

#: Root of the default export prefix ``cdk-replication/<source table>/<replica table>``; the same default as
#: ``cdk-replication migrate --s3-prefix``, so the CLI and the bucket policy agree without configuration.
MIGRATION_PREFIX_ROOT = physical_names.MIGRATION_PREFIX_ROOT
#: Export objects (a copy of production data) expire this long after they were written; the import reads
#: them within hours of the export, and the stream they are replayed against keeps only 24 h anyway.
MIGRATION_EXPIRATION = Duration.days(30)
#: Parts of an export's multipart upload that never completed (a failed export) are removed after a day.
MIGRATION_ABORT_INCOMPLETE_UPLOADS = Duration.days(1)
#: SSE-S3: no key policy to share with the exporting account; ``MigrationOptions.encryption_key_arn``
#: selects SSE-KMS with a key of the target account.
MIGRATION_ENCRYPTION = s3.BucketEncryption.S3_MANAGED
#: Versioning off: every export writes new keys under its own export id, nothing is overwritten, and a
#: versioned bucket would keep expired copies of the data as noncurrent versions.
MIGRATION_VERSIONED = False
#: The bucket is kept when it leaves the stack, like every other resource holding data here; its lifecycle
#: rule (which stays on the retained bucket) empties it within ``MIGRATION_EXPIRATION``.
MIGRATION_REMOVAL_POLICY = RemovalPolicy.RETAIN
#: Export files are gzip-compressed DynamoDB JSON.
IMPORT_COMPRESSION = dynamodb.InputCompressionType.GZIP
#: DynamoDB Streams keeps records this long; no record the replicator receives is older.
STREAM_RETENTION = Duration.seconds(contract.STREAM_RETENTION_SECONDS)
#: Multi-active delete tombstones live stream retention + the mapping's maximum record age (capped at the
#: retention) + this margin: they must outlive every record that could still arrive (rule 5); the margin also
#: covers clock differences between regions. Tombstones of a one-way copy fed by Kinesis live the data
#: stream's retention plus this margin. The arithmetic: ``contract.multi_active_tombstone_ttl_seconds`` and
#: ``contract.kinesis_tombstone_ttl_seconds``.
TOMBSTONE_MARGIN = Duration.seconds(contract.TOMBSTONE_MARGIN_SECONDS)
