"""Deploy a synthesized cloud assembly onto DynamoDB Local: tables, functions, event source mappings, queues.

Everything comes from the templates: each stack's explicit environment picks the region and account
database, ``AWS::DynamoDB::Table``/``GlobalTable`` resources become tables, ``AWS::Lambda::Function``
resources with a local code asset become :class:`LocalFunction` containers, ``AWS::SQS::Queue`` (and SNS
topics used as destinations) become :class:`LocalQueue` objects, ``AWS::S3::Bucket`` resources become
folder-backed :class:`LocalBucket` objects (with their ``AWS::S3::BucketPolicy``), and every ``AWS::Lambda::EventSourceMapping``
on a DynamoDB stream becomes a :class:`StreamEventSourceMapping` with the template's settings. Kinesis Data
Streams (``AWS::Kinesis::Stream``) are created in a :class:`LocalKinesis` (moto, started only when the assembly
has Kinesis resources), a table's ``KinesisStreamSpecification`` becomes a
:class:`KinesisStreamingDestination` (the bridge that plays DynamoDB's part) and a mapping on a Kinesis
stream becomes a :class:`KinesisEventSourceMapping`. ``AWS::IAM::Role``/``Policy``/``ManagedPolicy`` resources
and tables' ``ResourcePolicy`` go to the deployment's :class:`Gateway`, which every function talks to with
credentials of its execution role and which enforces accounts and IAM. Other resource types (logs, alarms,
KMS, ...) are not emulated; their ``Ref``/``Fn::GetAtt`` resolve to well-formed names and ARNs so the values
that mention them stay meaningful.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import tempfile
import time
import uuid
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cdk_replication.local.assembly import StackArtifact, read_assembly
from cdk_replication.local.bucket import LocalBucket
from cdk_replication.local.dynamodb_local import DynamoDBLocal, LocalCredentials, credentials_for_account
from cdk_replication.local.event_source_mapping import (
    EventSourceMapping,
    MappingSettings,
    MappingStats,
    StreamEventSourceMapping,
)
from cdk_replication.local.intrinsics import Resolver, TemplateError, partition_of
from cdk_replication.local.kinesis import (
    KinesisEventSourceMapping,
    LocalKinesis,
    kinesis_stream_arn,
    parse_kinesis_stream_arn,
)
from cdk_replication.local.kinesis_bridge import KinesisStreamingDestination
from cdk_replication.local.lambda_runtime import FunctionConfiguration, LocalFunction
from cdk_replication.local.parameters import ParameterError, ParameterService, ParameterStore
from cdk_replication.local.secrets import SecretError, SecretService, SecretStore, generate_value
from cdk_replication.local.queue import LocalQueue
from cdk_replication.local.stream_records import aws_stream_arn
from cdk_replication.local.table_tags import TagError, checked_tags
from cdk_replication.local.gateway import KNOWN_MANAGED_POLICIES, SESSION_SECONDS, Gateway, Role, request_context
from cdk_replication.local.iam import PolicyError, Principal, evaluate, service_may_assume

_TABLE_TYPES = ("AWS::DynamoDB::Table", "AWS::DynamoDB::GlobalTable")
_BUCKET, _BUCKET_POLICY = "AWS::S3::Bucket", "AWS::S3::BucketPolicy"
_KINESIS_STREAM = "AWS::Kinesis::Stream"
_SSM_PARAMETER = "AWS::SSM::Parameter"
_SECRET = "AWS::SecretsManager::Secret"
_AWS_MANAGED_POLICY = re.compile(r"^arn:[^:]+:iam::aws:policy/(?P<name>.+)$")
_POLICY_TYPES = ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy", "AWS::IAM::RolePolicy")
#: Lambda's event source mapping reads a DynamoDB stream with the function's role (AWS's documented minimum).
_DYNAMODB_STREAM_ACTIONS = ("dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator",
                            "dynamodb:ListStreams")
#: Actions IAM knows no resource type for: granted only by ``"Resource": "*"``, so checked on ``*``.
_NO_RESOURCE_TYPE = frozenset({"dynamodb:ListStreams"})
#: ... and a Kinesis data stream with a standard iterator.
_KINESIS_STREAM_ACTIONS = ("kinesis:DescribeStream", "kinesis:DescribeStreamSummary", "kinesis:GetRecords",
                           "kinesis:GetShardIterator", "kinesis:ListShards")


@dataclass
class LocalTable:
    """A table created (or found, when imported) by the local deploy.

    Attributes:
        name: physical table name.
        region: the table's region.
        account: the table's account.
        stack_name: the stack that declares it; ``None`` for an imported table.
        logical_id: its logical id in that stack; ``None`` for an imported table.
        key_schema: ``[{"AttributeName", "KeyType"}]`` as DynamoDB describes it.
        local_stream_arn: the stream ARN inside DynamoDB Local, or ``None`` without a stream.
    """

    name: str
    region: str
    account: str
    stack_name: str | None
    logical_id: str | None
    key_schema: list[dict[str, str]]
    local_stream_arn: str | None
    _ddb: DynamoDBLocal = field(repr=False)

    @property
    def arn(self) -> str:
        partition, _ = partition_of(self.region)
        return f"arn:{partition}:dynamodb:{self.region}:{self.account}:table/{self.name}"

    @property
    def stream_arn(self) -> str | None:
        """The stream ARN as AWS would write it (what templates and events carry)."""
        if self.local_stream_arn is None:
            return None
        return aws_stream_arn(self.local_stream_arn, self.region, self.account)

    def client(self, service: str = "dynamodb") -> Any:
        """A boto3 ``dynamodb`` (or ``dynamodbstreams``) client for this table's region and account."""
        return self._ddb.client(service, region=self.region, account=self.account)


@dataclass
class DeployedStack:
    """What the local deploy made of one stack."""

    name: str
    region: str
    account: str
    tables: list[LocalTable] = field(default_factory=list)
    functions: list[LocalFunction] = field(default_factory=list)
    mappings: list[EventSourceMapping] = field(default_factory=list)
    queues: list[LocalQueue] = field(default_factory=list)
    buckets: list[LocalBucket] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)
    #: ARNs of the Kinesis streams the stack declares.
    kinesis_streams: list[str] = field(default_factory=list)
    bridges: list[KinesisStreamingDestination] = field(default_factory=list)


