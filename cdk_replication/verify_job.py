"""``ExportVerifyJob``: the export comparison of ``verify --from-exports`` as an AWS Glue 5.0 job.

The job runs cdk_replication/spark/job.py unchanged (Spark 3.5.4, Python 3.11, the versions Glue 5.0 runs and
the extra ``spark`` pins). Its code ships as two S3 assets, no Docker: the script itself, and a zip of what it
imports (``cdk_replication/spark/`` and ``cdk_replication/cli/items.py``, the single-machine verify's definition
of equality, under stub package ``__init__`` files so nothing else of the package, and no ``aws_cdk``, is
loaded). ``cdk-replication verify SOURCE TARGET --from-exports S3 S3 --glue-job NAME --report S3`` starts it.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from aws_cdk import Duration, Stack, Token
from aws_cdk import aws_glue as glue
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3_assets as s3_assets
from constructs import Construct

from . import defaults
from .errors import ReplicationConfigError
from .migration import require_export_prefix
from .naming import require_bucket_name
from .permissions import acknowledge_nag, nag_reference

#: Glue version: Spark 3.5.4, Python 3.11, Java 17 (pyproject.toml's extra ``spark`` pins that pyspark).
GLUE_VERSION = "5.0"
#: Worker type when not given: 4 vCPU, 16 GB per worker.
DEFAULT_WORKER_TYPE = "G.1X"
#: Workers when not given (docs/performance.md projects a billion items on this many).
DEFAULT_WORKERS = 10
#: Longest run before Glue stops it, when not given.
DEFAULT_TIMEOUT = Duration.hours(8)
#: The log groups a Glue 5.0 job run writes (driver/executor output, errors, continuous logs).
GLUE_LOG_GROUPS = "/aws-glue/jobs/*"

_PACKAGE = Path(__file__).resolve().parent
_STUB = '"""Stub package for the Glue job: only the modules the export comparison imports are shipped."""\n'


def _s3_location(path: str, what: str, value: object) -> tuple[str, str]:
    """``(bucket, prefix)`` of ``s3://bucket/prefix``: the prefix a literal (it bounds the grant), the bucket a
    literal or a token (``f"s3://{bucket.bucket_name}/orders"``: an app's bucket, named at deploy time)."""
    bucket, _, prefix = value[len("s3://"):].rstrip("/").partition("/") if isinstance(value, str) else ("", "", "")
    if not (isinstance(value, str) and value.startswith("s3://") and bucket and prefix
            and not Token.is_unresolved(prefix)):
        raise ReplicationConfigError(
            path, f"{what} is {value!r}, not s3://BUCKET/PREFIX with a literal prefix",
            f'give the S3 location the role may use, e.g. "s3://my-exports/orders" or '
            f'f"s3://{{bucket.bucket_name}}/orders" for {what}',
        )
    if not Token.is_unresolved(bucket):
        bucket = require_bucket_name(path, bucket, f"{what} bucket")
    return bucket, require_export_prefix(path, prefix, f"{what} prefix")


def stage_job_library(dest: Path) -> Path:
    """Lay out in ``dest`` what the Glue job imports (module docstring); returns ``dest``. The test runs the
    job's parser from this folder alone, so a missing module fails there, not on Glue."""
    (dest / "cdk_replication" / "cli").mkdir(parents=True)
    (dest / "cdk_replication" / "__init__.py").write_text(_STUB)
    (dest / "cdk_replication" / "cli" / "__init__.py").write_text(_STUB)
    shutil.copy2(_PACKAGE / "cli" / "items.py", dest / "cdk_replication" / "cli" / "items.py")
    shutil.copytree(_PACKAGE / "spark", dest / "cdk_replication" / "spark",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return dest


class ExportVerifyJob(Construct):
    """An AWS Glue 5.0 Spark job that compares two DynamoDB exports (``verify --from-exports --glue-job``).

    The role may read exactly the objects under the two export locations (``s3:GetObject``, and
    ``s3:ListBucket`` restricted to those prefixes), write exactly objects under the result location
    (``s3:PutObject``), read its own two code assets, and write Glue's logs and metrics; nothing else. Exports
    encrypted with a customer managed KMS key are not supported (the role has no ``kms:Decrypt``).

    Args:
        scope: parent construct, in a stack with an explicit account and region.
        id: construct id.
        source_exports: ``s3://bucket/prefix`` below which the source table's exports lie; the bucket may be a
            token (``f"s3://{bucket.bucket_name}/orders"``), the prefix must be a literal. Required.
        target_exports: the same for the target table's exports. Required.
        results: ``s3://bucket/prefix`` below which each run writes its ``report.json`` (``--report``).
            Required.
        job_name: Default: CloudFormation generates one (read it from ``job_name``).
        worker_type: Default: ``G.1X`` (4 vCPU, 16 GB).
        workers: number of workers, at least 2. Default: 10.
        timeout: Default: 8 hours.
        metadata_prefix: attributes starting with it are ignored; ``""`` ignores none. Default: ``_rep_``.
    """

    def __init__(self, scope: Construct, id: str, *, source_exports: str, target_exports: str, results: str,
                 job_name: str | None = None, worker_type: str = DEFAULT_WORKER_TYPE,
                 workers: int = DEFAULT_WORKERS, timeout: Duration = DEFAULT_TIMEOUT,
                 metadata_prefix: str = defaults.METADATA_PREFIX) -> None:
        super().__init__(scope, id)
        path = self.node.path
        self.source_exports = _s3_location(path, "source_exports", source_exports)
        self.target_exports = _s3_location(path, "target_exports", target_exports)
        self.results = _s3_location(path, "results", results)
        if not isinstance(workers, int) or workers < 2:
            raise ReplicationConfigError(path, f"workers is {workers!r}", "use at least 2 (Glue's minimum for G.1X)")
        staging = stage_job_library(Path(tempfile.mkdtemp(prefix="cdk-replication-glue-")))
        self.script = s3_assets.Asset(self, "Script", path=str(_PACKAGE / "spark" / "job.py"))
        self.library = s3_assets.Asset(self, "Library", path=str(staging))
        self.role = self._role()
        from .spark.job import NO_PREFIX_FLAG  # plain Python: the job's own flag for "no prefix"

        # Glue arguments cannot be empty strings: "no prefix" is a flag of its own.
        prefix_arguments = {NO_PREFIX_FLAG: "true"} if not metadata_prefix else {
            "--metadata-prefix": metadata_prefix, NO_PREFIX_FLAG: "false"}

        self.job = glue.CfnJob(
            self, "Job", name=job_name, role=self.role.role_arn, glue_version=GLUE_VERSION,
            command=glue.CfnJob.JobCommandProperty(name="glueetl", python_version="3",
                                                   script_location=self.script.s3_object_url),
            worker_type=worker_type, number_of_workers=workers, timeout=int(timeout.to_minutes()), max_retries=0,
            execution_property=glue.CfnJob.ExecutionPropertyProperty(max_concurrent_runs=1),
            default_arguments={
                "--extra-py-files": self.library.s3_object_url,
                **prefix_arguments,
                "--job-bookmark-option": "job-bookmark-disable",
                "--enable-metrics": "true",
                "--enable-continuous-cloudwatch-log": "true",
            },
        )
        self.job_name = self.job.ref
        acknowledge_nag(self.job, "AwsSolutions-GL1", "the job logs counts and export locations, no item "
                        "data (errors name a line's position, not its content); the log groups are Glue's own")
        acknowledge_nag(self.job, "AwsSolutions-GL3", "job bookmarks are disabled (--job-bookmark-option): "
                        "every run compares the exports it is given")

    def _role(self) -> iam.Role:
        """The job's role: exactly the statements the class docstring lists, each wildcard acknowledged."""
        stack = Stack.of(self)
        role = iam.Role(self, "Role", assumed_by=iam.ServicePrincipal("glue.amazonaws.com"),
                        description="cdk-replication ExportVerifyJob: read two export prefixes, write one result prefix")
        s3_arn = f"arn:{stack.partition}:s3:::"
        statements: list[tuple[iam.PolicyStatement, str]] = []
        for sid, (bucket, prefix) in (("ReadSourceExports", self.source_exports),
                                      ("ReadTargetExports", self.target_exports)):
            # `*` after the prefix: each export lies under <prefix>/AWSDynamoDB/<export id>/, ids chosen by AWS.
            statements.append((iam.PolicyStatement(sid=sid, actions=["s3:GetObject"],
                                                   resources=[f"{s3_arn}{bucket}/{prefix}/*"]),
                               "the exports under the prefix given to the construct (ids chosen by DynamoDB)"))
            statements.append((iam.PolicyStatement(
                sid=f"List{sid[4:]}", actions=["s3:ListBucket"], resources=[f"{s3_arn}{bucket}"],
                conditions={"StringLike": {"s3:prefix": [prefix, f"{prefix}/*"]}}), ""))
        bucket, prefix = self.results
        # `*` after the prefix: each run writes <results prefix>/<run's folder>/report.json (--report).
        statements.append((iam.PolicyStatement(sid="WriteResults", actions=["s3:PutObject"],
                                               resources=[f"{s3_arn}{bucket}/{prefix}/*"]),
                           "each run's report.json under the results prefix given to the construct"))
        statements.append((iam.PolicyStatement(sid="ReadJobCode", actions=["s3:GetObject"], resources=[
            self.script.bucket.arn_for_objects(self.script.s3_object_key),
            self.library.bucket.arn_for_objects(self.library.s3_object_key)]), ""))
        logs = f"arn:{stack.partition}:logs:{stack.region}:{stack.account}:log-group:{GLUE_LOG_GROUPS}"
        # `*` in the log group: Glue picks the group per stream (output, error, logs-v2) under /aws-glue/jobs/.
        statements.append((iam.PolicyStatement(sid="WriteGlueLogs", resources=[logs, f"{logs}:*"], actions=[
            "logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"]),
            "Glue's own log groups for job runs (/aws-glue/jobs/output, error, logs-v2) and their streams"))
        # `*`: cloudwatch:PutMetricData has no resource type; the condition keeps it to Glue's namespace.
        statements.append((iam.PolicyStatement(sid="WriteGlueMetrics", actions=["cloudwatch:PutMetricData"],
                                               resources=["*"],
                                               conditions={"StringEquals": {"cloudwatch:namespace": "Glue"}}),
                           "cloudwatch:PutMetricData has no resource type; conditioned on the Glue namespace"))
        for statement, reason in statements:
            role.add_to_policy(statement)
            for resource in statement.resources if reason else ():
                acknowledge_nag(role, f"AwsSolutions-IAM5[Resource::{nag_reference(stack.resolve(resource))}]",
                                reason)
        return role
