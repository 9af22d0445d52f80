"""Every IAM permission the constructs write, and the cdk-nag acknowledgements that explain them.

Kept apart from the constructs (as aws-cdk-lib keeps ``perms.ts`` apart from its grant classes) so that one
file answers "what may the replicator do, and why": the action lists per mode and change source, the
principal that matches exactly one role of another account, and the builders of the replicator role's
statements, of a cross-account writer role's statements and of a replica table's resource policy. The
statements' order, ``Sid`` s and action order are what the templates hold (snapshots and
tests/constructs/test_construct_iam.py pin them).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

from typing import Any

from aws_cdk import Acknowledgment, Aws, Stack, Validations
from aws_cdk import aws_iam as iam
from constructs import IConstruct

from .model import ChangeSource, ReplicationMode, ReplicationTarget, ResolvedTable
from .naming import table_arn

#: Item-level actions a ONE_WAY replicator calls on a target table: coalesced BatchWriteItem, and PutItem /
#: DeleteItem when a rejected batch is replayed item by item to isolate the bad record.
ONE_WAY_WRITE_ACTIONS: tuple[str, ...] = (
    "dynamodb:BatchWriteItem",
    "dynamodb:DeleteItem",
    "dynamodb:PutItem",
)
#: A MULTI_ACTIVE replicator applies every write, tombstones included, with a conditional PutItem; a failed
#: condition returns the stored item (ReturnValuesOnConditionCheckFailure), so it needs no GetItem.
MULTI_ACTIVE_WRITE_ACTIONS: tuple[str, ...] = ("dynamodb:PutItem",)
#: A ONE_WAY replicator fed by Kinesis writes every change, tombstones included, with a conditional PutItem
#: (ordered by change time); a failed condition returns the stored item (ReturnValuesOnConditionCheckFailure).
ORDERED_ONE_WAY_WRITE_ACTIONS: tuple[str, ...] = ("dynamodb:PutItem",)
#: ... and reads the source item (strongly consistent GetItem) to settle changes with equal times that the
#: records cannot order (lambda_src/replicator/ordered_one_way.py).
ORDERED_ONE_WAY_SOURCE_ACTIONS: tuple[str, ...] = ("dynamodb:GetItem",)
#: Stream actions Lambda's event source mapping performs with the function's role, scoped to one stream.
STREAM_READ_ACTIONS: tuple[str, ...] = (
    "dynamodb:DescribeStream",
    "dynamodb:GetRecords",
    "dynamodb:GetShardIterator",
)
#: Kinesis actions Lambda's event source mapping performs with the function's role on one data stream
#: (standard iterators; SubscribeToShard would only be needed by an enhanced fan-out consumer).
KINESIS_READ_ACTIONS: tuple[str, ...] = (
    "kinesis:DescribeStream",
    "kinesis:DescribeStreamSummary",
    "kinesis:GetRecords",
    "kinesis:GetShardIterator",
    "kinesis:ListShards",
)
#: What Lambda's event source mapping does with the function's role to deliver a failure record to an S3
#: on-failure destination (AWS Lambda developer guide, "Retain discarded records for a DynamoDB event
#: source": s3:PutObject and s3:ListBucket): PutObject on the bucket's objects, ListBucket on the bucket.
FAILURE_BUCKET_OBJECT_ACTIONS: tuple[str, ...] = ("s3:PutObject",)
#: ... under the key prefix Lambda writes failure records to (``aws/lambda/<mapping UUID>/<shard>/YYYY/MM/DD/...``),
#: not on the whole bucket: ``cdk-replication redrive`` keeps its markers under ``cdk-replication/redriven/``
#: in the same bucket, and the replicator's role must not be able to forge them.
FAILURE_RECORD_KEY_PREFIX = "aws/lambda/"
FAILURE_BUCKET_ACTIONS: tuple[str, ...] = ("s3:ListBucket",)
#: ... and to an SQS destination (FailureDestination.sqs()).
FAILURE_QUEUE_ACTIONS: tuple[str, ...] = ("sqs:SendMessage",)
#: KMS actions for writing items of a table encrypted with a customer-managed key.
TARGET_KMS_ACTIONS: tuple[str, ...] = ("kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey*")


def target_write_actions(
    mode: ReplicationMode, change_source: ChangeSource = ChangeSource.DYNAMODB_STREAMS
) -> tuple[str, ...]:
    """The item actions a replicator of ``mode`` reading ``change_source`` calls on the tables it writes."""
    if mode == ReplicationMode.MULTI_ACTIVE:
        return MULTI_ACTIVE_WRITE_ACTIONS
    if change_source == ChangeSource.KINESIS:
        return ORDERED_ONE_WAY_WRITE_ACTIONS
    return ONE_WAY_WRITE_ACTIONS


def acknowledge_nag(construct: IConstruct, rule_id: str, reason: str) -> None:
    """Record why a cdk-nag finding does not apply, through CDK's native acknowledgement (cdk-nag v3 reads
    it; no runtime dependency on cdk-nag)."""
    Validations.of(construct).acknowledge(Acknowledgment(id=rule_id, reason=reason))


def nag_reference(value: Any) -> str:
    """A resolved CloudFormation value in cdk-nag's flattened form (``<Logical.Arn>/*``), the form its
    finding ids (``AwsSolutions-IAM5[Resource::...]``) name a resource by."""
    if isinstance(value, str):
        return value.replace("${", "<").replace("}", ">")
    if isinstance(value, dict) and "Fn::Join" in value:
        delimiter, items = value["Fn::Join"]
        return delimiter.join(nag_reference(item) for item in items)
    if isinstance(value, dict) and "Fn::Sub" in value:
        return nag_reference(value["Fn::Sub"])
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        resource, attribute = value["Fn::GetAtt"]
        return f"<{nag_reference(resource)}.{nag_reference(attribute)}>"
    if isinstance(value, dict) and "Fn::ImportValue" in value:
        return nag_reference(value["Fn::ImportValue"])
    if isinstance(value, dict) and "Ref" in value:
        return f"<{nag_reference(value['Ref'])}>"
    return json.dumps(value, separators=(",", ":"))


def only_role(account: str, role_arn_value: str) -> iam.IPrincipal:
    """A principal matching exactly one role of ``account``.

    The account is the principal and the role ARN a condition, because IAM rejects a trust or resource
    policy that names a role ARN which does not exist yet (the replicator's stack may deploy later).
    """
    return iam.PrincipalWithConditions(
        iam.AccountPrincipal(account), {"ArnEquals": {"aws:PrincipalArn": role_arn_value}}
    )


def _arn_of(table: ResolvedTable) -> str:
    """The table's ARN with the partition left to CloudFormation (``AWS::Partition``)."""
    return table_arn(Aws.PARTITION, table.region, table.account, table.table_name)


# --- the replicator's own role ------------------------------------------------------------------------------


def replicator_statements(
    *,
    source: ResolvedTable,
    mode: ReplicationMode,
    change_source: ChangeSource,
    targets: Sequence[ReplicationTarget],
    stream_arn: str,
    stream_key_arn: str | None,
    source_key_arn: str | None,
    log_group_arn: str,
    failure_statements: Sequence[iam.PolicyStatement],
) -> list[iam.PolicyStatement]:
    """The replicator role's inline policy: read the changes, write its log group and failure destination
    (``failure_statements``, from ``failure_bucket_statements`` or ``failure_queue_statements``), write
    (or assume the writer roles of) its targets, and use the keys of the tables it reads and writes.

    ``source_key_arn`` is the source table's key for the item reads of a Kinesis change source;
    ``stream_key_arn`` the key of the stream it reads (the source table's key with DynamoDB Streams)."""
    if change_source == ChangeSource.KINESIS:
        statements = _kinesis_read_statements(source, stream_arn, source_key_arn)
    else:
        statements = _stream_read_statements(stream_arn)
    statements += [
        iam.PolicyStatement(
            sid="WriteOwnLogGroup", actions=["logs:CreateLogStream", "logs:PutLogEvents"], resources=[log_group_arn]
        ),
        *failure_statements,
    ]
    statements += _target_statements(source, mode, change_source, targets)
    statements += _key_statements(mode, targets, stream_key_arn)
    statements += _secret_statements(targets)
    return statements


#: The one action the replicator needs on the HMAC secret of masked replicas.
SECRET_READ_ACTIONS = ("secretsmanager:GetSecretValue",)


def _secret_statements(targets: Sequence[ReplicationTarget]) -> list[iam.PolicyStatement]:
    """Read the secrets whose value keys the targets' ``hmac`` masks (exactly those secrets; none without).

    A secret encrypted with a customer-managed KMS key also needs ``kms:Decrypt`` for the role in that key's
    policy (a user-given secret; the generated one uses ``aws/secretsmanager``)."""
    arns: list[str] = []
    for target in targets:
        arn = (target.transform or {}).get("secretArn")
        if isinstance(arn, str) and arn not in arns:
            arns.append(arn)
    if not arns:
        return []
    resources = [arn if _COMPLETE_SECRET_ARN.search(arn) else f"{arn}-??????" for arn in arns]
    return [iam.PolicyStatement(sid="ReadTransformSecret", actions=list(SECRET_READ_ACTIONS), resources=resources)]


#: A complete secret ARN ends in ``-`` and the six random characters Secrets Manager appends to the name; an
#: ARN without them (the generated secret's, whose suffix is unknown at synth) is granted with ``-??????``,
#: which matches exactly one suffix (AWS's documented pattern for granting a secret by name).
_COMPLETE_SECRET_ARN = re.compile(r":secret:.+-[A-Za-z0-9]{6}$")


def failure_bucket_statements(bucket_arn: str, objects_arn: str) -> list[iam.PolicyStatement]:
    """Exactly what Lambda needs to write failure records to the bucket ``bucket_arn`` (``objects_arn``: the
    ARN of the keys Lambda writes, ``<bucket ARN>/aws/lambda/*``, see ``FAILURE_RECORD_KEY_PREFIX``): no
    read, no delete, no ACL, no other key."""
    return [
        iam.PolicyStatement(
            sid="WriteFailureRecords", actions=list(FAILURE_BUCKET_OBJECT_ACTIONS), resources=[objects_arn]
        ),
        iam.PolicyStatement(sid="ListFailureBucket", actions=list(FAILURE_BUCKET_ACTIONS), resources=[bucket_arn]),
    ]


def failure_queue_statements(queue_arn: str) -> list[iam.PolicyStatement]:
    """What Lambda needs to send failure records to the queue ``queue_arn`` (SendMessage only)."""
    return [iam.PolicyStatement(sid="SendToFailureQueue", actions=list(FAILURE_QUEUE_ACTIONS), resources=[queue_arn])]


def _kinesis_read_statements(
    source: ResolvedTable, stream_arn: str, source_key_arn: str | None
) -> list[iam.PolicyStatement]:
    statements = [
        iam.PolicyStatement(sid="ReadSourceDataStream", actions=list(KINESIS_READ_ACTIONS), resources=[stream_arn]),
        iam.PolicyStatement(
            sid="ReadSourceItems", actions=list(ORDERED_ONE_WAY_SOURCE_ACTIONS), resources=[_arn_of(source)]
        ),
    ]
    if source_key_arn is not None:
        # Reading an item of a table with a customer-managed key decrypts with the caller's permission.
        statements.append(
            iam.PolicyStatement(sid="DecryptSourceItems", actions=["kms:Decrypt"], resources=[source_key_arn])
        )
    return statements


def _stream_read_statements(stream_arn: str) -> list[iam.PolicyStatement]:
    return [
        iam.PolicyStatement(sid="ReadSourceStream", actions=list(STREAM_READ_ACTIONS), resources=[stream_arn]),
        # ListStreams has no resource type in IAM: AWS only accepts "*" for it. Lambda's event source
        # mapping calls it with the function's role (it is in AWS's documented minimum for DynamoDB
        # stream triggers); it reveals stream ARNs only, not data.
        iam.PolicyStatement(sid="ListStreams", actions=["dynamodb:ListStreams"], resources=["*"]),
    ]


def _target_statements(
    source: ResolvedTable, mode: ReplicationMode, change_source: ChangeSource, targets: Sequence[ReplicationTarget]
) -> list[iam.PolicyStatement]:
    statements = []
    direct = [t for t in targets if t.writer_role_arn is None]
    if direct:
        statements.append(
            iam.PolicyStatement(
                sid="WriteTargetTables",
                actions=list(target_write_actions(mode, change_source)),
                resources=[_arn_of(t.table) for t in direct],
            )
        )
    assumed = sorted({t.writer_role_arn for t in targets if t.writer_role_arn is not None})
    if assumed:
        statements.append(iam.PolicyStatement(sid="AssumeWriterRoles", actions=["sts:AssumeRole"], resources=assumed))
    if mode == ReplicationMode.MULTI_ACTIVE:
        # A multi-active replicator also writes its own table: the tombstone after a local delete, and the
        # winner put back over a local write that lost (docs/conflicts.md).
        statements.append(
            iam.PolicyStatement(
                sid="WriteOwnTable", actions=list(MULTI_ACTIVE_WRITE_ACTIONS), resources=[_arn_of(source)]
            )
        )
    return statements


def _key_statements(
    mode: ReplicationMode, targets: Sequence[ReplicationTarget], stream_key_arn: str | None
) -> list[iam.PolicyStatement]:
    statements = []
    if stream_key_arn is not None:
        if mode == ReplicationMode.MULTI_ACTIVE:
            # Writing the own table needs the table key for encryption too, not only for reading the stream.
            statements.append(
                iam.PolicyStatement(sid="UseSourceTableKey", actions=list(TARGET_KMS_ACTIONS), resources=[stream_key_arn])
            )
        else:
            statements.append(
                iam.PolicyStatement(sid="DecryptSourceStream", actions=["kms:Decrypt"], resources=[stream_key_arn])
            )
    direct = [t for t in targets if t.writer_role_arn is None]
    target_keys = sorted({t.table.encryption_key_arn for t in direct if t.table.encryption_key_arn is not None})
    if target_keys:
        statements.append(
            iam.PolicyStatement(sid="UseTargetTableKeys", actions=list(TARGET_KMS_ACTIONS), resources=target_keys)
        )
    return statements


def acknowledge_replicator_role(role: IConstruct, statements: Sequence[iam.PolicyStatement]) -> None:
    """The cdk-nag findings the replicator role's ``statements`` raise by design, with the reasons."""
    if any("*" in st.resources for st in statements):
        acknowledge_nag(
            role,
            "AwsSolutions-IAM5[Resource::*]",
            "dynamodb:ListStreams is the only action on '*': IAM has no resource type for it, and Lambda's "
            "DynamoDB stream mapping uses it.",
        )
    if any("kms:GenerateDataKey*" in st.actions for st in statements):
        acknowledge_nag(
            role,
            "AwsSolutions-IAM5[Action::kms:GenerateDataKey*]",
            "DynamoDB generates data keys of a customer-managed table key on the caller's behalf; the "
            "statement is limited to the key ARNs of the tables this replicator writes.",
        )
    for statement in statements:
        if statement.sid != "WriteFailureRecords":
            continue
        for resource in statement.resources:
            acknowledge_nag(
                role,
                f"AwsSolutions-IAM5[Resource::{nag_reference(Stack.of(role).resolve(resource))}]",
                "Lambda writes each failure record under a key it chooses (aws/lambda/<mapping UUID>/<shard>/...): "
                "PutObject under the failure bucket's aws/lambda/ prefix, nothing else.",
            )


# --- cross-account access to a target ------------------------------------------------------------------------


def writer_role_statements(
    target: ResolvedTable, mode: ReplicationMode, change_source: ChangeSource
) -> list[iam.PolicyStatement]:
    """The inline policy of a writer role in ``target``'s account (``CrossAccountAccess.WRITER_ROLE``): the
    replicator's item actions on that one table, plus its customer-managed key, if any."""
    statements = [
        iam.PolicyStatement(
            sid="WriteReplicaTable", actions=list(target_write_actions(mode, change_source)), resources=[_arn_of(target)]
        )
    ]
    if target.encryption_key_arn is not None:
        statements.append(
            iam.PolicyStatement(
                sid="UseReplicaTableKey", actions=list(TARGET_KMS_ACTIONS), resources=[target.encryption_key_arn]
            )
        )
    return statements


def acknowledge_writer_role(role: IConstruct, target: ResolvedTable) -> None:
    """The cdk-nag finding a writer role for a table with a customer-managed key raises by design."""
    if target.encryption_key_arn is not None:
        acknowledge_nag(
            role,
            "AwsSolutions-IAM5[Action::kms:GenerateDataKey*]",
            "DynamoDB generates data keys of the table's customer-managed key on the caller's behalf; "
            "limited to that key's ARN.",
        )


def replica_resource_policy(
    target: ResolvedTable,
    foreign_writers: Sequence[tuple[str, str]],
    mode: ReplicationMode,
    change_source: ChangeSource,
) -> iam.PolicyDocument | None:
    """The resource policy of ``target`` (``CrossAccountAccess.RESOURCE_POLICY``) that lets exactly the
    replicator roles ``foreign_writers`` ((account, role ARN) pairs, in order) call the item actions on it;
    ``None`` when there is no writer in another account."""
    if not foreign_writers:
        return None
    statements = [
        iam.PolicyStatement(
            sid=f"Replicator{index}",
            principals=[only_role(account, role)],
            actions=list(target_write_actions(mode, change_source)),
            resources=[_arn_of(target)],
        )
        for index, (account, role) in enumerate(foreign_writers)
    ]
    return iam.PolicyDocument(statements=statements)