class LocalDeployment:
    """A cloud assembly running on DynamoDB Local. Create it with :func:`deploy`.

    Use it as a context manager, or call :meth:`close` to stop every background thread and container.
    """

    def __init__(self, ddb: DynamoDBLocal, gateway: Gateway, kinesis: LocalKinesis | None = None,
                 bucket_root: Path | str | None = None) -> None:
        self.ddb = ddb
        #: The endpoint every function talks to (DynamoDB, DynamoDB Streams, STS), with IAM enforced.
        self.gateway = gateway
        #: The same object under its former name: ``.calls`` are the STS requests, ``.endpoint_url`` the URL.
        self.sts = gateway
        self._kinesis = kinesis
        self._owns_kinesis = False
        #: Execution role ARN by function ARN (the ``invokeIdentityArn`` of Kinesis events).
        self._function_roles: dict[str, str] = {}
        self.stacks: list[DeployedStack] = []
        #: Tables named by a mapping's literal stream ARN but not declared in the assembly (they existed).
        self.imported_tables: list[LocalTable] = []
        self._exports: dict[str, Any] = {}
        self._temp_dirs: list[tempfile.TemporaryDirectory[str]] = []
        #: The SSM parameters (``AWS::SSM::Parameter``), served by the gateway on SSM's API.
        self.parameters = ParameterStore()
        gateway.add_service(ParameterService(self.parameters))
        #: The Secrets Manager secrets (``AWS::SecretsManager::Secret``), served by the gateway (GetSecretValue).
        self.secrets = SecretStore()
        gateway.add_service(SecretService(self.secrets))
        self._given_bucket_root = Path(bucket_root) if bucket_root is not None else None
        self._bucket_root: Path | None = None
        self._closed = False
        #: What deployed each stack (by name): an update compares the new template with its resources.
        self._deployers: dict[str, _StackDeployer] = {}
        self._log_sink: Callable[[str, str], None] | None = None
        self._settings_override: Callable[[MappingSettings], MappingSettings] | None = None
        self._running = False
        #: IAM documents by role ARN (inline policies) and by (stack, logical id) of the policy attaching them.
        self._role_policies: dict[str, tuple[Any, ...]] = {}
        self._attachments: dict[tuple[str, str], tuple[tuple[str, ...], Any]] = {}

    # --- lookups --------------------------------------------------------------------------------------

    @property
    def tables(self) -> list[LocalTable]:
        """Every table: those the stacks declare, then the imported ones (``stack_name`` ``None``)."""
        return [t for s in self.stacks for t in s.tables] + self.imported_tables

    @property
    def functions(self) -> list[LocalFunction]:
        return [f for s in self.stacks for f in s.functions]

    @property
    def mappings(self) -> list[EventSourceMapping]:
        """Every event source mapping: :class:`StreamEventSourceMapping` (DynamoDB) and
        :class:`KinesisEventSourceMapping`."""
        return [m for s in self.stacks for m in s.mappings]

    @property
    def bridges(self) -> list[KinesisStreamingDestination]:
        """The tables' Kinesis streaming destinations (one per ``KinesisStreamSpecification``)."""
        return [b for s in self.stacks for b in s.bridges]

    @property
    def kinesis(self) -> LocalKinesis | None:
        """The Kinesis data plane, or ``None`` if the assembly has no Kinesis resources."""
        return self._kinesis

    def kinesis_plane(self) -> LocalKinesis:
        """The Kinesis data plane, started on first use (a deployment without Kinesis never starts moto)."""
        if self._kinesis is None:
            self._kinesis = LocalKinesis()
            self._owns_kinesis = True
        if not self._kinesis.running:
            self._kinesis.start()
        return self._kinesis

    def kinesis_client(self, region: str, account: str) -> Any:
        """A boto3 ``kinesis`` client for ``region`` and ``account`` (starts the local Kinesis if needed)."""
        return self.kinesis_plane().client(region, account)

    def bridge_for(self, table: str | LocalTable) -> KinesisStreamingDestination:
        """The Kinesis streaming destination of ``table`` (a name or a :class:`LocalTable`)."""
        name = table.name if isinstance(table, LocalTable) else table
        return _one([b for b in self.bridges if b.table_name == name], f"Kinesis streaming destination of {name!r}",
                    [b.table_name for b in self.bridges])

    @property
    def queues(self) -> list[LocalQueue]:
        return [q for s in self.stacks for q in s.queues]

    @property
    def buckets(self) -> list[LocalBucket]:
        """Every S3 bucket: those the stacks declare and those a mapping names as destination (outside the app)."""
        return [b for s in self.stacks for b in s.buckets]

    @property
    def bucket_root(self) -> Path:
        """The folder that holds the bucket folders (``<bucket_root>/<bucket>/<key>``): the ``bucket_root`` given
        to :func:`deploy`, else a temporary folder removed by :meth:`close`."""
        if self._bucket_root is None:
            if self._given_bucket_root is not None:
                self._bucket_root = self._given_bucket_root
                self._bucket_root.mkdir(parents=True, exist_ok=True)
            else:
                tmp = tempfile.TemporaryDirectory(prefix="cdk-replication-buckets-")
                self._temp_dirs.append(tmp)
                self._bucket_root = Path(tmp.name)
        return self._bucket_root

    def bucket(self, name: str) -> LocalBucket:
        """The bucket with this name (or ARN)."""
        return _one([b for b in self.buckets if name in (b.name, b.arn)], f"bucket {name!r}",
                    [b.name for b in self.buckets])

    def table(self, name: str, region: str | None = None, account: str | None = None) -> LocalTable:
        """The deployed table called ``name`` (narrowed by region/account when several share the name)."""
        found = [t for t in self.tables if t.name == name and region in (None, t.region)
                 and account in (None, t.account)]
        return _one(found, f"table {name!r}" + (f" in {region}" if region else "") +
                    (f" of account {account}" if account else ""), [f"{t.name} ({t.account}/{t.region})"
                                                                   for t in self.tables])

    def parameter(self, name: str, region: str, account: str) -> str:
        """The value of SSM parameter ``name`` in ``region`` and ``account`` (as deployed or put since)."""
        found = self.parameters.get(name, region=region, account=account)
        if found is None:
            raise KeyError(f"no SSM parameter {name!r} in {account}/{region}; there are: "
                           f"{', '.join(self.parameters.names(region=region, account=account)) or 'none'}")
        return found.value

    def function(self, name: str) -> LocalFunction:
        """The function with this name (or ARN)."""
        return _one([f for f in self.functions if name in (f.name, f.arn)], f"function {name!r}",
                    [f.name for f in self.functions])

    def queue(self, name: str) -> LocalQueue:
        """The queue with this name (or ARN)."""
        return _one([q for q in self.queues if name in (q.name, q.arn)], f"queue {name!r}",
                    [q.name for q in self.queues])

    def mapping_for(self, function: str | LocalFunction) -> EventSourceMapping:
        """The one mapping that invokes ``function`` (a name, an ARN or the function)."""
        fn = function if isinstance(function, LocalFunction) else self.function(function)
        return _one([m for m in self.mappings if m.function is fn], f"mapping of function {fn.name!r}", [])

    # --- running --------------------------------------------------------------------------------------

    def run_until_idle(self, timeout_s: float = 120.0) -> dict[str, MappingStats]:
        """Step every Kinesis streaming destination and every mapping until none has anything left to
        publish or deliver (one mapping's function may write another's stream, so this repeats until the
        whole topology is quiet). Returns stats by mapping uuid."""
        deadline = time.monotonic() + timeout_s
        while True:
            busy = False
            for runner in [*self.bridges, *self.mappings]:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"the deployment is still busy after {timeout_s:.0f} s: "
                                       + "; ".join(f"{r!r}: {r.stats}" for r in [*self.bridges, *self.mappings]))
                before = _progress(runner)
                runner.run_until_idle(timeout_s=remaining)
                busy = busy or _progress(runner) != before
            if not busy:
                return {m.uuid: m.stats for m in self.mappings}

    def start(self) -> None:
        """Run every bridge and every mapping in its own background thread (as Lambda's pollers do); mappings
        and bridges an :meth:`update` creates start too, until :meth:`stop`."""
        self._running = True
        for runner in [*self.bridges, *self.mappings]:
            runner.start()

    def stop(self) -> None:
        """Stop the background threads (containers stay warm)."""
        self._running = False
        errors = []
        for runner in [*self.bridges, *self.mappings]:
            try:
                runner.stop()
            except RuntimeError as exc:
                errors.append(exc)
        if errors:
            raise errors[0]

    def update(self, cdk_out: Path | str, *, stacks: list[str] | None = None, destroy_missing: bool = False) -> None:
        """Deploy a changed assembly over this running deployment, as ``cdk deploy`` (CloudFormation and Lambda)
        would: the same resource (same stack, logical id and type, and the same physical name) is updated in
        place, a new one created, a removed one deleted.

        * Tables, queues, buckets and Kinesis streams are kept (with their items); a table's changed settings
          are not applied (only its resource policy). A removed table is retained when its ``DeletionPolicy``
          is ``Retain``/``RetainExceptOnCreate``/``Snapshot`` (the constructs' default) and deleted otherwise;
          either way it leaves ``.tables``.
        * A changed function (environment, code, handler, timeout, memory, role) applies to invocations that
          start after this call; one in progress finishes with the old configuration.
        * A kept event source mapping is the same resource: it keeps its checkpoints, takes the new settings
          (``Enabled``, batch size, ...; the starting position only matters at creation) and function. A
          removed mapping stops after its in-flight batch, then a removed function stops.
        * A changed ``StartingPosition`` (or ``EventSourceArn``) replaces the mapping: the new one starts from its
          position. A table or parameter created under a name that exists (e.g. a table a removal retained)
          fails the update, as on CloudFormation.
        * Roles and policies are replaced (a removed role's sessions are refused; a dropped table or bucket
          policy is removed); SSM parameters are written after the stack's functions and mappings
          (what their ``DependsOn`` says), only when their value changed; a removed one is deleted.

        Args:
            cdk_out: the new assembly folder.
            stacks: the stacks of the new assembly to deploy (``cdk deploy STACK...``). Default: every stack.
            destroy_missing: also destroy the deployed stacks the new assembly no longer has (``cdk destroy``);
                by default they stay as deployed, as with ``cdk deploy`` (it never deletes a stack).
        """
        artifacts = _selected(read_assembly(cdk_out), stacks, cdk_out)
        deployers = []
        for artifact in artifacts:
            previous = self._deployers.get(artifact.stack_name)
            deployer = _StackDeployer(self, artifact, self._log_sink, self._settings_override, previous)
            deployer.adopt_existing = False  # what this deployment did not create is in the way, as on AWS
            stack = deployer.deploy()
            if previous is not None:
                self.stacks[self.stacks.index(previous.stack)] = stack
                deployer.retire_removed(previous)
            else:
                self.stacks.append(stack)
            self._deployers[artifact.stack_name] = deployer
            deployers.append(deployer)
        if destroy_missing:
            names = {a.stack_name for a in read_assembly(cdk_out)}
            for name in [n for n in self._deployers if n not in names]:
                self._destroy(name)
        if self.gateway.enforce_iam:
            for deployer in deployers:
                deployer.check_mapping_permissions()

    def _destroy(self, stack_name: str) -> None:
        """``cdk destroy`` of one deployed stack: everything retired as if removed from its template."""
        deployer = self._deployers.pop(stack_name)
        empty = dataclasses.replace(deployer.artifact, template={"Resources": {}})
        _StackDeployer(self, empty, None, None, None).retire_removed(deployer)
        self.stacks.remove(deployer.stack)

    def _rebuild_role(self, arn: str) -> None:
        """Give the gateway ``arn``'s policies: its own inline ones and every policy attached to it."""
        role = self.gateway.role(arn)
        if role is None or arn not in self._role_policies:
            return
        attached = [document for arns, document in self._attachments.values() if arn in arns]
        self.gateway.add_role(dataclasses.replace(role, policies=(*self._role_policies[arn], *attached)))

    def close(self) -> None:
        """Stop threads and containers and the gateway; tables stay in DynamoDB Local."""
        if self._closed:
            return
        self._closed = True
        try:
            self.stop()
        finally:
            for fn in self.functions:
                fn.stop()
            self.gateway.close()
            if self._owns_kinesis and self._kinesis is not None:
                self._kinesis.stop()
            for tmp in self._temp_dirs:
                tmp.cleanup()

    def __enter__(self) -> "LocalDeployment":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def deploy(
    cdk_out: Path | str,
    ddb: DynamoDBLocal,
    *,
    stacks: list[str] | None = None,
    log_sink: Callable[[str, str], None] | None = None,
    settings_override: Callable[[MappingSettings], MappingSettings] | None = None,
    kinesis: LocalKinesis | None = None,
    enforce_iam: bool = True,
    bucket_root: Path | str | None = None,
) -> LocalDeployment:
    """Deploy the assembly in ``cdk_out`` onto ``ddb`` and return the running deployment.

    Idempotent for tables: a table that already exists with the same key schema is kept (with its items).
    Mappings are created but not started: call :meth:`LocalDeployment.start` for background polling or
    :meth:`LocalDeployment.run_until_idle` to drive them.

    Args:
        cdk_out: the assembly folder (``cdk.out``).
        ddb: a started DynamoDB Local.
        stacks: names of the stacks to deploy (and nothing else). Default: every stack.
        log_sink: called with ``(function name, line)`` for each line a function prints. Default: lines
            are kept per function (``LocalFunction.logs()``).
        settings_override: maps each mapping's settings from the template to the settings used (e.g. a
            shorter polling interval in tests). Default: the template's settings.
        kinesis: a started :class:`LocalKinesis` to create Kinesis streams in (it outlives the deployment).
            Default: the deployment starts its own when the assembly has Kinesis resources, and stops it on
            :meth:`LocalDeployment.close`.
        enforce_iam: evaluate every call a function makes against its role's policies and the resource's
            policy from the templates, and check at deploy that each mapping's role can read its stream and
            send to its on-failure destination (default ``True``). Account boundaries hold either way.
        bucket_root: the folder for the S3 buckets' objects (``<bucket_root>/<bucket>/<key>``), created if
            missing and kept after :meth:`LocalDeployment.close`. Default: a temporary folder the deployment
            removes on close.
    """
    artifacts = _selected(read_assembly(cdk_out), stacks, cdk_out)
    deployment = LocalDeployment(ddb, Gateway(ddb, enforce_iam=enforce_iam), kinesis, bucket_root)
    deployment._log_sink, deployment._settings_override = log_sink, settings_override
    try:
        deployers = [_StackDeployer(deployment, artifact, log_sink, settings_override) for artifact in artifacts]
        for deployer in deployers:
            deployment.stacks.append(deployer.deploy())
            deployment._deployers[deployer.artifact.stack_name] = deployer
        if enforce_iam:
            # After every stack: a role's policies may come from another stack's AWS::IAM::Policy.
            for deployer in deployers:
                deployer.check_mapping_permissions()
    except BaseException:
        deployment.close()
        raise
    return deployment


