"""The local deploy of an S3 on-failure destination from a synthesized CDK app: an ``AWS::S3::Bucket`` (and its
``AWS::S3::BucketPolicy``) becomes a folder, a mapping whose ``DestinationConfig.OnFailure`` names the bucket's ARN
writes Lambda's failure objects there, and the deploy refuses a role without the permissions AWS requires
(``s3:PutObject`` on the objects, ``s3:ListBucket`` on the bucket)."""

from __future__ import annotations

import json
from pathlib import Path

import aws_cdk as cdk
import jsii
import pytest
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs

from cdk_replication.local import TemplateError, deploy

ACCOUNT, REGION = "444444444444", "eu-west-1"
ENV = cdk.Environment(account=ACCOUNT, region=REGION)
HANDLER = '''
def handler(event, context):
    for record in event["Records"]:
        if record["dynamodb"]["Keys"]["pk"]["S"] == "poison":
            raise ValueError("poison record")
'''


@jsii.implements(lambda_.IEventSourceDlq)
class _BucketDestination:
    """An S3 on-failure destination that grants nothing itself (the role below carries the permissions)."""

    def __init__(self, bucket: s3.IBucket) -> None:
        self.bucket = bucket

    def bind(self, target, target_handler) -> lambda_.DlqDestinationConfig:  # noqa: ARG002 - jsii signature
        return lambda_.DlqDestinationConfig(destination=self.bucket.bucket_arn)


@jsii.implements(lambda_.IEventSourceDlq)
class _QueueDestination:
    """An SQS on-failure destination that grants nothing itself (``SqsDlq`` would grant SendMessage)."""

    def __init__(self, queue: sqs.IQueue) -> None:
        self.queue = queue

    def bind(self, target, target_handler) -> lambda_.DlqDestinationConfig:  # noqa: ARG002 - jsii signature
        return lambda_.DlqDestinationConfig(destination=self.queue.queue_arn)


