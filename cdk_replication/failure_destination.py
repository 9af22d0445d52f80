"""Where the event source mapping sends the records the replicator could not apply (its on-failure destination).

``FailureDestination.s3()`` (the default) creates a bucket that receives one object per discarded batch holding
Lambda's failure record *with the whole invocation payload* (the records themselves), so the failed changes
outlive the 24 h of a DynamoDB stream and ``cdk-replication redrive --from s3://<bucket>`` can bring the keys
right later (docs/operations.md). ``FailureDestination.sqs()`` keeps the former SQS queue, which receives the
shard and sequence range only. ``FailureDestination.existing_bucket(bucket)`` names a bucket of your own.

The role gets exactly what Lambda needs to write there (``permissions.failure_destination_statements``); no
``grant*`` helper is used, because those add reads and deletes.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import jsii
from aws_cdk import Duration, Token
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from . import defaults
from .alarms import describe_duration
from .errors import ReplicationConfigError
from .permissions import acknowledge_nag
from .props import implements

#: S3 lifecycle expirations are whole days; at least one.
_MIN_EXPIRATION_DAYS = 1


class FailureDestinationKind(enum.Enum):
    """The kinds of on-failure destination (``FailureDestination.kind``)."""

    #: A bucket created for the replicator (``FailureDestination.s3()``); failed batches with their records.
    S3 = "S3"
    #: A bucket of your own (``FailureDestination.existing_bucket(bucket)``).
    EXISTING_BUCKET = "EXISTING_BUCKET"
    #: A queue created for the replicator (``FailureDestination.sqs()``); shard and sequence range only.
    SQS = "SQS"


@dataclass(frozen=True)
class FailureDestination:
    """The on-failure destination of a replicator's event source mapping. Build it with one of the class
    methods; the default of ``Replicator`` and ``ReplicatedTable`` is ``FailureDestination.s3()``.

    Attributes:
        kind: ``FailureDestinationKind.S3``, ``EXISTING_BUCKET`` or ``SQS``. Required (set by the class method).
        expiration: S3 only: how long failure objects are kept. Default: ``None`` (``s3()`` sets 30 days).
        bucket: ``EXISTING_BUCKET`` only: the bucket given. Default: ``None``.
    """

    kind: FailureDestinationKind
    expiration: Duration | None = None
    bucket: s3.IBucket | None = None

    @classmethod
    def s3(cls, expiration: Duration = defaults.FAILURE_BUCKET_EXPIRATION) -> "FailureDestination":
        """A bucket created for this replicator: SSE-S3, TLS only, public access blocked, owner-enforced, not
        versioned, retained when the stack goes.

        Args:
            expiration: failure objects are deleted this long after they were written (whole days, at least
                one). Default: 30 days (``defaults.FAILURE_BUCKET_EXPIRATION``).
        """
        return cls(kind=FailureDestinationKind.S3, expiration=expiration)

    @classmethod
    def sqs(cls) -> "FailureDestination":
        """An SQS queue created for this replicator (SQS-managed encryption, TLS only, 14-day retention). It
        receives the shard and sequence range of a failed batch only, not the records: ``redrive`` must read
        them back from the stream, which keeps them 24 h (DynamoDB Streams)."""
        return cls(kind=FailureDestinationKind.SQS)

    @classmethod
    def existing_bucket(cls, bucket: s3.IBucket) -> "FailureDestination":
        """A bucket of your own (``s3.Bucket.from_bucket_name(...)`` or one in another stack). The role gets
        ``s3:PutObject`` on the keys Lambda writes (``aws/lambda/*``) and ``s3:ListBucket`` on it, nothing else; its encryption, lifecycle
        and access are yours to set (it holds copies of table data). With a customer-managed bucket key, also
        let the replicator role use it (``kms:GenerateDataKey``).

        Args:
            bucket: the bucket that receives the failed batches. Required.
        """
        return cls(kind=FailureDestinationKind.EXISTING_BUCKET, bucket=bucket)

    def validate(self, path: str) -> None:
        """Raise ``ReplicationConfigError`` naming ``path`` for a destination that cannot be built."""
        if self.kind not in (FailureDestinationKind.S3, FailureDestinationKind.EXISTING_BUCKET, FailureDestinationKind.SQS):
            raise ReplicationConfigError(
                path, f"failure_destination kind {self.kind!r} is unknown",
                "build it with FailureDestination.s3(), .sqs() or .existing_bucket(bucket)",
            )
        if self.kind == FailureDestinationKind.S3:
            self._validate_expiration(path)
        if self.kind == FailureDestinationKind.EXISTING_BUCKET and not implements(self.bucket, s3.IBucket):
            raise ReplicationConfigError(
                path, f"failure_destination bucket is {self.bucket!r}, not an s3.IBucket",
                "pass a bucket, e.g. FailureDestination.existing_bucket(s3.Bucket.from_bucket_name(stack, 'B', 'name'))",
            )

    def _validate_expiration(self, path: str) -> None:
        if not isinstance(self.expiration, Duration):
            raise ReplicationConfigError(
                path, f"failure_destination expiration is {self.expiration!r}, not a Duration",
                "pass e.g. FailureDestination.s3(expiration=Duration.days(30))",
            )
        milliseconds = self.expiration.to_milliseconds(integral=False)
        if Token.is_unresolved(milliseconds):
            raise ReplicationConfigError(path, "failure_destination expiration is a token", "pass a literal Duration")
        days = milliseconds / 86_400_000
        if days < _MIN_EXPIRATION_DAYS or days != int(days):
            raise ReplicationConfigError(
                path,
                f"failure_destination expiration is {describe_duration(self.expiration)}; S3 expires objects after "
                f"whole days, at least {_MIN_EXPIRATION_DAYS}",
                "use Duration.days(n) with n >= 1 (default 30: long enough for a weekend incident and an audit)",
            )


@jsii.implements(lambda_.IEventSourceDlq)
class _DestinationArn:
    """On-failure destination that only names its ARN.

    ``aws_lambda_event_sources.SqsDlq`` / ``S3OnFailureDestination`` would also grant the function's role more
    than Lambda needs (GetQueueAttributes, or read and delete on the bucket); the role is written by hand in
    ``permissions.failure_destination_statements`` instead.
    """

    def __init__(self, arn: str) -> None:
        self._arn = arn

    def bind(self, target: lambda_.IEventSourceMapping, target_handler: lambda_.IFunction) -> lambda_.DlqDestinationConfig:
        return lambda_.DlqDestinationConfig(destination=self._arn)


@dataclass(frozen=True)
class BuiltDestination:
    """What ``build`` created or named: exactly one of ``bucket`` and ``queue`` is set."""

    bucket: s3.IBucket | None
    queue: sqs.IQueue | None

    @property
    def arn(self) -> str:
        """The ARN the mapping's ``DestinationConfig.OnFailure`` names (``arn:<partition>:s3:::<bucket>``)."""
        if self.bucket is not None:
            return self.bucket.bucket_arn
        assert self.queue is not None
        return self.queue.queue_arn

    def on_failure(self) -> lambda_.IEventSourceDlq:
        return _DestinationArn(self.arn)


def build(scope: Construct, destination: FailureDestination) -> BuiltDestination:
    """Create (or name) ``destination`` under ``scope`` (ids ``FailureBucket`` / ``FailureQueue``)."""
    if destination.kind == FailureDestinationKind.SQS:
        return BuiltDestination(bucket=None, queue=_failure_queue(scope))
    if destination.kind == FailureDestinationKind.EXISTING_BUCKET:
        assert destination.bucket is not None
        return BuiltDestination(bucket=destination.bucket, queue=None)
    assert destination.expiration is not None
    return BuiltDestination(bucket=_failure_bucket(scope, destination.expiration), queue=None)


def _failure_bucket(scope: Construct, expiration: Duration) -> s3.Bucket:
    """The default destination: a bucket only this replicator's mapping writes to."""
    bucket = s3.Bucket(
        scope,
        "FailureBucket",
        encryption=defaults.FAILURE_BUCKET_ENCRYPTION,
        enforce_ssl=True,
        block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
        object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
        versioned=defaults.FAILURE_BUCKET_VERSIONED,
        removal_policy=defaults.FAILURE_BUCKET_REMOVAL_POLICY,
        lifecycle_rules=[
            s3.LifecycleRule(
                id="ExpireFailureRecords",
                expiration=expiration,
                abort_incomplete_multipart_upload_after=Duration.days(1),
            )
        ],
    )
    acknowledge_nag(
        bucket,
        "AwsSolutions-S1",
        "Failure records are written only by Lambda's event source mapping with the replicator role, whose "
        "PutObject calls CloudTrail data events can record; server access logs would need a second bucket per "
        "replicator, itself without logs.",
    )
    return bucket


def _failure_queue(scope: Construct) -> sqs.Queue:
    """The SQS destination: SQS-managed encryption, TLS only, the longest retention."""
    queue = sqs.Queue(
        scope,
        "FailureQueue",
        encryption=sqs.QueueEncryption.SQS_MANAGED,
        enforce_ssl=True,
        retention_period=defaults.FAILURE_QUEUE_RETENTION,
    )
    acknowledge_nag(
        queue,
        "AwsSolutions-SQS3",
        "This queue is itself the on-failure destination (dead-letter target) of the stream mapping.",
    )
    return queue