def _selected(artifacts: list[StackArtifact], stacks: list[str] | None, cdk_out: Path | str) -> list[StackArtifact]:
    """The artifacts named in ``stacks`` (all of them when ``None``)."""
    if stacks is None:
        return artifacts
    unknown = set(stacks) - {a.stack_name for a in artifacts}
    if unknown:
        raise TemplateError(f"no stack named {sorted(unknown)} in {cdk_out}; "
                            f"stacks: {[a.stack_name for a in artifacts]}")
    return [a for a in artifacts if a.stack_name in stacks]


def _progress(runner: KinesisStreamingDestination | EventSourceMapping) -> int:
    if isinstance(runner, KinesisStreamingDestination):
        return runner.stats.records_published
    return runner.stats.invocations


def _one(found: list[Any], what: str, available: list[str]) -> Any:
    if len(found) == 1:
        return found[0]
    if not found:
        raise KeyError(f"no {what} in the deployment" + (f"; there are: {', '.join(available)}" if available else ""))
    raise KeyError(f"{what} is ambiguous ({len(found)} match); narrow it down")


def _bucket_authorizer(gateway: Gateway, bucket: LocalBucket) -> Callable[[str | None, str, str], str | None]:
    """Evaluates a write to ``bucket`` as S3 would: the writer's role policies and the bucket policy (read when
    the write happens), with the condition keys of a signed HTTPS call. ``None`` means allowed."""
    def authorize(principal_arn: str | None, action: str, resource: str) -> str | None:
        if not principal_arn:
            return None  # no writer named (a mapping built by hand): nothing to evaluate
        role = gateway.role(principal_arn)
        if role is None:  # deleted by an update, or never deployed: no policy allows it anything
            return f"User: {principal_arn} is not authorized to perform: {action} on resource: \"{resource}\" " \
                   "(local runtime: the role is not (or no longer) in the deployment)"
        try:
            decision = evaluate(Principal(arn=role.arn, account=role.account), action, resource,
                                identity_policies=role.policies, resource_policy=bucket.policy,
                                resource_account=bucket.account, context=request_context(bucket.region))
        except PolicyError as error:
            return f"{action} on {resource} cannot be evaluated exactly locally: {error}"
        if decision.allowed:
            return None
        return f"User: {role.arn} is not authorized to perform: {action} on resource: \"{resource}\" {decision.reason}"
    return authorize


def _update_mapping(mapping: EventSourceMapping, function: LocalFunction, settings: MappingSettings,
                    destination: LocalQueue | LocalBucket | None, role_arn: str | None) -> EventSourceMapping:
    """UpdateEventSourceMapping: the same mapping (its checkpoints kept) with the new function, settings and
    destination, from its next batch on (batches in flight finish with the function they were sent to)."""
    with mapping._lock:
        # The starting position applies only when a mapping is created.
        mapping.settings = dataclasses.replace(settings, starting_position=mapping.settings.starting_position)
        mapping.function, mapping.destination, mapping.role_arn = function, destination, role_arn
        if settings.enabled:
            mapping.enable()
        else:
            mapping.disable()
    return mapping


#: The properties of an ``AWS::Lambda::EventSourceMapping`` whose change replaces it (UpdateEventSourceMapping
#: cannot change them): the new mapping reads from its own starting position, without the old checkpoints.
_MAPPING_REPLACED_BY = ("EventSourceArn", "StartingPosition", "StartingPositionTimestamp")


def _replaces_mapping(before: Mapping[str, Any], after: Mapping[str, Any]) -> bool:
    """Whether CloudFormation replaces a mapping whose resolved properties change from ``before`` to ``after``."""
    return any(before.get(key) != after.get(key) for key in _MAPPING_REPLACED_BY)


def _mapping_uuid(stack_name: str, logical_id: str) -> str:
    """An event source mapping's UUID (Lambda's ids are random UUIDs; this one is deterministic per mapping)."""
    return str(uuid.UUID(hashlib.sha256(f"{stack_name}/{logical_id}".encode()).hexdigest()[:32], version=4))


def _generated_name(stack_name: str, logical_id: str, limit: int) -> str:
    """A physical name in CloudFormation's style (stack, logical id, random suffix), but deterministic."""
    suffix = hashlib.sha256(f"{stack_name}/{logical_id}".encode()).hexdigest()[:12].upper()
    head = f"{stack_name}-{logical_id}"[: limit - len(suffix) - 1]
    return f"{head}-{suffix}"