def _assembly(tmp: Path, name: str, *, put_object: bool = True, list_bucket: bool = True,
              deny_in_bucket_policy: bool = False) -> Path:
    app = cdk.App(outdir=str(tmp))
    stack = cdk.Stack(app, "S3Dlq", env=ENV, stack_name=name)
    table = dynamodb.Table(stack, "Table", table_name=name, billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
                           partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING),
                           stream=dynamodb.StreamViewType.NEW_AND_OLD_IMAGES)
    bucket = s3.Bucket(stack, "Failures", enforce_ssl=True, block_public_access=s3.BlockPublicAccess.BLOCK_ALL)
    role = iam.Role(stack, "Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
    if put_object:
        role.add_to_policy(iam.PolicyStatement(actions=["s3:PutObject"], resources=[bucket.arn_for_objects("*")]))
    if list_bucket:
        role.add_to_policy(iam.PolicyStatement(actions=["s3:ListBucket"], resources=[bucket.bucket_arn]))
    if deny_in_bucket_policy:
        bucket.add_to_resource_policy(iam.PolicyStatement(
            effect=iam.Effect.DENY, principals=[iam.ArnPrincipal(role.role_arn)], actions=["s3:PutObject"],
            resources=[bucket.arn_for_objects("*")]))
    fn = lambda_.Function(stack, "Fn", function_name=f"{name}-fn", runtime=lambda_.Runtime.PYTHON_3_12,
                          handler="index.handler", code=lambda_.Code.from_inline(HANDLER), role=role)
    fn.add_event_source(sources.DynamoEventSource(
        table, starting_position=lambda_.StartingPosition.TRIM_HORIZON, retry_attempts=0,
        bisect_batch_on_error=True, on_failure=_BucketDestination(bucket)))
    return Path(app.synth().directory)


@pytest.fixture(scope="module")
def assembly(tmp_path_factory) -> Path:
    return _assembly(tmp_path_factory.mktemp("s3dlq"), "s3dlq-ok")


def test_bucket_and_policy_deploy_and_a_poison_record_lands_in_the_folder(assembly, ddb_local, tmp_path):
    with deploy(assembly, ddb_local, bucket_root=tmp_path) as dep:
        (bucket,) = dep.buckets
        assert dep.bucket(bucket.name) is bucket and dep.bucket(bucket.arn) is bucket
        assert bucket.name == bucket.name.lower() and len(bucket.name) <= 63
        assert bucket.arn == f"arn:aws:s3:::{bucket.name}"
        assert bucket.directory == tmp_path / bucket.name
        statement = bucket.policy["Statement"][0]  # CDK's enforce_ssl: deny any call without TLS
        assert statement["Effect"] == "Deny" and statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        (mapping,) = dep.mappings
        assert mapping.destination is bucket
        client = dep.table("s3dlq-ok").client()
        for key in ("good", "poison", "after"):
            client.put_item(TableName="s3dlq-ok", Item={"pk": {"S": key}})
        stats = dep.run_until_idle()[mapping.uuid]
        assert stats.records_processed == 2 and stats.records_discarded == 1 and stats.on_failure_records == 1
        (stored,) = bucket.objects()
        assert stored.key.startswith(f"aws/lambda/{mapping.uuid}/shardId-")
        assert stored.path == tmp_path / bucket.name / stored.key
        payload = json.loads(stored.json()["payload"])
        assert [r["dynamodb"]["Keys"]["pk"]["S"] for r in payload["Records"]] == ["poison"]
        assert stored.json()["requestContext"]["functionArn"] == dep.function("s3dlq-ok-fn").arn
    assert stored.path.is_file()  # a bucket_root the caller gives outlives the deployment


def test_the_default_bucket_root_is_removed_on_close(assembly, ddb_local):
    with deploy(assembly, ddb_local) as dep:
        root = dep.bucket_root
        assert dep.buckets[0].directory.is_dir()
    assert not root.exists()


def test_a_role_without_put_object_is_refused_at_deploy(tmp_path, ddb_local):
    with pytest.raises(TemplateError, match="does not have permissions to call PutObject on S3") as info:
        deploy(_assembly(tmp_path, "s3dlq-noput", put_object=False), ddb_local)
    assert "s3:PutObject" in str(info.value)


def test_a_role_without_list_bucket_is_refused_at_deploy(tmp_path, ddb_local):
    with pytest.raises(TemplateError, match="does not have permissions to call ListBucket on S3") as info:
        deploy(_assembly(tmp_path, "s3dlq-nolist", list_bucket=False), ddb_local)
    assert "s3:ListBucket on arn:aws:s3:::" in str(info.value)


def test_a_bucket_policy_deny_makes_the_write_a_delivery_failure(tmp_path, ddb_local):
    with deploy(_assembly(tmp_path / "cdk", "s3dlq-deny", deny_in_bucket_policy=True), ddb_local,
                bucket_root=tmp_path / "buckets") as dep:
        client = dep.table("s3dlq-deny").client()
        client.put_item(TableName="s3dlq-deny", Item={"pk": {"S": "poison"}})
        (mapping,) = dep.mappings
        stats = dep.run_until_idle()[mapping.uuid]
        assert stats.records_discarded == 1 and stats.destination_delivery_failures == 1
        assert stats.on_failure_records == 0 and dep.buckets[0].keys() == []
        assert "explicit deny in a resource-based policy" in stats.last_error


def test_a_role_without_send_message_to_its_failure_queue_is_refused_at_deploy(tmp_path, ddb_local):
    """The SQS destination (``FailureDestination.sqs()``) is checked as AWS checks it when the mapping is made."""
    app = cdk.App(outdir=str(tmp_path))
    stack = cdk.Stack(app, "SqsDlq", env=ENV, stack_name="sqsdlq-nosend")
    table = dynamodb.Table(stack, "Table", table_name="sqsdlq-nosend", billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
                           partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING),
                           stream=dynamodb.StreamViewType.NEW_AND_OLD_IMAGES)
    queue = sqs.Queue(stack, "Failures")
    role = iam.Role(stack, "Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
    fn = lambda_.Function(stack, "Fn", function_name="sqsdlq-nosend-fn", runtime=lambda_.Runtime.PYTHON_3_12,
                          handler="index.handler", code=lambda_.Code.from_inline(HANDLER), role=role)
    fn.add_event_source(sources.DynamoEventSource(
        table, starting_position=lambda_.StartingPosition.TRIM_HORIZON, retry_attempts=0,
        on_failure=_QueueDestination(queue)))
    with pytest.raises(TemplateError, match="does not have permissions to call SendMessage on SQS"):
        deploy(Path(app.synth().directory), ddb_local)
