"""The local runtime's front door: one loopback endpoint for DynamoDB, DynamoDB Streams and STS that refuses
what AWS refuses.

Deployed functions talk to the gateway, never to DynamoDB Local directly. Every request is signed (SigV4) with
an access key the gateway handed out, and the key says who is calling: a function's execution role
(``LOCALROLE…``), a session of an assumed role (``LOCALSESS…``), an operator registered with
:meth:`Gateway.register_principal` (``LOCALUSER…``) or an account's root (``LOCAL<account>``, the key test
clients use). For each request the gateway

* finds the tables it names: a plain name is a table of the caller's account in the request's region (the
  region of the credential scope); a table ARN names its own account, and its region must be the request's;
* evaluates IAM (:mod:`cdk_replication.local.iam`) for the action (``dynamodb:<X-Amz-Target operation>``,
  ``sts:AssumeRole``) on every resource (table, index for ``Query``/``Scan`` with ``IndexName``, stream):
  the caller's identity policies from the template, and for a resource of another account also that
  resource's policy (a table's ``ResourcePolicy``, a role's trust policy);
* forwards the request to DynamoDB Local with the access key of the account that owns the tables
  (DynamoDB Local keeps one database per access key and region and does not check signatures), ARNs
  rewritten to plain names, and rewrites the answer back: the names the caller used as keys of
  ``UnprocessedItems``/``Responses``/..., and ARNs with the real region and account instead of DynamoDB
  Local's ``ddblocal:000000000000``.

An unknown access key is ``UnrecognizedClientException``; a refusal is ``AccessDeniedException`` (HTTP 400,
DynamoDB) or ``AccessDenied`` (HTTP 403, STS) with AWS's message. One request naming tables of two accounts
is refused with a local-runtime error (AWS would serve it; DynamoDB Local cannot, one database per request),
and so is an operation whose resources the gateway does not extract (only :data:`_TABLE_OPERATIONS` and the
DynamoDB Streams calls are served). The condition keys of each call are :func:`request_context`'s.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import http.client
import json
import re
import threading
import uuid
import zlib
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import parse_qs
from xml.sax.saxutils import escape

from cdk_replication.local.dynamodb_local import DynamoDBLocal, LocalCredentials, credentials_for_account
from cdk_replication.local.iam import UNKNOWN, Decision, PolicyError, Principal, denied_message, evaluate
from cdk_replication.local.intrinsics import partition_of

#: Lifetime of the credentials AssumeRole hands out, in seconds (STS's default).
SESSION_SECONDS = 3600
#: STS's bounds on ``DurationSeconds``: at least 15 minutes; at most 1 hour when a role session assumes a role.
MIN_SESSION_SECONDS, CHAINED_SESSION_SECONDS = 900, 3600
#: Refusals whose messages ``GatewayStats.denials`` keeps (the newest); ``denied`` counts them all.
DENIALS_KEPT = 1000
#: Decisions remembered per gateway (cleared whenever a policy changes, and when full).
_DECISIONS_KEPT = 8192
#: Shard iterators remembered for GetRecords (which names no stream): the newest ones are kept.
_ITERATORS_KEPT = 20000

_CREDENTIAL = re.compile(r"Credential=(?P<key>[^/,\s]+)/\d{8}/(?P<region>[^/]+)/(?P<service>[^/]+)/aws4_request")
_ROOT_KEY = re.compile(r"^LOCAL(?P<account>\d{12})$")
_ACCOUNT = re.compile(r"^\d{12}$")
_SESSION_NAME = re.compile(r"^[\w+=,.@-]*$", re.ASCII)
_EXTERNAL_ID = re.compile(r"^[\w+=,.@:/-]*$", re.ASCII)
_TABLE_ARN = re.compile(
    r"^arn:(?P<partition>[^:]+):dynamodb:(?P<region>[^:]*):(?P<account>[^:]*):table/(?P<name>[^/]+)(?P<rest>/.*)?$")
_ROLE_ARN = re.compile(r"^arn:(?P<partition>[^:]+):iam::(?P<account>\d{12}):role/(?:.*/)?(?P<name>[^/]+)$")
_LOCAL_ARN_PREFIX = b"arn:aws:dynamodb:ddblocal:000000000000:"
_DDB_PREFIX = "DynamoDB_20120810."
_STREAMS_PREFIX = "DynamoDBStreams_20120810."
_STS_NS = "https://sts.amazonaws.com/doc/2011-06-15/"
_ACCESS_DENIED = "com.amazon.coral.service#AccessDeniedException"
#: The AssumeRole parameters the gateway models; any other (Tags, SerialNumber, ...) is refused.
_ASSUME_ROLE_FIELDS = frozenset({"Action", "Version", "RoleArn", "RoleSessionName", "DurationSeconds", "ExternalId",
                                 "SourceIdentity"})

#: Operations whose IAM action is not ``dynamodb:<operation>`` for each table they name.
_TRANSACT_ACTIONS = {"Put": "dynamodb:PutItem", "Update": "dynamodb:UpdateItem", "Delete": "dynamodb:DeleteItem",
                     "ConditionCheck": "dynamodb:ConditionCheckItem", "Get": "dynamodb:GetItem"}
#: PartiQL names its tables inside a statement the gateway does not parse: refused for evaluated callers.
_PARTIQL = {"ExecuteStatement", "BatchExecuteStatement", "ExecuteTransaction"}
#: The DynamoDB operations whose every resource the gateway finds (``TableName``, ``RequestItems``,
#: ``TransactItems``, ``ResourceArn``; none for the ``*`` ones). Any other operation is refused: its
#: resources (a backup ARN, an export's S3 bucket, another region's replica, ...) would go unchecked.
_TABLE_OPERATIONS = frozenset({
    "BatchGetItem", "BatchWriteItem", "CreateTable", "DeleteItem", "DeleteTable", "DescribeContinuousBackups",
    "DescribeEndpoints", "DescribeKinesisStreamingDestination", "DescribeLimits", "DescribeTable",
    "DescribeTimeToLive", "GetItem", "ListTables", "ListTagsOfResource", "PutItem", "Query", "Scan", "TagResource",
    "TransactGetItems", "TransactWriteItems", "UntagResource", "UpdateContinuousBackups", "UpdateItem",
    "UpdateTable", "UpdateTimeToLive",
})
#: The DynamoDB Streams operations (all four).
_STREAMS_OPERATIONS = frozenset({"DescribeStream", "GetRecords", "GetShardIterator", "ListStreams"})
#: Keys of a response that are maps by table name (renamed back to what the caller used).
_BY_TABLE_KEYS = ("UnprocessedItems", "Responses", "UnprocessedKeys", "ItemCollectionMetrics")

#: The AWS managed policies the runtime knows by heart, for roles that carry them (``ManagedPolicyArns``).
#: Any other managed policy cannot be evaluated and is refused where a role using it acts.
KNOWN_MANAGED_POLICIES: dict[str, dict[str, Any]] = {
    "service-role/AWSLambdaBasicExecutionRole": {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
         "Resource": "*"}]},
    "service-role/AWSLambdaDynamoDBExecutionRole": {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["dynamodb:DescribeStream", "dynamodb:GetRecords",
                                       "dynamodb:GetShardIterator", "dynamodb:ListStreams", "logs:CreateLogGroup",
                                       "logs:CreateLogStream", "logs:PutLogEvents"], "Resource": "*"}]},
    "service-role/AWSLambdaKinesisExecutionRole": {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["kinesis:DescribeStream", "kinesis:DescribeStreamSummary",
                                       "kinesis:GetRecords", "kinesis:GetShardIterator", "kinesis:ListShards",
                                       "kinesis:ListStreams", "kinesis:SubscribeToShard", "logs:CreateLogGroup",
                                       "logs:CreateLogStream", "logs:PutLogEvents"], "Resource": "*"}]},
}

class JsonService(Protocol):
    """Another AWS service on a JSON protocol the gateway serves (SSM's parameters, ...), added with
    :meth:`Gateway.add_service`: the gateway checks the signature's scope and the caller, the service answers."""

    #: The ``X-Amz-Target`` prefix of its operations, e.g. ``AmazonSSM.``.
    target_prefix: str
    #: Its name in a credential scope and in ``AWS_ENDPOINT_URL_<NAME>``, e.g. ``ssm``.
    signing_name: str

    def serve(self, operation: str, request: Mapping[str, Any], *, region: str, account: str,
              authorize: Callable[[str, str], None]) -> dict[str, Any]:
        """The answer to one call by a caller of ``account`` in ``region``; ``authorize(action, resource)``
        raises the gateway's AccessDenied unless the caller may. An error is an exception with ``code`` and
        ``message`` attributes."""
        ...


class GatewayError(Exception):
    """A request the gateway answers with an AWS error instead of forwarding it.

    Attributes:
        code: the AWS error code (``AccessDeniedException``, ``ValidationException``, ...).
        message: the error message.
        status: the HTTP status. Default: 400 (DynamoDB answers its errors with 400).
        type_prefix: the ``__type`` namespace in the JSON answer.
    """

    def __init__(self, code: str, message: str, status: int = 400,
                 type_prefix: str = "com.amazonaws.dynamodb.v20120810") -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.type_prefix = type_prefix


@dataclass(frozen=True)
class Role:
    """An IAM role of the deployed assembly, as the gateway evaluates it.

    Attributes:
        arn: the role ARN.
        policies: its identity policy documents (inline ``Policies``, attached ``AWS::IAM::Policy``, the known
            managed policies), intrinsics resolved.
        trust_policy: its ``AssumeRolePolicyDocument``.
        unsupported: why the runtime cannot evaluate this role (e.g. a managed policy it does not know), or
            ``None``. A role with a reason acts nowhere: using it is refused with that reason.
        max_session_duration: the role's ``MaxSessionDuration`` in seconds, the longest ``DurationSeconds``
            AssumeRole accepts for it (default 3600, IAM's default).
    """

    arn: str
    policies: tuple[Mapping[str, Any], ...] = ()
    trust_policy: Mapping[str, Any] | None = None
    unsupported: str | None = None
    max_session_duration: int = SESSION_SECONDS

    @property
    def account(self) -> str:
        match = _ROLE_ARN.match(self.arn)
        assert match is not None, self.arn
        return match["account"]

    @property
    def name(self) -> str:
        match = _ROLE_ARN.match(self.arn)
        assert match is not None, self.arn
        return match["name"]


@dataclass(frozen=True)
class Identity:
    """Who an access key belongs to: the principal and the identity policies that apply to its calls.

    A session of a role (``role_arn`` set) takes the role's policies as they are when it calls, so a policy
    attached by a later stack of the same deployment applies to it too.
    """

    principal: Principal
    policies: tuple[Mapping[str, Any], ...] = ()
    unsupported: str | None = None
    role_arn: str | None = None

    @property
    def caller_arn(self) -> str:
        """The ARN AWS names in messages and GetCallerIdentity (the session's for an assumed role)."""
        return self.principal.session_arn or self.principal.arn


@dataclass
class _Target:
    """A table (or index, or stream) a request names, resolved to its account and real ARN."""

    as_named: str
    name: str
    account: str
    arn: str


@dataclass
class GatewayStats:
    """Counters of one gateway (updated under the gateway's lock: requests are served by many threads)."""

    requests: int = 0
    forwarded: int = 0
    #: Every refusal with AccessDenied, counted.
    denied: int = 0
    #: AWS's message of the newest :data:`DENIALS_KEPT` refusals, oldest first (for tests and for reading after
    #: a failed run; a long run refusing the same call again and again does not grow it without bound).
    denials: list[str] = field(default_factory=list)

    def _deny(self, message: str) -> None:
        self.denied += 1
        self.denials.append(message)
        if len(self.denials) > DENIALS_KEPT:
            del self.denials[: len(self.denials) - DENIALS_KEPT]


class Gateway:
    """DynamoDB, DynamoDB Streams and STS on one free loopback port, with accounts and IAM enforced.

    Args:
        ddb: the started DynamoDB Local the requests are served from.
        enforce_iam: evaluate IAM policies (default ``True``). With ``False`` the account boundaries still
            hold (a request is served from the signer's account, another account's table only by ARN) but
            every action is allowed.
    """

    def __init__(self, ddb: DynamoDBLocal, *, enforce_iam: bool = True) -> None:
        self.ddb = ddb
        self.enforce_iam = enforce_iam
        self.stats = GatewayStats()
        #: The STS query requests received (form fields), oldest first.
        self.calls: list[dict[str, str]] = []
        self._identities: dict[str, Identity] = {}
        self._roles: dict[str, Role] = {}
        self._resource_policies: dict[str, Mapping[str, Any]] = {}
        self._iterators: OrderedDict[str, tuple[str, str, str]] = OrderedDict()  # iterator -> (region, acct, arn)
        #: Memoised decisions of _authorize; _generation changes whenever a policy does, so a decision computed
        #: with policies that changed meanwhile is not stored.
        self._decisions: dict[tuple[Any, ...], tuple[Decision | None, str | None]] = {}
        self._generation = 0
        self._lock = threading.Lock()
        self._upstream = threading.local()
        self._services: dict[str, JsonService] = {}  # by X-Amz-Target prefix
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive: botocore reuses its connections
            disable_nagle_algorithm = True  # headers and body go out in two writes; no delayed-ACK stalls

            def do_POST(self) -> None:  # noqa: N802 - name fixed by BaseHTTPRequestHandler
                length = int(self.headers.get("content-length", 0))
                body = self.rfile.read(length)
                status, headers, answer = gateway.handle(dict(self.headers.items()), body)
                self.send_response(status)
                for name, value in headers:
                    self.send_header(name, value)
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                pass  # no access log on the terminal

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 64

        self._server = Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="local-gateway", daemon=True)
        self._thread.start()

    # --- configuration --------------------------------------------------------------------------------

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def endpoint_env(self) -> dict[str, str]:
        """``AWS_ENDPOINT_URL_DYNAMODB``/``..._DYNAMODBSTREAMS``/``..._STS``, all pointing at the gateway."""
        return {"AWS_ENDPOINT_URL_DYNAMODB": self.endpoint_url, "AWS_ENDPOINT_URL_DYNAMODBSTREAMS": self.endpoint_url,
                "AWS_ENDPOINT_URL_STS": self.endpoint_url,
                **{getattr(s, "endpoint_env_name", f"AWS_ENDPOINT_URL_{s.signing_name.upper()}"): self.endpoint_url
                   for s in self._services.values()}}

    def add_service(self, service: JsonService) -> None:
        """Serve ``service`` too (its calls evaluated by this gateway's IAM); ``endpoint_env()`` then names it."""
        self._services[service.target_prefix] = service

    def add_role(self, role: Role) -> None:
        """Make ``role`` known: it can be a function's role and the target of ``sts:AssumeRole``."""
        with self._lock:
            self._roles[role.arn] = role
            self._policies_changed()

    def remove_role(self, arn: str) -> None:
        """Forget a deleted role: its sessions are refused from their next call, as on AWS."""
        with self._lock:
            self._roles.pop(arn, None)
            self._policies_changed()

    def role(self, arn: str) -> Role | None:
        """The known role with this ARN, or ``None``."""
        return self._roles.get(arn)

    def set_resource_policy(self, arn: str, document: Mapping[str, Any] | None) -> None:
        """Attach a resource policy to a table (by its ARN, as AWS writes it); ``None`` removes it."""
        with self._lock:
            if document is None:
                self._resource_policies.pop(arn, None)
            else:
                self._resource_policies[arn] = document
            self._policies_changed()

    def _policies_changed(self) -> None:
        """Forget memoised decisions (call with the lock held)."""
        self._generation += 1
        self._decisions.clear()

    def resource_policy(self, arn: str) -> Mapping[str, Any] | None:
        """The resource policy of a table ARN, or ``None``."""
        return self._resource_policies.get(arn)

    def credentials_for_role(self, role_arn: str, session_name: str) -> LocalCredentials:
        """Credentials of a session of ``role_arn`` (what Lambda gives a function: its role, session named
        after the function). The role must be known (:meth:`add_role`)."""
        role = self._roles.get(role_arn)
        if role is None:
            raise KeyError(f"role {role_arn!r} is not in the local deployment; its policies cannot be evaluated")
        return self._session(role, session_name, "LOCALROLE")

    def register_principal(self, arn: str, policies: Sequence[Mapping[str, Any]]) -> LocalCredentials:
        """Credentials of a principal that is not in the assembly, e.g. an operator running the CLI.

        Args:
            arn: an IAM user or role ARN (``arn:aws:iam::111111111111:user/operator``); its account is the one
                the principal's requests are served from.
            policies: its identity policy documents, e.g. ``[{"Statement": [{"Effect": "Allow",
                "Action": "dynamodb:*", "Resource": "*"}]}]``.
        """
        match = re.match(r"^arn:[^:]+:iam::(\d{12}):(user|role)/", arn)
        if match is None:
            raise ValueError(f"{arn!r} is not an IAM user or role ARN")
        key = "LOCALUSER" + _digest(arn)
        with self._lock:
            self._identities[key] = Identity(Principal(arn=arn, account=match.group(1)), tuple(policies))
            self._policies_changed()
        return LocalCredentials(access_key_id=key)

    def identity(self, access_key: str) -> Identity | None:
        """Who ``access_key`` belongs to; ``LOCAL<account>`` is the account's root. ``None`` if unknown."""
        known = self._identities.get(access_key)
        if known is not None:
            return known
        root = _ROOT_KEY.match(access_key)
        if root:
            account = root["account"]
            # The root user has no identity policies: its own account's resources are allowed to it.
            return Identity(Principal(arn=f"arn:aws:iam::{account}:root", account=account))
        return None

    def close(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> "Gateway":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- requests -------------------------------------------------------------------------------------

    def handle(self, headers: Mapping[str, str], body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        """(HTTP status, headers, body) for one request."""
        with self._lock:
            self.stats.requests += 1
        lower = {k.lower(): v for k, v in headers.items()}
        target = lower.get("x-amz-target", "")
        credential = _CREDENTIAL.search(lower.get("authorization", ""))
        is_sts = not target
        try:
            if credential is None:
                raise GatewayError("MissingAuthenticationTokenException", "Request is missing Authentication Token",
                                   type_prefix="com.amazon.coral.service")
            identity = self.identity(credential["key"])
            if identity is None:
                raise GatewayError("UnrecognizedClientException", "The security token included in the request is "
                                   "invalid.", type_prefix="com.amazon.coral.service")
            service = next((s for p, s in self._services.items() if target.startswith(p)), None)
            if service is not None:
                return self._serve(service, identity, credential["service"], credential["region"], target, body)
            _check_signing_service(credential["service"], is_sts)
            if is_sts:
                return self._sts(identity, credential["region"], body)
            return self._dynamodb(identity, credential["region"], target, lower, body)
        except Exception as unexpected:  # noqa: BLE001 - answer, never drop the connection silently
            if isinstance(unexpected, GatewayError):
                error = unexpected
            else:
                error = GatewayError("InternalServerError", f"local gateway: {type(unexpected).__name__}: "
                                     f"{unexpected}", status=500)
            if error.code in ("AccessDeniedException", "AccessDenied"):
                with self._lock:
                    self.stats._deny(error.message)
            if is_sts:
                status = 403 if error.code in ("AccessDenied", "SignatureDoesNotMatch") else error.status
                return status, [("content-type", "text/xml")], _sts_error(error.code, error.message).encode()
            kind = f"{error.type_prefix}#{error.code}" if error.type_prefix else error.code
            answer = json.dumps({"__type": kind, "Message": error.message}).encode()
            return error.status, [("content-type", "application/x-amz-json-1.0"),
                                  ("x-amzn-RequestId", str(uuid.uuid4()))], answer

    # --- IAM ------------------------------------------------------------------------------------------

    def _authorize(self, identity: Identity, action: str, resource: str, resource_account: str,
                   resource_policy: Mapping[str, Any] | None, region: str,
                   extra_context: Mapping[str, str | None] | None = None) -> None:
        """Raise ``AccessDeniedException`` unless ``identity`` may perform ``action`` on ``resource``.

        The request's condition keys are :func:`request_context` of ``region`` plus ``extra_context`` (the
        ``sts:`` keys of an AssumeRole).
        """
        if not self.enforce_iam:
            return
        if identity.role_arn is not None:
            role = self._roles.get(identity.role_arn)
            if role is None:  # deleted (an update removed it): its sessions' calls are refused
                raise GatewayError("AccessDeniedException", f"User: {identity.caller_arn} is not authorized to "
                                   f"perform: {action} on resource: {resource} (local runtime: role "
                                   f"{identity.role_arn} no longer exists)", type_prefix="com.amazon.coral.service")
            identity = Identity(identity.principal, role.policies, role.unsupported, identity.role_arn)
        if identity.unsupported:
            raise GatewayError("AccessDeniedException", f"User: {identity.caller_arn} is not authorized to perform: "
                               f"{action} on resource: {resource} (local runtime: {identity.unsupported})",
                               type_prefix="com.amazon.coral.service")
        context = {**request_context(region), **(extra_context or {})}
        decision, problem = self._decide(identity, action, resource, resource_account, resource_policy, context)
        if problem is not None:
            raise GatewayError("AccessDeniedException", f"User: {identity.caller_arn} is not authorized to perform: "
                               f"{action} on resource: {resource} (local runtime: the call cannot be evaluated "
                               f"exactly: {problem})", type_prefix="com.amazon.coral.service")
        assert decision is not None
        if not decision.allowed:
            raise GatewayError("AccessDeniedException",
                               denied_message(identity.principal, action, resource, decision),
                               type_prefix="com.amazon.coral.service")

    def _decide(self, identity: Identity, action: str, resource: str, resource_account: str,
                resource_policy: Mapping[str, Any] | None,
                context: Mapping[str, Any]) -> tuple[Decision | None, str | None]:
        """(decision, None), or (None, why it cannot be evaluated); memoised until a policy changes.

        A principal's policies are fixed between two changes (a role session takes its role's, and every
        change goes through add_role/register_principal/set_resource_policy, which forget every decision),
        so the principal, its role, the call and the context decide the outcome.
        """
        key = (identity.principal, identity.role_arn, action, resource, resource_account, id(resource_policy),
               tuple(sorted(context.items(), key=lambda item: item[0])))
        known = self._decisions.get(key)
        if known is not None:
            return known
        generation = self._generation
        try:
            outcome: tuple[Decision | None, str | None] = (evaluate(
                identity.principal, action, resource, identity_policies=identity.policies,
                resource_policy=resource_policy, resource_account=resource_account, context=context), None)
        except (PolicyError, ValueError) as error:
            outcome = (None, str(error))
        with self._lock:
            if generation == self._generation:
                if len(self._decisions) >= _DECISIONS_KEPT:
                    self._decisions.clear()
                self._decisions[key] = outcome
        return outcome

    # --- STS ------------------------------------------------------------------------------------------

    def _sts(self, identity: Identity, region: str, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        """Serve one STS query-protocol request: GetCallerIdentity, or AssumeRole checked against the role's
        trust policy and the caller's own policies; any other action is refused as not implemented."""
        form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
        with self._lock:
            self.calls.append(form)
        action = form.get("Action")
        if action == "GetCallerIdentity":  # AWS never refuses it
            result = (f"<Account>{identity.principal.account}</Account><UserId>LOCAL</UserId>"
                      f"<Arn>{escape(identity.caller_arn)}</Arn>")
        elif action == "AssumeRole":
            result = self._assume_role(identity, region, form)
        else:
            raise GatewayError("InvalidAction", f"the local STS does not implement {action!r}")
        return 200, [("content-type", "text/xml")], _sts_wrap(action, result).encode()

    def _assume_role(self, identity: Identity, region: str, form: Mapping[str, str]) -> str:
        """The AssumeRole result XML for ``identity``: parameters checked as AWS checks them, then the call
        authorised, then the session duration limits; the session is registered so its keys sign later calls."""
        role_arn, session_name, seconds = _checked_assume_role_form(form)
        role = self._assumable_role(identity, region, form, role_arn, session_name)
        if identity.principal.session_arn is not None and seconds > CHAINED_SESSION_SECONDS:
            raise GatewayError("ValidationError", "The requested DurationSeconds exceeds the 1 hour session limit "
                                                  "for roles assumed by role chaining.")
        if seconds > role.max_session_duration:
            raise GatewayError("ValidationError", "The requested DurationSeconds exceeds the MaxSessionDuration set "
                                                  "for this role.")
        creds = self._session(role, session_name, "LOCALSESS")
        expires = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")
        identity_of = self._identities[creds.access_key_id]
        return (
            f"<Credentials><AccessKeyId>{creds.access_key_id}</AccessKeyId>"
            f"<SecretAccessKey>{creds.secret_access_key}</SecretAccessKey>"
            f"<SessionToken>local-session</SessionToken><Expiration>{expires}</Expiration></Credentials>"
            f"<AssumedRoleUser><AssumedRoleId>AROALOCAL:{escape(session_name)}"
            f"</AssumedRoleId><Arn>{escape(identity_of.caller_arn)}</Arn></AssumedRoleUser>"
        )

    def _assumable_role(self, identity: Identity, region: str, form: Mapping[str, str], role_arn: str,
                        session_name: str) -> Role:
        """The role ``identity`` may assume, or AccessDenied: the role must exist locally, be modelled, and
        both its trust policy and the caller's policies must allow sts:AssumeRole (and sts:SetSourceIdentity
        when a SourceIdentity is set)."""
        role = self._roles.get(role_arn)
        denied = (f"User: {identity.caller_arn} is not authorized to perform: sts:AssumeRole on resource: "
                  f"{role_arn}")
        if role is None:
            # AWS does not say whether the role exists; locally it helps to know why.
            raise GatewayError("AccessDenied", f"{denied} (no such role in the local deployment)")
        if role.unsupported:
            raise GatewayError("AccessDenied", f"{denied} (local runtime: {role.unsupported})")
        context = {"sts:RoleSessionName": session_name, "sts:ExternalId": form.get("ExternalId"),
                   "sts:SourceIdentity": form.get("SourceIdentity")}
        # Setting a source identity needs sts:SetSourceIdentity as well (in both policies).
        actions = ["sts:AssumeRole"] + (["sts:SetSourceIdentity"] if form.get("SourceIdentity") else [])
        try:
            for sts_action in actions:
                self._authorize(identity, sts_action, role_arn, role.account, role.trust_policy or {}, region,
                                context)
        except GatewayError as error:
            raise GatewayError("AccessDenied", error.message) from None
        return role

    def _session(self, role: Role, session_name: str, prefix: str) -> LocalCredentials:
        """Register (idempotently) a session of ``role`` and return its credentials."""
        partition = role.arn.split(":")[1]
        session_arn = f"arn:{partition}:sts::{role.account}:assumed-role/{role.name}/{session_name}"
        key = prefix + _digest(session_arn)
        principal = Principal(arn=role.arn, account=role.account, session_arn=session_arn)
        with self._lock:
            self._identities[key] = Identity(principal, role_arn=role.arn)
        return LocalCredentials(access_key_id=key)

    # --- other JSON services --------------------------------------------------------------------------

    def _serve(self, service: JsonService, identity: Identity, signed_for: str, region: str, target: str,
               body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        """One call of an added service: the signature's scope checked, IAM by :meth:`_authorize` (resources
        of the caller's own account: these services' resources have no resource policies here)."""
        if signed_for != service.signing_name:
            raise GatewayError("InvalidSignatureException", f"Credential should be scoped to correct service: "
                                                            f"'{service.signing_name}'. ", type_prefix="")
        account = identity.principal.account

        def authorize(action: str, resource: str) -> None:
            self._authorize(identity, action, resource, account, None, region)

        try:
            answer = service.serve(target[len(service.target_prefix):], json.loads(body or b"{}"), region=region,
                                   account=account, authorize=authorize)
        except GatewayError:
            raise
        except Exception as error:  # noqa: BLE001 - the service's own AWS error (code + message)
            if not hasattr(error, "code"):
                raise
            raise GatewayError(str(getattr(error, "code")), str(getattr(error, "message", error)),
                               type_prefix="") from None
        return 200, [("content-type", "application/x-amz-json-1.1"), ("x-amzn-RequestId", str(uuid.uuid4()))], \
            json.dumps(answer).encode()

    # --- DynamoDB and DynamoDB Streams ----------------------------------------------------------------

    def _dynamodb(self, identity: Identity, region: str, target: str, headers: Mapping[str, str],
                  body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        request = json.loads(body or b"{}")
        if target.startswith(_STREAMS_PREFIX):
            operation = target[len(_STREAMS_PREFIX):]
            account, renamed = self._streams_request(identity, region, operation, request)
        elif target.startswith(_DDB_PREFIX):
            operation = target[len(_DDB_PREFIX):]
            account, renamed = self._table_request(identity, region, operation, request)
        else:
            raise GatewayError("UnknownOperationException", f"unknown target {target!r}",
                               type_prefix="com.amazon.coral.service")
        if renamed is not None:
            body = json.dumps(request).encode()
        status, response_headers, answer = self._forward(target, region, account, headers, body)
        changed = False
        if status == 200 and renamed:
            document = _rename_back(answer, renamed)
            if document is not None:
                answer, changed = json.dumps(document).encode(), True
        if status == 200 and operation in ("GetShardIterator", "GetRecords"):
            # Shard iterators embed DynamoDB Local's stream ARN: they go back untouched.
            document = json.loads(answer)
            self._remember_iterator(document, region, account, request)
            for record in document.get("Records", []):
                record["awsRegion"] = region
            if document.get("Records"):
                answer, changed = json.dumps(document).encode(), True
        elif _LOCAL_ARN_PREFIX in answer:
            partition, _ = partition_of(region)
            answer = answer.replace(_LOCAL_ARN_PREFIX, f"arn:{partition}:dynamodb:{region}:{account}:".encode())
            changed = True
        if changed:
            response_headers = [(k, v) for k, v in response_headers if k.lower() != "x-amz-crc32"]
            response_headers.append(("x-amz-crc32", str(zlib.crc32(answer) & 0xFFFFFFFF)))
        return status, response_headers, answer

    def _resolve(self, identity: Identity, region: str, named: str) -> _Target:
        """The table a request names: a plain name is the caller's account's; an ARN names its account."""
        partition, _ = partition_of(region)
        match = _TABLE_ARN.match(named)
        if named.startswith("arn:") and match is None:
            raise GatewayError("ValidationException", f"Invalid TableName: {named!r} is neither a table name nor a "
                                                      "table ARN")
        if match is None:
            account = identity.principal.account
            return _Target(named, named, account, f"arn:{partition}:dynamodb:{region}:{account}:table/{named}")
        if match["rest"]:
            raise GatewayError("ValidationException", f"Invalid TableName: {named!r} is not a table ARN")
        _check_arn_place(named, match, region, "table")
        return _Target(named, match["name"], match["account"], named)

    def _table_request(self, identity: Identity, region: str, operation: str,
                       request: dict[str, Any]) -> tuple[str, dict[str, str] | None]:
        """Authorize a DynamoDB request, rewrite its ARNs to names; (account to serve it from, renames)."""
        checks: dict[tuple[str, str], _Target] = {}  # (action, resource ARN) -> table; each checked once
        renamed: dict[str, str] = {}

        def target(named: str, action: str, index: str | None = None) -> _Target:
            found = self._resolve(identity, region, named)
            resource = found.arn + (f"/index/{index}" if index else "")
            checks.setdefault((action, resource), found)
            if found.as_named != found.name:
                renamed[found.name] = found.as_named
            return found

        def table(named: str, action: str, index: str | None = None) -> str:
            return target(named, action, index).name

        action = f"dynamodb:{operation}"
        if operation in _PARTIQL:
            if self.enforce_iam:
                raise GatewayError("ValidationException", "local runtime: PartiQL statements are not evaluated by the "
                                                          "gateway; use the item API")
            return identity.principal.account, None
        if operation not in _TABLE_OPERATIONS:
            raise GatewayError("ValidationException", f"local runtime: the gateway does not model {operation} (it "
                                                      "cannot tell which resources the call reaches); it serves "
                                                      f"{', '.join(sorted(_TABLE_OPERATIONS))}")
        if operation == "CreateTable" and "ResourcePolicy" in request:
            raise GatewayError("ValidationException", "local runtime: a ResourcePolicy given to CreateTable is not "
                                                      "enforced; declare it in the template (or "
                                                      "Gateway.set_resource_policy)")
        if isinstance(request.get("TableName"), str):
            index = request.get("IndexName") if operation in ("Query", "Scan") else None
            request["TableName"] = table(request["TableName"], action, index)
        if isinstance(request.get("RequestItems"), dict):
            request["RequestItems"] = _one_entry_per_table(
                [(target(named, action), entry) for named, entry in request["RequestItems"].items()])
        for entry in request.get("TransactItems", []) or []:
            for kind, item in entry.items():
                if isinstance(item, dict) and isinstance(item.get("TableName"), str):
                    item["TableName"] = table(item["TableName"], _TRANSACT_ACTIONS.get(kind, action))
        if isinstance(request.get("ResourceArn"), str):
            request["ResourceArn"] = table(request["ResourceArn"], action)
        accounts = {t.account for t in checks.values()} or {identity.principal.account}
        if len(accounts) > 1:
            raise GatewayError("ValidationException", f"local runtime: one {operation} request names tables of "
                                                      f"accounts {sorted(accounts)}; DynamoDB Local serves each "
                                                      "request from one account's database, so split the request")
        (account,) = accounts
        if not checks:  # ListTables, DescribeLimits, ...: no resource type in IAM
            self._authorize(identity, action, "*", identity.principal.account, None, region)
        for (checked_action, resource), found in checks.items():
            self._authorize(identity, checked_action, resource, found.account,
                            self._resource_policies.get(found.arn), region)
        return account, renamed or None

    def _streams_request(self, identity: Identity, region: str, operation: str,
                         request: dict[str, Any]) -> tuple[str, dict[str, str] | None]:
        """Authorize a DynamoDB Streams request and point it at DynamoDB Local's stream ARN."""
        if operation not in _STREAMS_OPERATIONS:
            raise GatewayError("ValidationException", f"local runtime: the gateway does not model DynamoDB Streams' "
                                                      f"{operation}")
        action = f"dynamodb:{operation}"
        stream_arn = request.get("StreamArn")
        if operation == "GetRecords":
            remembered = self._iterators.get(str(request.get("ShardIterator")))
            if remembered is None:
                raise GatewayError("ExpiredIteratorException", "local runtime: the shard iterator was not handed "
                                                               "out by this gateway (or is too old)")
            iterator_region, account, stream_arn = remembered
            if iterator_region != region:
                # A stream (and its iterators) lives in one region; another region's endpoint does not know it.
                raise GatewayError("ValidationException", f"Invalid ShardIterator: it was handed out in region "
                                                          f"{iterator_region}, but the request was sent to {region}")
        elif isinstance(stream_arn, str):
            match = _TABLE_ARN.match(stream_arn)
            if match is None or not (match["rest"] or "").startswith("/stream/"):
                raise GatewayError("ValidationException", f"Invalid StreamArn {stream_arn!r}")
            _check_arn_place(stream_arn, match, region, "stream")
            account = match["account"]
            request["StreamArn"] = f"arn:aws:dynamodb:ddblocal:000000000000:table/{match['name']}{match['rest']}"
        else:  # ListStreams
            account = identity.principal.account
            if isinstance(request.get("TableName"), str):
                found = self._resolve(identity, region, request["TableName"])
                account, request["TableName"] = found.account, found.name
            self._authorize(identity, action, "*", identity.principal.account, None, region)
            return account, {}
        self._authorize(identity, action, stream_arn, account, None, region)
        return account, {}

    def _remember_iterator(self, answer: Mapping[str, Any], region: str, account: str,
                           request: Mapping[str, Any]) -> None:
        iterator = answer.get("ShardIterator") or answer.get("NextShardIterator")
        if not iterator:
            return
        stream_arn = request.get("StreamArn")
        if stream_arn is None:  # GetRecords: the stream of the iterator it used
            stream_arn = self._iterators.get(str(request.get("ShardIterator")), (None, None, None))[2]
        else:
            partition, _ = partition_of(region)
            stream_arn = str(stream_arn).replace("arn:aws:dynamodb:ddblocal:000000000000:",
                                                 f"arn:{partition}:dynamodb:{region}:{account}:")
        with self._lock:
            self._iterators[iterator] = (region, account, str(stream_arn))
            while len(self._iterators) > _ITERATORS_KEPT:
                self._iterators.popitem(last=False)

    def _forward(self, target: str, region: str, account: str, headers: Mapping[str, str],
                 body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        """Send the request to DynamoDB Local as ``account`` (its database) over a kept-alive connection."""
        key = credentials_for_account(account).access_key_id
        auth = (f"AWS4-HMAC-SHA256 Credential={key}/20000101/{region}/dynamodb/aws4_request, "
                "SignedHeaders=host;x-amz-target, Signature=0")  # DynamoDB Local does not check signatures
        out = {"Content-Type": headers.get("content-type", "application/x-amz-json-1.0"), "X-Amz-Target": target,
               "Authorization": auth}
        for attempt in (1, 2):
            conn = getattr(self._upstream, "conn", None)
            if conn is None:
                conn = self._upstream.conn = http.client.HTTPConnection("127.0.0.1", self.ddb.port, timeout=60)
            try:
                conn.request("POST", "/", body, out)
                response = conn.getresponse()
                answer = response.read()
            except (http.client.HTTPException, OSError):
                conn.close()
                self._upstream.conn = None
                if attempt == 2:
                    raise
                continue
            with self._lock:
                self.stats.forwarded += 1
            kept = [(k, v) for k, v in response.getheaders()
                    if k.lower() in ("content-type", "x-amzn-requestid", "x-amz-crc32")]
            return response.status, kept, answer
        raise AssertionError("unreachable")


def _check_arn_place(arn: str, match: re.Match[str], region: str, what: str) -> None:
    """A table or stream ARN must be of the request's partition and region, with a 12-digit account."""
    partition, _ = partition_of(region)
    if match["partition"] != partition:
        raise GatewayError("ValidationException", f"The {what} ARN {arn} names partition {match['partition']}, but "
                                                  f"region {region} is in partition {partition}")
    if match["region"] != region:
        # AWS serves a table only from its own region's endpoint.
        raise GatewayError("ValidationException", f"The {what} ARN {arn} names region {match['region']}, but "
                                                  f"the request was sent to region {region}")
    if not _ACCOUNT.match(match["account"]):
        raise GatewayError("ValidationException", f"Invalid {what} ARN {arn}: the account {match['account']!r} is "
                                                  "not 12 digits")


def _one_entry_per_table(entries: Sequence[tuple[_Target, Any]]) -> dict[str, Any]:
    """``RequestItems`` by table name, from (table, entry): a table named twice (by its name and by its ARN)
    is refused rather than one of its entries silently dropped. (Tables of two accounts that share a name
    are refused later, as a request naming two accounts.)"""
    by_table: dict[str, Any] = {}
    seen: dict[str, _Target] = {}
    for found, entry in entries:
        first = seen.get(found.name)
        if first is not None and first.account == found.account:
            raise GatewayError("ValidationException", f"RequestItems names table {found.arn} twice, as "
                                                      f"{first.as_named!r} and as {found.as_named!r}; put all its "
                                                      "requests under one key")
        by_table[found.name], seen[found.name] = entry, found
    return by_table


def _rename_back(answer: bytes, renamed: Mapping[str, str]) -> dict[str, Any] | None:
    """The response with table names put back as the caller wrote them; ``None`` when nothing changed."""
    document = json.loads(answer or b"{}")
    changed = False
    for key in _BY_TABLE_KEYS:
        value = document.get(key)
        if isinstance(value, dict) and any(name in renamed for name in value):
            document[key] = {renamed.get(name, name): v for name, v in value.items()}
            changed = True
    capacity = document.get("ConsumedCapacity")
    for entry in capacity if isinstance(capacity, list) else [capacity] if isinstance(capacity, dict) else []:
        if entry.get("TableName") in renamed:
            entry["TableName"] = renamed[entry["TableName"]]
            changed = True
    return document if changed else None


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16].upper()


def _sts_wrap(action: str, result: str) -> str:
    return (f'<{action}Response xmlns="{_STS_NS}"><{action}Result>{result}</{action}Result>'
            f"<ResponseMetadata><RequestId>{uuid.uuid4()}</RequestId></ResponseMetadata></{action}Response>")


def _sts_error(code: str, message: str) -> str:
    return (f'<ErrorResponse xmlns="{_STS_NS}"><Error><Type>Sender</Type><Code>{code}</Code>'
            f"<Message>{escape(message)}</Message></Error><RequestId>{uuid.uuid4()}</RequestId></ErrorResponse>")


def request_context(region: str) -> dict[str, Any]:
    """The condition keys AWS sets on every call a function (or an operator) signs, for IAM evaluation.

    ``aws:SecureTransport`` (the SDKs use HTTPS), ``aws:RequestedRegion`` (the region of the credential scope),
    ``aws:ViaAWSService`` (``false``: the caller signs itself) and ``aws:SourceIp``, which AWS sets to an
    address the local runtime cannot know, so a condition on it is refused as not evaluable. Every other key of
    :data:`cdk_replication.local.iam.REQUEST_KEYS` (VPC, organisation, MFA, ``aws:SourceArn``, ...) is absent
    from such a call on AWS too.
    """
    return {"aws:SecureTransport": "true", "aws:RequestedRegion": region, "aws:ViaAWSService": "false",
            "aws:SourceIp": UNKNOWN}


def _check_signing_service(service: str, is_sts: bool) -> None:
    """AWS refuses a signature whose credential scope names another service than the endpoint's API."""
    expected = "sts" if is_sts else "dynamodb"  # DynamoDB Streams signs as "dynamodb" too
    if service != expected:
        message = f"Credential should be scoped to correct service: '{expected}'. "
        if is_sts:
            raise GatewayError("SignatureDoesNotMatch", message, status=403)
        raise GatewayError("InvalidSignatureException", message, type_prefix="com.amazon.coral.service")


def _sts_validation(value: str | None, member: str, constraint: str) -> GatewayError:
    shown = "null" if value is None else f"'{value}'"
    return GatewayError("ValidationError", f"1 validation error detected: Value {shown} at '{member}' failed to "
                                           f"satisfy constraint: Member {constraint}")


def _checked_assume_role_form(form: Mapping[str, str]) -> tuple[str, str, int]:
    """(role ARN, session name, duration in seconds) of an AssumeRole request, its parameters checked in the
    order STS checks them; parameters the local runtime does not model (session policies, tags, MFA,
    provided contexts) are refused rather than ignored, since ignoring them could be kinder than AWS."""
    role_arn = form.get("RoleArn", "")
    if _ROLE_ARN.match(role_arn) is None:
        raise GatewayError("ValidationError", f"RoleArn {role_arn!r} is not a role ARN")
    if any(k == "Policy" or k.startswith("PolicyArns.") for k in form):
        raise GatewayError("ValidationError", "local runtime: session policies (Policy, PolicyArns) are not "
                                              "modelled; assume the role without them")
    unmodelled = sorted({k.split(".", 1)[0] for k in form} - _ASSUME_ROLE_FIELDS)
    if unmodelled:
        raise GatewayError("ValidationError", f"local runtime: AssumeRole parameter(s) {', '.join(unmodelled)} "
                                              "are not modelled (session tags, MFA, provided contexts); "
                                              "assume the role without them")
    session_name = _checked_session_name(form.get("RoleSessionName"))
    seconds = _checked_duration(form.get("DurationSeconds"))
    _checked_external_id(form.get("ExternalId"))
    return role_arn, session_name, seconds


def _checked_session_name(name: str | None) -> str:
    """``RoleSessionName`` as STS checks it: required, 2 to 64 characters of ``[\\w+=,.@-]``."""
    if name is None:
        raise _sts_validation(name, "roleSessionName", "must not be null")
    if len(name) < 2:
        raise _sts_validation(name, "roleSessionName", "must have length greater than or equal to 2")
    if len(name) > 64:
        raise _sts_validation(name, "roleSessionName", "must have length less than or equal to 64")
    if not _SESSION_NAME.match(name):
        raise _sts_validation(name, "roleSessionName", "must satisfy regular expression pattern: [\\w+=,.@-]*")
    return name


def _checked_duration(text: str | None) -> int:
    """``DurationSeconds`` (default 3600), at least 900; the role's maximum is checked by the caller."""
    if text is None:
        return SESSION_SECONDS
    try:
        seconds = int(text)
    except ValueError:
        raise _sts_validation(text, "durationSeconds", "must be an integer") from None
    if seconds < MIN_SESSION_SECONDS:
        raise _sts_validation(text, "durationSeconds", "must have value greater than or equal to 900")
    return seconds


def _checked_external_id(external_id: str | None) -> None:
    """``ExternalId`` as STS checks it: 2 to 1224 characters of ``[\\w+=,.@:/-]``."""
    if external_id is None:
        return
    if len(external_id) < 2:
        raise _sts_validation(external_id, "externalId", "must have length greater than or equal to 2")
    if len(external_id) > 1224:
        raise _sts_validation(external_id, "externalId", "must have length less than or equal to 1224")
    if not _EXTERNAL_ID.match(external_id):
        raise _sts_validation(external_id, "externalId", "must satisfy regular expression pattern: [\\w+=,.@:/-]*")