class _StackDeployer:
    def __init__(
        self,
        deployment: LocalDeployment,
        artifact: StackArtifact,
        log_sink: Callable[[str, str], None] | None,
        settings_override: Callable[[MappingSettings], MappingSettings] | None,
        previous: "_StackDeployer | None" = None,
    ) -> None:
        #: The deploy of this stack being updated (``LocalDeployment.update``), or ``None``.
        self.previous = previous
        self.deployment = deployment
        self.artifact = artifact
        self.log_sink = log_sink
        self.settings_override = settings_override
        self.resources: dict[str, Any] = artifact.template.get("Resources", {})
        self.stack = DeployedStack(artifact.stack_name, artifact.region, artifact.account)
        self.partition, _ = partition_of(artifact.region)
        self.tables: dict[str, LocalTable] = {}
        self.functions: dict[str, LocalFunction] = {}
        self.queues: dict[str, LocalQueue] = {}
        self.buckets: dict[str, LocalBucket] = {}  # logical id -> bucket
        self.kinesis_streams: dict[str, str] = {}  # logical id -> ARN
        self.mappings: dict[str, EventSourceMapping] = {}
        self.mapping_sources: dict[str, str] = {}  # logical id -> EventSourceArn
        self.mapping_props: dict[str, Any] = {}  # logical id -> resolved properties
        self.parameters: dict[str, tuple[str, str]] = {}  # logical id -> (name, value)
        self.bucket_policies: dict[str, LocalBucket] = {}  # AWS::S3::BucketPolicy logical id -> its bucket
        self.code_ids: dict[str, str] = {}  # function logical id -> what identifies its code
        self.preexisting_tables: set[tuple[str, str]] = set()  # (region, name) of tables found, not created
        #: Whether a table to create that exists already is adopted (``deploy``'s documented idempotence, for a
        #: fresh deployment over a DynamoDB Local that holds it) or refused as CloudFormation does (``update``).
        self.adopt_existing = True
        #: (mapping logical id, function role ARN, event source ARN, on-failure destination ARN or None, uuid).
        self.mapping_roles: list[tuple[str, str | None, str, str | None, str]] = []
        self.resolver = Resolver(
            artifact.stack_name,
            artifact.region,
            artifact.account,
            self._parameters(),
            self._ref,
            self._get_att,
            deployment._exports,
            artifact.template.get("Conditions"),
        )

    def _fail(self, logical_id: str, problem: str) -> TemplateError:
        return TemplateError(f"stack {self.artifact.stack_name}, {logical_id}: {problem}")

    def _parameters(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name, spec in self.artifact.template.get("Parameters", {}).items():
            if "Default" not in spec:
                raise self._fail(f"Parameters.{name}", "a parameter without a default cannot be deployed locally")
            values[name] = spec["Default"]
        return values

    def _props(self, logical_id: str) -> dict[str, Any]:
        resource = self.resources[logical_id]
        return self.resolver.resolve(resource.get("Properties", {}), f"{logical_id}.Properties")

    def _included(self, resource: dict[str, Any]) -> bool:
        condition = resource.get("Condition")
        return condition is None or self.resolver.condition(condition)

    # --- names ----------------------------------------------------------------------------------------

    def _name(self, logical_id: str, prop: str, limit: int) -> str:
        value = self.resources[logical_id].get("Properties", {}).get(prop)
        if value is not None:
            return str(self.resolver.resolve(value, f"{logical_id}.Properties.{prop}"))
        return _generated_name(self.artifact.stack_name, logical_id, limit)

    def _arn(self, service: str, resource: str, region: bool = True) -> str:
        return f"arn:{self.partition}:{service}:{self.artifact.region if region else ''}:{self.artifact.account}:{resource}"

    def _ref(self, logical_id: str) -> Any:
        resource = self.resources.get(logical_id)
        if resource is None:
            raise self._fail(logical_id, "Ref to a resource that is not in the template")
        kind = resource["Type"]
        if kind in _TABLE_TYPES:
            return self._name(logical_id, "TableName", 255)
        if kind == "AWS::Lambda::Function":
            return self._name(logical_id, "FunctionName", 64)
        if kind == "AWS::SQS::Queue":
            name = self._name(logical_id, "QueueName", 80)
            return f"https://sqs.{self.artifact.region}.amazonaws.com/{self.artifact.account}/{name}"
        if kind == "AWS::SNS::Topic":
            return self._arn("sns", self._name(logical_id, "TopicName", 256))
        if kind == "AWS::IAM::Role":
            return self._name(logical_id, "RoleName", 64)
        if kind == _KINESIS_STREAM:
            return self._name(logical_id, "Name", 128)
        if kind == _BUCKET:
            return self._bucket_name(logical_id)
        if kind == _SSM_PARAMETER:
            return self._name(logical_id, "Name", 2048)
        if kind == _SECRET:
            return self._secret_arn(logical_id)
        return _generated_name(self.artifact.stack_name, logical_id, 128)

    def _get_att(self, logical_id: str, attribute: str) -> Any:
        resource = self.resources.get(logical_id)
        if resource is None:
            raise self._fail(logical_id, f"Fn::GetAtt {attribute} of a resource that is not in the template")
        kind = resource["Type"]
        if kind in _TABLE_TYPES:
            table = self.tables.get(logical_id) or self._create_table(logical_id)
            if attribute == "Arn":
                return table.arn
            if attribute == "StreamArn":
                if table.stream_arn is None:
                    raise self._fail(logical_id, "Fn::GetAtt StreamArn of a table without a stream")
                return table.stream_arn
            if attribute == "TableId":
                return hashlib.sha256(table.arn.encode()).hexdigest()[:32]
        if kind == _KINESIS_STREAM and attribute == "Arn":
            return kinesis_stream_arn(self._ref(logical_id), self.artifact.region, self.artifact.account)
        if kind == "AWS::Lambda::Function" and attribute == "Arn":
            return self._arn("lambda", f"function:{self._ref(logical_id)}")
        if kind == "AWS::SQS::Queue":
            name = self._name(logical_id, "QueueName", 80)
            if attribute == "Arn":
                return self._arn("sqs", name)
            if attribute == "QueueName":
                return name
            if attribute == "QueueUrl":
                return self._ref(logical_id)
        if kind == "AWS::SNS::Topic" and attribute in ("TopicArn", "Arn"):
            return self._ref(logical_id)
        if kind == _BUCKET:
            return self._bucket_attribute(logical_id, attribute)
        if kind == _SSM_PARAMETER and attribute in ("Type", "Value"):
            return self._props(logical_id).get(attribute, "String" if attribute == "Type" else "")
        if kind == "AWS::IAM::Role":
            if attribute == "Arn":
                return f"arn:{self.partition}:iam::{self.artifact.account}:role/{self._ref(logical_id)}"
            if attribute == "RoleId":
                return "AROALOCAL" + hashlib.sha256(logical_id.encode()).hexdigest()[:12].upper()
        if attribute == "Arn":
            service = kind.split("::")[1].lower()
            return self._arn(service, f"{logical_id.lower()}/{self._ref(logical_id)}")
        # Attributes of resources that are not emulated: a stable, recognisable placeholder.
        return f"{self._ref(logical_id)}.{attribute}"

    # --- deploy ---------------------------------------------------------------------------------------

    def deploy(self) -> DeployedStack:
        order = [(_SECRET,), (_KINESIS_STREAM,), _TABLE_TYPES, ("AWS::SQS::Queue", "AWS::SNS::Topic"), (_BUCKET,), (_BUCKET_POLICY,),
                 ("AWS::IAM::Role",), _POLICY_TYPES, ("AWS::Lambda::Function",), ("AWS::Lambda::EventSourceMapping",),
                 (_SSM_PARAMETER,)]
        create: dict[str, Callable[[str], Any]] = {
            _KINESIS_STREAM: self._create_kinesis_stream, "AWS::IAM::Role": self._register_role,
            "AWS::Lambda::Function": self._create_function, "AWS::Lambda::EventSourceMapping": self._create_mapping,
            _BUCKET: self._create_bucket, _BUCKET_POLICY: self._attach_bucket_policy,
            _SSM_PARAMETER: self._put_parameter, _SECRET: self._create_secret, "AWS::SQS::Queue": self._create_queue,
            "AWS::SNS::Topic": self._create_queue,
            **{kind: self._attach_policy for kind in _POLICY_TYPES},
        }
        for kinds in order:
            for logical_id, resource in self.resources.items():
                if resource.get("Type") not in kinds or not self._included(resource):
                    continue
                if resource["Type"] in _TABLE_TYPES:
                    if logical_id not in self.tables:
                        self._create_table(logical_id)
                else:
                    create[resource["Type"]](logical_id)
        for name, output in self.artifact.template.get("Outputs", {}).items():
            value = self.resolver.resolve(output.get("Value"), f"Outputs.{name}")
            self.stack.outputs[name] = value
            export = output.get("Export", {}).get("Name")
            if export is not None:
                self.deployment._exports[self.resolver.resolve(export, f"Outputs.{name}.Export")] = value
        if self.deployment._running:  # an update of a running deployment: what it created runs too
            for runner in [*self.stack.bridges, *self.stack.mappings]:
                runner.start()
        return self.stack

    def _kept(self, logical_id: str, collection: str) -> Any:
        """What the previous deploy of this stack made for ``logical_id`` (from its ``collection``, e.g.
        ``"functions"``) when it is the same resource: same logical id and type. ``None`` otherwise."""
        if self.previous is None:
            return None
        before = self.previous.resources.get(logical_id)
        if before is None or before.get("Type") != self.resources[logical_id].get("Type"):
            return None
        return getattr(self.previous, collection).get(logical_id)

    def retire_removed(self, previous: "_StackDeployer") -> None:
        """Delete what ``previous`` (the deploy this one updates) made that this one no longer has: mappings
        stop after their in-flight batch, then functions and bridges; parameters are deleted; tables are
        retained or deleted by their ``DeletionPolicy``."""
        for mapping in previous.stack.mappings:
            if mapping not in self.stack.mappings:
                with mapping._lock:  # waits for the batch in progress
                    mapping.disable()
                mapping.stop()
        for bridge in previous.stack.bridges:
            if bridge not in self.stack.bridges:
                bridge.stop()
        for function in previous.stack.functions:
            if function not in self.stack.functions:
                function.stop()
        kept_names = {name for name, _ in self.parameters.values()}
        for name, _ in previous.parameters.values():
            if name not in kept_names:
                self.deployment.parameters.delete(name, region=self.artifact.region, account=self.artifact.account)
        for table in previous.stack.tables:
            if table not in self.stack.tables and table.logical_id is not None:
                policy = previous.resources.get(table.logical_id, {}).get("DeletionPolicy", "Delete")
                if policy not in ("Retain", "RetainExceptOnCreate", "Snapshot"):
                    table.client().delete_table(TableName=table.name)
        self._retire_policies_and_roles(previous)

    def _retire_policies_and_roles(self, previous: "_StackDeployer") -> None:
        """Remove the bucket policies, policy attachments and roles ``previous`` made that this deploy does not
        have: their permissions end with the update, as on AWS."""
        for bucket in previous.bucket_policies.values():
            if bucket not in self.bucket_policies.values():
                bucket.policy = None
        for logical_id in previous.resources:
            if (self.artifact.stack_name, logical_id) in self.deployment._attachments and \
                    logical_id not in self.resources:
                arns, _ = self.deployment._attachments.pop((self.artifact.stack_name, logical_id))
                for arn in arns:
                    self.deployment._rebuild_role(arn)
        kept_roles = self._role_arns()
        for arn in previous._role_arns() - kept_roles:
            self.deployment.gateway.remove_role(arn)
            self.deployment._role_policies.pop(arn, None)

    def _role_arns(self) -> set[str]:
        """The ARNs of this template's ``AWS::IAM::Role`` resources."""
        return {str(self._get_att(logical_id, "Arn")) for logical_id, resource in self.resources.items()
                if resource.get("Type") == "AWS::IAM::Role" and self._included(resource)}

    # --- tables ---------------------------------------------------------------------------------------

    def _create_table(self, logical_id: str) -> LocalTable:
        resource = self.resources[logical_id]
        props = self._props(logical_id)
        name = self._name(logical_id, "TableName", 255)
        kept = self._kept(logical_id, "tables")
        if kept is not None and kept.name == name:
            return self._keep_table(logical_id, kept, props)
        regions = [self.artifact.region]
        if resource["Type"] == "AWS::DynamoDB::GlobalTable":
            regions = [r["Region"] for r in props.get("Replicas", [])] or regions
        request: dict[str, Any] = {
            "TableName": name,
            "KeySchema": props["KeySchema"],
            "AttributeDefinitions": props["AttributeDefinitions"],
        }
        provisioned = props.get("BillingMode", "PROVISIONED") == "PROVISIONED"
        if provisioned:
            request["ProvisionedThroughput"] = props.get("ProvisionedThroughput") or {
                "ReadCapacityUnits": 5, "WriteCapacityUnits": 5}
        else:
            request["BillingMode"] = "PAY_PER_REQUEST"
        for key in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
            indexes = []
            for index in props.get(key, []):
                entry = {k: index[k] for k in ("IndexName", "KeySchema", "Projection") if k in index}
                if key == "GlobalSecondaryIndexes" and provisioned:
                    entry["ProvisionedThroughput"] = index.get("ProvisionedThroughput") or {
                        "ReadCapacityUnits": 5, "WriteCapacityUnits": 5}
                indexes.append(entry)
            if indexes:
                request[key] = indexes
        stream = props.get("StreamSpecification")
        if stream and stream.get("StreamViewType") and stream.get("StreamEnabled", True):
            request["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": stream["StreamViewType"]}
        tables = [self._ensure_table(logical_id, region, request, props.get("TimeToLiveSpecification"))
                  for region in regions]
        self._set_resource_policies(resource["Type"], props, tables)
        self._apply_tags(resource["Type"], props, tables)
        # A global table's attributes (StreamArn, Arn) are those of the replica in the stack's region.
        mine = next((t for t in tables if t.region == self.artifact.region), tables[0])
        self.tables[logical_id] = mine
        self.stack.tables.extend(tables)
        if props.get("KinesisStreamSpecification"):
            if resource["Type"] != "AWS::DynamoDB::Table":
                raise self._fail(logical_id, "KinesisStreamSpecification of a global table's replicas is not "
                                             "emulated; only AWS::DynamoDB::Table")
            self._create_bridge(logical_id, mine, props["KinesisStreamSpecification"])
        return mine

    def _keep_table(self, logical_id: str, kept: LocalTable, props: dict[str, Any]) -> LocalTable:
        """An updated table resource: the same table(s), items and stream; its bridge keeps running. Only the
        resource policy of its settings is applied again (key, indexes, stream are not changed locally)."""
        assert self.previous is not None
        if props.get("KeySchema") != self.previous._props(logical_id).get("KeySchema"):
            raise self._fail(logical_id, f"the key schema of table {kept.name!r} changed, which replaces the table; "
                                         "CloudFormation cannot replace a table with a custom name (remove it, "
                                         "deploy, then add it back)")
        tables = [t for t in self.previous.stack.tables if t.logical_id == logical_id]
        self._set_resource_policies(self.resources[logical_id]["Type"], props, tables)
        self._apply_tags(self.resources[logical_id]["Type"], props, tables)
        self.tables[logical_id] = kept
        self.stack.tables.extend(tables)
        self.stack.bridges.extend(b for b in self.previous.stack.bridges
                                  if (b.table_name, b.region) == (kept.name, kept.region))
        return kept

    def _set_resource_policies(self, kind: str, props: dict[str, Any], tables: list[LocalTable]) -> None:
        """Give the gateway each table's ``ResourcePolicy`` (a global table's: per replica)."""
        if kind == "AWS::DynamoDB::Table":
            policies = {tables[0].region: props.get("ResourcePolicy")}
        else:
            policies = {r.get("Region"): r.get("ResourcePolicy") for r in props.get("Replicas", [])}
        for table in tables:
            document = (policies.get(table.region) or {}).get("PolicyDocument")
            # No policy (any more): an update that drops it removes it, as PutResourcePolicy's inverse does.
            self.deployment.gateway.set_resource_policy(table.arn, document or None)

    def _apply_tags(self, kind: str, props: dict[str, Any], tables: list[LocalTable]) -> None:
        """Set each table's tags to its template ``Tags`` (a global table's: per replica), as CloudFormation
        does on create and update; the gateway serves them (DynamoDB Local keeps none)."""
        if kind == "AWS::DynamoDB::Table":
            tags = {tables[0].region: props.get("Tags")}
        else:
            tags = {r.get("Region"): r.get("Tags") for r in props.get("Replicas", [])}
        for table in tables:
            try:
                found = checked_tags(tags.get(table.region) or [])
            except TagError as error:
                raise self._fail(table.logical_id, f"Tags: {error.message}") from None
            self.deployment.gateway.tags.replace((table.account, table.region, table.name), found)

    # --- IAM ------------------------------------------------------------------------------------------

    def _register_role(self, logical_id: str) -> None:
        """Give the gateway an ``AWS::IAM::Role``: its inline policies, trust policy and managed policies."""
        arn = str(self._get_att(logical_id, "Arn"))
        unsupported: str | None = None
        try:
            props = self._props(logical_id)
        except TemplateError as error:
            props, unsupported = {}, f"its properties cannot be resolved locally: {error}"
        policies = [p["PolicyDocument"] for p in props.get("Policies", []) or [] if "PolicyDocument" in p]
        for managed in props.get("ManagedPolicyArns", []) or []:
            match = _AWS_MANAGED_POLICY.match(str(managed))
            if match and match["name"] in KNOWN_MANAGED_POLICIES:
                policies.append(KNOWN_MANAGED_POLICIES[match["name"]])
            else:
                unsupported = (f"role {arn} has managed policy {managed}, which the local runtime cannot evaluate "
                               "(the constructs' roles carry none; it knows only "
                               f"{', '.join(sorted(KNOWN_MANAGED_POLICIES))})")
        if props.get("PermissionsBoundary"):
            unsupported = f"role {arn} has a permissions boundary, which the local runtime does not evaluate"
        self.deployment.gateway.add_role(Role(arn, tuple(policies), props.get("AssumeRolePolicyDocument"),
                                              unsupported, int(props.get("MaxSessionDuration", SESSION_SECONDS))))
        # Policies of other stacks (and of this one, until it attaches them again) stay attached on an update.
        self.deployment._role_policies[arn] = tuple(policies)
        self.deployment._rebuild_role(arn)

    def _attach_policy(self, logical_id: str) -> None:
        """Add an ``AWS::IAM::Policy``/``ManagedPolicy`` document to the roles it names in ``Roles`` (an
        ``AWS::IAM::RolePolicy`` to its ``RoleName``).

        Every role named must be a role the deployment knows: a role of this account outside the assembly
        could not be the one a deployed function runs as, so a policy for it is most likely a typo or a
        stack left out, and skipping it would hide a permission the template means to grant.
        """
        gateway = self.deployment.gateway
        props = self._props(logical_id)
        document = props.get("PolicyDocument")
        if self.resources[logical_id]["Type"] == "AWS::IAM::RolePolicy":
            role_names = [props.get("RoleName")]
        else:
            role_names = props.get("Roles", []) or []
        arns = []
        for role_name in role_names:
            arn = f"arn:{self.partition}:iam::{self.artifact.account}:role/{role_name}"
            if gateway.role(arn) is None:
                raise self._fail(logical_id, f"the policy is attached to role {role_name!r} ({arn}), which is not an "
                                             "AWS::IAM::Role of the deployed stacks; deploy the stack that declares "
                                             "it (or fix the name)")
            arns.append(arn)
        key = (self.artifact.stack_name, logical_id)
        before, _ = self.deployment._attachments.get(key, ((), None))
        self.deployment._attachments[key] = (tuple(arns), document)
        for arn in {*before, *arns}:  # an updated policy may have left a role
            self.deployment._rebuild_role(arn)

    def check_mapping_permissions(self) -> None:
        """Refuse a mapping whose function's role cannot read its stream or send to its on-failure destination,
        with the error Lambda's CreateEventSourceMapping gives."""
        gateway = self.deployment.gateway
        for logical_id, role_arn, source_arn, destination_arn, mapping_uuid in self.mapping_roles:
            role = gateway.role(role_arn) if role_arn else None
            if role is None:
                continue  # the function's deploy refused an unknown role already
            kinesis = parse_kinesis_stream_arn(source_arn) is not None
            for action in _KINESIS_STREAM_ACTIONS if kinesis else _DYNAMODB_STREAM_ACTIONS:
                resource = "*" if action in _NO_RESOURCE_TYPE else source_arn
                if not self._role_allows(logical_id, role, action, resource, source_arn.split(":")[4]):
                    raise self._fail(logical_id, f"Cannot access stream {source_arn}. Please ensure the role can "
                                                 "perform the GetRecords, GetShardIterator, DescribeStream, and "
                                                 "ListStreams Actions on your stream in IAM. (Service: AWSLambda; "
                                                 "Error Code: InvalidParameterValueException) [local runtime: "
                                                 f"role {role.arn} is not allowed {action}]")
            if destination_arn:
                self._check_destination_permissions(logical_id, role, destination_arn, mapping_uuid)

    def _check_destination_permissions(self, logical_id: str, role: Role, destination_arn: str,
                                       mapping_uuid: str) -> None:
        """Lambda's CreateEventSourceMapping refuses a destination the role cannot write to: ``sqs:SendMessage``,
        ``sns:Publish``, or for S3 ``s3:PutObject`` on the objects and ``s3:ListBucket`` on the bucket (AWS's
        documented permissions; the objects are checked under the mapping's ``aws/lambda/<uuid>/`` prefix)."""
        service = destination_arn.split(":")[2]
        if service == "s3":
            bucket = self._destination_bucket(destination_arn)
            checks = [("s3:PutObject", bucket.object_arn(f"aws/lambda/{mapping_uuid}/"), "PutObject", "S3"),
                      ("s3:ListBucket", bucket.arn, "ListBucket", "S3")]
            account = bucket.account
        else:
            checks = [("sns:Publish", destination_arn, "Publish", "SNS") if service == "sns" else
                      ("sqs:SendMessage", destination_arn, "SendMessage", "SQS")]
            account = destination_arn.split(":")[4]
        for action, resource, api, name in checks:
            if not self._role_allows(logical_id, role, action, resource, account):
                # AWS's wording for SQS/SNS; for S3 the same pattern (not verified against AWS).
                raise self._fail(logical_id, f"The provided execution role does not have permissions to call "
                                             f"{api} on {name} (Service: AWSLambda; Error Code: "
                                             f"InvalidParameterValueException) [local runtime: role {role.arn} is "
                                             f"not allowed {action} on {resource}]")

    def _role_allows(self, logical_id: str, role: Role, action: str, resource: str, resource_account: str) -> bool:
        """Whether ``role`` may do ``action`` on ``resource`` when Lambda calls with it (the keys of
        :func:`request_context` in the stack's region; ``*`` resources count as the role's account)."""
        if role.unsupported:
            raise self._fail(logical_id, role.unsupported)
        if resource == "*":
            resource_account = role.account
        try:
            decision = evaluate(Principal(arn=role.arn, account=role.account), action, resource,
                                identity_policies=role.policies, resource_policy=None,
                                resource_account=resource_account, context=request_context(self.artifact.region))
        except PolicyError as error:
            raise self._fail(logical_id, f"role {role.arn}: a policy cannot be evaluated exactly: {error}") from None
        return decision.allowed

    def _create_bridge(self, logical_id: str, table: LocalTable, spec: dict[str, Any]) -> None:
        """The table's Kinesis streaming destination: the bridge reads its DynamoDB stream."""
        stream_arn = str(spec.get("StreamArn", ""))
        parsed = parse_kinesis_stream_arn(stream_arn)
        if parsed is None:
            raise self._fail(logical_id, f"KinesisStreamSpecification.StreamArn {stream_arn!r} is not a Kinesis "
                                         "stream ARN")
        for stream_id, resource in self.resources.items():  # a stream of this stack not created yet
            if resource.get("Type") == _KINESIS_STREAM and self._get_att(stream_id, "Arn") == stream_arn:
                self._create_kinesis_stream(stream_id)
        kinesis = self._existing_kinesis_stream(logical_id, stream_arn, "KinesisStreamSpecification.StreamArn")
        view = self.resources[logical_id].get("Properties", {}).get("StreamSpecification", {}).get("StreamViewType")
        if table.local_stream_arn is None or view != "NEW_AND_OLD_IMAGES":
            raise self._fail(logical_id, "a table with a KinesisStreamSpecification needs a NEW_AND_OLD_IMAGES "
                                         "DynamoDB stream locally: the Kinesis streaming destination is emulated "
                                         "by reading it")
        bridge = KinesisStreamingDestination(
            table.name,
            table.local_stream_arn,
            streams_client=table.client("dynamodbstreams"),
            kinesis_stream_arn=stream_arn,
            kinesis_client=kinesis,
            region=table.region,
            account=table.account,
            precision=str(spec.get("ApproximateCreationDateTimePrecision", "MILLISECOND")),
            # A destination enabled on a table that already exists carries only the changes made after.
            starting_position="LATEST" if (table.region, table.name) in self.preexisting_tables else "TRIM_HORIZON",
        )
        self.stack.bridges.append(bridge)

    # --- Kinesis streams ------------------------------------------------------------------------------

    def _existing_kinesis_stream(self, logical_id: str, stream_arn: str, prop: str) -> Any:
        """A ``kinesis`` client for the stream ``stream_arn`` names, which must exist in the local Kinesis."""
        parsed = parse_kinesis_stream_arn(stream_arn)
        assert parsed is not None
        region, account, name = parsed
        kinesis = self.deployment.kinesis_client(region, account)
        try:
            kinesis.describe_stream_summary(StreamName=name)
        except kinesis.exceptions.ResourceNotFoundException:
            raise self._fail(logical_id, f"{prop} {stream_arn!r}: that Kinesis stream is not in the assembly and "
                                         "does not exist in the local Kinesis (deploy its stack first)") from None
        return kinesis

    def _create_kinesis_stream(self, logical_id: str) -> str:
        if logical_id in self.kinesis_streams:
            return self.kinesis_streams[logical_id]
        kept = self._kept(logical_id, "kinesis_streams")
        if kept is not None:
            self.kinesis_streams[logical_id] = kept
            self.stack.kinesis_streams.append(kept)
            return kept
        props = self._props(logical_id)
        on_demand = props.get("StreamModeDetails", {}).get("StreamMode") == "ON_DEMAND"
        name = str(self._ref(logical_id))
        arn = self.deployment.kinesis_plane().create_stream(name, self.artifact.region, self.artifact.account,
                                    shard_count=None if on_demand else int(props.get("ShardCount", 1)))
        self.kinesis_streams[logical_id] = arn
        self.stack.kinesis_streams.append(arn)
        return arn

    def _ensure_table(self, logical_id: str, region: str, request: dict[str, Any],
                      ttl: dict[str, Any] | None) -> LocalTable:
        client = self.deployment.ddb.client(region=region, account=self.artifact.account)
        name = request["TableName"]
        try:
            existing = client.describe_table(TableName=name)["Table"]
        except client.exceptions.ResourceNotFoundException:
            existing = None
        if existing is None:
            description = client.create_table(**request)["TableDescription"]
            if ttl and ttl.get("Enabled"):
                client.update_time_to_live(TableName=name, TimeToLiveSpecification={
                    "AttributeName": ttl["AttributeName"], "Enabled": True})
        elif not self.adopt_existing:
            raise self._fail(logical_id, f"{name} already exists in {self.artifact.account}/{region}: an update "
                                         "creates this table, and CloudFormation fails to create a named table "
                                         "that exists (e.g. one an earlier removal retained); delete or rename it "
                                         "first, or add it back under another name")
        else:
            self._check_same_schema(logical_id, region, existing, request)
            self.preexisting_tables.add((region, name))
            description = existing
        return LocalTable(
            name=name,
            region=region,
            account=self.artifact.account,
            stack_name=self.artifact.stack_name,
            logical_id=logical_id,
            key_schema=description["KeySchema"],
            local_stream_arn=description.get("LatestStreamArn"),
            _ddb=self.deployment.ddb,
        )

    def _check_same_schema(self, logical_id: str, region: str, existing: dict[str, Any],
                           request: dict[str, Any]) -> None:
        def key_types(schema: list[dict[str, str]], definitions: list[dict[str, str]]) -> list[tuple[str, str, str]]:
            types = {d["AttributeName"]: d["AttributeType"] for d in definitions}
            return [(k["AttributeName"], k["KeyType"], types.get(k["AttributeName"], "?")) for k in schema]

        have = key_types(existing["KeySchema"], existing["AttributeDefinitions"])
        want = key_types(request["KeySchema"], request["AttributeDefinitions"])
        have_stream = existing.get("StreamSpecification", {}).get("StreamViewType") if existing.get(
            "StreamSpecification", {}).get("StreamEnabled") else None
        want_stream = request.get("StreamSpecification", {}).get("StreamViewType")
        if have != want or have_stream != want_stream:
            raise self._fail(
                logical_id,
                f"table {request['TableName']!r} already exists in {self.artifact.account}/{region} with key "
                f"{have} and stream {have_stream}, but the template wants key {want} and stream {want_stream}; "
                "delete the table or use a fresh DynamoDB Local",
            )

    def _imported_table(self, logical_id: str, stream_arn: str) -> LocalTable:
        """A table named by a literal stream ARN (created outside the app): it must already exist."""
        parts = stream_arn.split(":")
        if len(parts) < 6 or parts[2] != "dynamodb" or "/stream/" not in parts[5]:
            raise self._fail(logical_id, f"EventSourceArn {stream_arn!r} is not a DynamoDB or Kinesis stream ARN; "
                                         "only DynamoDB stream and Kinesis mappings are emulated")
        region, account = parts[3], parts[4]
        name = parts[5].split("/")[1]
        for table in self.deployment.tables + list(self.tables.values()):
            if (table.name, table.region, table.account) == (name, region, account):
                return table
        client = self.deployment.ddb.client(region=region, account=account)
        try:
            description = client.describe_table(TableName=name)["Table"]
        except client.exceptions.ResourceNotFoundException:
            raise self._fail(
                logical_id,
                f"the mapping reads the stream of table {name!r} in {account}/{region}, which is not in the "
                "assembly and does not exist in DynamoDB Local; create the imported table (with a stream) "
                "before deploying",
            ) from None
        if not description.get("LatestStreamArn"):
            raise self._fail(logical_id, f"imported table {name!r} in {account}/{region} has no stream; "
                                         "enable NEW_AND_OLD_IMAGES on it before deploying")
        table = LocalTable(name, region, account, None, None, description["KeySchema"],
                           description["LatestStreamArn"], self.deployment.ddb)
        self.deployment.imported_tables.append(table)
        return table

    # --- queues ---------------------------------------------------------------------------------------

    def _create_queue(self, logical_id: str) -> LocalQueue:
        kept = self._kept(logical_id, "queues")
        if kept is not None:
            self.queues[logical_id] = kept
            self.stack.queues.append(kept)
            return kept
        kind = self.resources[logical_id]["Type"]
        if kind == "AWS::SQS::Queue":
            name = self._name(logical_id, "QueueName", 80)
            arn = self._arn("sqs", name)
        else:
            name = self._name(logical_id, "TopicName", 256)
            arn = self._arn("sns", name)
        queue = LocalQueue(name, arn=arn)
        self.queues[logical_id] = queue
        self.stack.queues.append(queue)
        return queue

    def _destination(self, arn: str) -> LocalQueue | LocalBucket:
        if arn.split(":")[2:3] == ["s3"]:
            return self._destination_bucket(arn)
        for queue in self.deployment.queues + self.stack.queues:
            if queue.arn == arn:
                return queue
        # A queue outside the app: still give the test something to read, named after it.
        queue = LocalQueue(arn.rsplit(":", 1)[-1], arn=arn)
        self.stack.queues.append(queue)
        return queue

    # --- buckets --------------------------------------------------------------------------------------

    def _bucket_name(self, logical_id: str) -> str:
        """``BucketName``, else a name in CloudFormation's style (lower case, at most 63 characters)."""
        if self.resources[logical_id].get("Properties", {}).get("BucketName") is not None:
            return self._name(logical_id, "BucketName", 63)
        return _generated_name(self.artifact.stack_name, logical_id, 63).lower()

    def _bucket_attribute(self, logical_id: str, attribute: str) -> str:
        name, region = self._bucket_name(logical_id), self.artifact.region
        suffix = partition_of(region)[1]
        values = {
            "Arn": f"arn:{self.partition}:s3:::{name}",
            "DomainName": f"{name}.s3.{suffix}",
            "RegionalDomainName": f"{name}.s3.{region}.{suffix}",
            "DualStackDomainName": f"{name}.s3.dualstack.{region}.{suffix}",
            "WebsiteURL": f"http://{name}.s3-website-{region}.{suffix}",
        }
        if attribute not in values:
            raise self._fail(logical_id, f"Fn::GetAtt {attribute} of an S3 bucket is not emulated locally")
        return values[attribute]

    def _create_bucket(self, logical_id: str) -> LocalBucket:
        kept = self._kept(logical_id, "buckets")
        if kept is not None and kept.name == self._bucket_name(logical_id):
            self.buckets[logical_id] = kept
            self.stack.buckets.append(kept)
            return kept
        bucket = self._new_bucket(self._bucket_name(logical_id), self.artifact.account)
        self.buckets[logical_id] = bucket
        return bucket

    def _new_bucket(self, name: str, account: str) -> LocalBucket:
        bucket = LocalBucket(name, self.deployment.bucket_root, region=self.artifact.region, account=account,
                             partition=self.partition)
        if self.deployment.gateway.enforce_iam:
            bucket.authorizer = _bucket_authorizer(self.deployment.gateway, bucket)
        self.stack.buckets.append(bucket)
        return bucket

    def _attach_bucket_policy(self, logical_id: str) -> None:
        """Record an ``AWS::S3::BucketPolicy`` on its bucket; writes to the bucket are evaluated against it."""
        props = self._props(logical_id)
        name = str(props.get("Bucket"))
        found = [b for b in self.deployment.buckets + self.stack.buckets if b.name == name]
        if not found:
            raise self._fail(logical_id, f"the policy is for bucket {name!r}, which is not an AWS::S3::Bucket of the "
                                         "deployed stacks; deploy the stack that declares it (or fix the name)")
        found[0].policy = props.get("PolicyDocument")
        self.bucket_policies[logical_id] = found[0]

    def _destination_bucket(self, arn: str) -> LocalBucket:
        for bucket in self.deployment.buckets + self.stack.buckets:
            if bucket.arn == arn:
                return bucket
        # A bucket outside the app (S3 ARNs carry no account: assume the stack's): still give the test a folder.
        return self._new_bucket(arn.split(":", 5)[5], self.artifact.account)

    # --- SSM parameters -------------------------------------------------------------------------------

    def _put_parameter(self, logical_id: str) -> None:
        """An ``AWS::SSM::Parameter``: its value (intrinsics resolved) stored in the stack's account and region."""
        props = self._props(logical_id)
        for unsupported in ("Policies", "AllowedPattern"):
            if props.get(unsupported):
                raise self._fail(logical_id, f"{unsupported} of an SSM parameter is not emulated locally")
        if props.get("Tier", "Standard") != "Standard":
            raise self._fail(logical_id, f"Tier {props['Tier']!r}: only standard parameters are emulated locally")
        name, value = str(self._ref(logical_id)), str(props.get("Value", ""))
        self.parameters[logical_id] = (name, value)
        kept = self._kept(logical_id, "parameters")
        if kept == (name, value):
            return  # CloudFormation does not update a resource whose properties did not change
        try:
            # Only the same resource (kept, same name) is overwritten: a create over a name that exists
            # (another stack's, or a renamed one's) fails, as CloudFormation fails it.
            self.deployment.parameters.put(name, value, region=self.artifact.region, account=self.artifact.account,
                                           type=str(props.get("Type", "String")),
                                           overwrite=kept is not None and kept[0] == name)
        except ParameterError as error:
            if error.code == "ParameterAlreadyExists":
                raise self._fail(logical_id, f"{name} already exists in {self.artifact.account}/"
                                             f"{self.artifact.region} (SSM parameter names are unique per account "
                                             "and region; another stack or resource created it)") from None
            raise self._fail(logical_id, f"{error.code}: {error.message}") from None

    # --- Secrets Manager --------------------------------------------------------------------------------

    def _create_secret(self, logical_id: str) -> None:
        """An ``AWS::SecretsManager::Secret``: its ``SecretString``, or a value ``GenerateSecretString`` makes.
        A secret that exists already keeps its value (CloudFormation regenerates none on an update)."""
        props = self._props(logical_id)
        for unsupported in ("KmsKeyId", "ReplicaRegions"):
            if props.get(unsupported):
                raise self._fail(logical_id, f"{unsupported} of a secret is not emulated locally")
        name = self._name(logical_id, "Name", 512)
        where = {"region": self.artifact.region, "account": self.artifact.account}
        if self.deployment.secrets.get(name, **where) is not None:
            if not self._same_secret(logical_id, name):
                # A retained secret (its resource removed, or the stack destroyed) still holds the name: AWS's
                # CreateSecret refuses it, and the stack rolls back.
                raise self._fail(logical_id, f"ResourceExistsException: the secret {name!r} already exists in "
                                             "the account (retained by an earlier deploy, or made outside the "
                                             "stack); CreateSecret cannot create it again: delete it (force, "
                                             "without recovery), or reference it instead of creating it")
            if "SecretString" not in props:
                return
        try:
            value = str(props["SecretString"]) if "SecretString" in props else generate_value(
                props.get("GenerateSecretString") or {})
        except SecretError as error:
            raise self._fail(logical_id, f"{error.code}: {error.message}") from None
        self.deployment.secrets.put(name, value, **where)

    def _same_secret(self, logical_id: str, name: str) -> bool:
        """Whether the previous deploy of this stack has ``logical_id`` as a secret of ``name``: an update of
        that resource, not a new one."""
        before = None if self.previous is None else self.previous.resources.get(logical_id)
        return bool(before and before.get("Type") == "AWS::SecretsManager::Secret"
                    and self.previous is not None and self.previous._name(logical_id, "Name", 512) == name)

    def _secret_arn(self, logical_id: str) -> str:
        """A secret's ``Ref``: its full ARN (created first in the stack, so it exists when referenced)."""
        name = self._name(logical_id, "Name", 512)
        found = self.deployment.secrets.get(name, region=self.artifact.region, account=self.artifact.account)
        if found is None:
            raise self._fail(logical_id, "Ref to a secret before it was created")
        return found.arn

    # --- functions ------------------------------------------------------------------------------------

    def _create_function(self, logical_id: str) -> LocalFunction:
        props = self._props(logical_id)
        name = str(self._ref(logical_id))
        configuration = self._function_configuration(logical_id, props, name)
        kept = self._kept(logical_id, "functions")
        if kept is not None and kept.name == name:
            if kept.configuration() != configuration:
                kept.update_configuration(configuration)  # for the invocations that start from now on
            function = kept
        else:
            sink = self.log_sink
            function = LocalFunction(
                name,
                configuration.code_dir,
                configuration.handler,
                configuration.environment,
                region=self.artifact.region,
                account=self.artifact.account,
                credentials_env=configuration.credentials_env,
                endpoint_env=self.deployment.gateway.endpoint_env(),
                timeout_s=configuration.timeout_s,
                memory_mb=configuration.memory_mb,
                arn=self._get_att(logical_id, "Arn"),
                log_sink=(lambda line, _name=name: sink(_name, line)) if sink else None,
            )
        reserved = props.get("ReservedConcurrentExecutions")
        # PutFunctionConcurrency: the cap applies to the invocations that start from now on.
        function.reserved_concurrency = None if reserved is None else int(reserved)
        if isinstance(props.get("Role"), str):
            self.deployment._function_roles[function.arn] = props["Role"]
        self.functions[logical_id] = function
        self.stack.functions.append(function)
        return function

    def _function_configuration(self, logical_id: str, props: dict[str, Any], name: str) -> FunctionConfiguration:
        """The function's configuration from the template (its code unpacked, its role's credentials)."""
        runtime = str(props.get("Runtime", ""))
        if not runtime.startswith("python"):
            raise self._fail(logical_id, f"runtime {runtime or '(container image)'!r} cannot run locally; "
                                         "only Python functions with a code asset are emulated")
        environment = props.get("Environment", {}).get("Variables", {})
        bad = {k: v for k, v in environment.items() if not isinstance(v, (str, int, float, bool))}
        if bad:
            raise self._fail(logical_id, f"environment variables must resolve to strings, got {bad!r}")
        credentials = self._function_credentials(logical_id, props.get("Role"), name)
        return FunctionConfiguration(
            code_dir=self._function_code(logical_id, props.get("Code", {})).resolve(),
            handler=props["Handler"],
            environment={k: v if isinstance(v, str) else str(v).lower() if isinstance(v, bool) else str(v)
                         for k, v in environment.items()},
            timeout_s=float(props.get("Timeout", 3)),
            memory_mb=int(props.get("MemorySize", 128)),
            credentials_env=credentials.as_env(),
        )

    def _function_code(self, logical_id: str, code: dict[str, Any]) -> Path:
        """The folder holding the function's code: inline code written out, a zip asset unpacked. Unchanged code
        of an updated function keeps its folder (so the update does not count as a code change)."""
        if "ZipFile" in code:
            identity = "zip:" + hashlib.sha256(code["ZipFile"].encode()).hexdigest()
        else:
            asset = self.artifact.asset_for(logical_id, self.resources[logical_id], code.get("S3Key"))
            identity = "asset:" + asset.path.name  # the asset hash names its folder
        self.code_ids[logical_id] = identity
        kept = self._kept(logical_id, "functions")
        if kept is not None and self.previous is not None and self.previous.code_ids.get(logical_id) == identity:
            return kept.configuration().code_dir
        if "ZipFile" in code:
            folder = self._temp_dir()
            (folder / "index.py").write_text(code["ZipFile"])
            return folder
        if asset.path.is_file() and asset.path.suffix == ".zip":
            folder = self._temp_dir()
            with zipfile.ZipFile(asset.path) as archive:
                archive.extractall(folder)
            return folder
        if not asset.path.is_dir():
            raise self._fail(logical_id, f"code asset {str(asset.path)!r} is neither a folder nor a .zip")
        return asset.path

    def _function_credentials(self, logical_id: str, role_arn: Any, function_name: str) -> LocalCredentials:
        """What Lambda gives the function: a session of its execution role (named after the function)."""
        gateway = self.deployment.gateway
        role = gateway.role(role_arn) if isinstance(role_arn, str) else None
        if not gateway.enforce_iam:
            return gateway.credentials_for_role(role_arn, function_name) if role else \
                credentials_for_account(self.artifact.account)
        if role is None:
            raise self._fail(logical_id, f"execution role {role_arn!r} is not an AWS::IAM::Role of the assembly, so "
                                         "its policies cannot be evaluated locally (deploy(..., enforce_iam=False) "
                                         "runs without IAM)")
        if role.unsupported:
            raise self._fail(logical_id, f"execution role: {role.unsupported}")
        self._check_lambda_may_assume(logical_id, role)
        return gateway.credentials_for_role(role.arn, function_name)

    def _check_lambda_may_assume(self, logical_id: str, role: Role) -> None:
        """Lambda's CreateFunction refuses an execution role whose trust policy does not let
        ``lambda.amazonaws.com`` assume it."""
        try:
            trusted = service_may_assume(role.trust_policy, "lambda.amazonaws.com")
        except PolicyError as error:
            raise self._fail(logical_id, f"execution role {role.arn}: its trust policy cannot be evaluated exactly: "
                                         f"{error}") from None
        if not trusted:
            raise self._fail(logical_id, "The role defined for the function cannot be assumed by Lambda. (Service: "
                                         "AWSLambda; Error Code: InvalidParameterValueException) [local runtime: "
                                         f"the trust policy of {role.arn} allows no sts:AssumeRole to "
                                         "lambda.amazonaws.com]")

    def _temp_dir(self) -> Path:
        tmp = tempfile.TemporaryDirectory(prefix="cdk-replication-code-")
        self.deployment._temp_dirs.append(tmp)
        return Path(tmp.name)

    # --- mappings -------------------------------------------------------------------------------------

    def _create_mapping(self, logical_id: str) -> EventSourceMapping:
        props = self._props(logical_id)
        for unsupported in ("FilterCriteria", "TumblingWindowInSeconds"):
            if unsupported in props:
                raise self._fail(logical_id, f"{unsupported} is not emulated by the local event source mapping")
        function_ref = str(props["FunctionName"])
        candidates = self.deployment.functions + self.stack.functions
        function = next((f for f in candidates if function_ref in (f.name, f.arn)
                         or function_ref.startswith(f.arn + ":")), None)
        if function is None:
            raise self._fail(logical_id, f"FunctionName {function_ref!r} is not a function of the assembly")
        stream_arn = str(props["EventSourceArn"])
        settings = MappingSettings(
            batch_size=int(props.get("BatchSize", 100)),
            maximum_batching_window_s=float(props.get("MaximumBatchingWindowInSeconds", 0)),
            starting_position=str(props.get("StartingPosition", "TRIM_HORIZON")),
            bisect_batch_on_function_error=bool(props.get("BisectBatchOnFunctionError", False)),
            maximum_retry_attempts=int(props.get("MaximumRetryAttempts", -1)),
            maximum_record_age_s=int(props.get("MaximumRecordAgeInSeconds", -1)),
            report_batch_item_failures="ReportBatchItemFailures" in props.get("FunctionResponseTypes", []),
            parallelization_factor=int(props.get("ParallelizationFactor", 1)),
            enabled=bool(props.get("Enabled", True)),
        )
        if self.settings_override is not None:
            settings = self.settings_override(settings)
        destination_arn = props.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination")
        destination = self._destination(destination_arn) if destination_arn else None
        mapping_uuid = _mapping_uuid(self.artifact.stack_name, logical_id)
        role_arn = self.deployment._function_roles.get(function.arn)
        self.mapping_roles.append((logical_id, role_arn, stream_arn, destination_arn, mapping_uuid))
        kept = self._kept(logical_id, "mappings")
        self.mapping_props[logical_id] = props
        if kept is not None and self.previous is not None and self.previous.mapping_props[logical_id] == props:
            mapping = kept  # unchanged: CloudFormation leaves it (and what was changed through the API) alone
        elif kept is not None and self.previous is not None and not _replaces_mapping(
                self.previous.mapping_props[logical_id], props):
            mapping = _update_mapping(kept, function, settings, destination, role_arn)
        else:  # new, or a property CloudFormation replaces the mapping for (EventSourceArn, StartingPosition)
            mapping = self._new_mapping(logical_id, function, stream_arn, settings, destination, mapping_uuid)
        self.mappings[logical_id], self.mapping_sources[logical_id] = mapping, stream_arn
        self.stack.mappings.append(mapping)
        return mapping

    def _new_mapping(self, logical_id: str, function: LocalFunction, stream_arn: str, settings: MappingSettings,
                     destination: LocalQueue | LocalBucket | None, mapping_uuid: str) -> EventSourceMapping:
        role_arn = self.deployment._function_roles.get(function.arn)
        mapping: EventSourceMapping
        if parse_kinesis_stream_arn(stream_arn) is not None:
            kinesis = self._existing_kinesis_stream(logical_id, stream_arn, "EventSourceArn")
            mapping = KinesisEventSourceMapping(
                function, stream_arn, kinesis_client=kinesis,
                invoke_identity_arn=self.deployment._function_roles.get(function.arn),
                settings=settings, destination=destination, uuid=mapping_uuid)
            mapping.role_arn = role_arn
            return mapping
        table = next((t for t in self.tables.values() if t.stream_arn == stream_arn), None) or \
            self._imported_table(logical_id, stream_arn)
        assert table.local_stream_arn is not None
        mapping = StreamEventSourceMapping(
            function,
            table.local_stream_arn,
            streams_client=table.client("dynamodbstreams"),
            region=table.region,
            account=table.account,
            settings=settings,
            destination=destination,
            uuid=mapping_uuid,
        )
        mapping.role_arn = role_arn
        return mapping
