"""An IAM policy evaluator for the local runtime: decide a call as AWS would, or refuse to guess.

Pure Python, no AWS. The local gateway calls :func:`evaluate` for every call a deployed function makes
(action + resource ARN, including ``sts:AssumeRole`` against the role's trust policy) with the caller's
identity-based policies and the resource's policy taken from the synthesized template, and answers
``AccessDenied`` with :func:`denied_message` when the decision is a deny.

The evaluator is never kinder than AWS: whatever it cannot decide exactly (an operator or a condition key it
does not know, ``NotPrincipal``, a wildcard principal ARN, a policy variable, an unresolved intrinsic, ...)
raises :class:`PolicyError` naming the construct; it never silently allows, and never silently skips a deny.

What it models (AWS's policy evaluation logic, without SCPs, RCPs, permission boundaries or session policies):

* An explicit ``Deny`` in any applicable policy wins.
* Same account: allowed if an identity-based policy allows, or the resource policy allows the principal
  *itself* (its role, user or session ARN, or ``"*"``). A resource policy naming only the *account*
  (``"111111111111"`` or ``arn:aws:iam::111111111111:root``) delegates to the account's identity policies and
  grants nothing on its own.
* Resources whose policy is required even in the same account -- a role's trust policy (``sts:*`` on an
  ``iam`` role ARN) and a KMS key policy: allowed if the resource policy names the principal itself, or names
  its account *and* an identity-based policy allows. Without a resource policy: denied.
* Cross account: allowed only if an identity-based policy allows *and* the resource policy allows the
  principal (by name or by account).
* The account root user has no identity policies: its own account's resources are implicitly allowed to it
  (unless a resource policy denies); it cannot assume a role.

Condition keys: the evaluator fills ``aws:PrincipalArn`` (the role ARN for a role session),
``aws:PrincipalAccount``, ``aws:PrincipalType`` (``AssumedRole``, ``User`` or ``Account``),
``aws:username`` (IAM users only) and ``aws:PrincipalIsAWSService`` (``false``). Everything about the request
comes from ``context``; a key in :data:`REQUEST_KEYS` that is not in ``context`` is absent from the request
(AWS's rule: a condition on an absent key is false, its negated form true, ``...IfExists`` true), so the
caller must put there every such key AWS would set (for example ``aws:SecureTransport: "true"`` for an HTTPS
call). A key AWS sets to a value the caller cannot know (``aws:SourceIp``: the address a function's call would
come from) is given as :data:`UNKNOWN`: any condition on it but ``Null`` raises :class:`PolicyError`. Any other
key must be in ``context`` (``None`` declares it absent) or :class:`PolicyError` is raised.

:func:`service_may_assume` answers the one question about a service principal the local runtime needs: may a
service (``lambda.amazonaws.com``) assume a role under its trust policy.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

__all__ = [
    "REQUEST_KEYS",
    "UNKNOWN",
    "Decision",
    "PolicyError",
    "Principal",
    "denied_message",
    "evaluate",
    "service_may_assume",
]

_ACCOUNT = re.compile(r"^\d{12}$")
_IDENTITY_ARN = re.compile(
    r"^arn:(?P<partition>[a-z-]+):iam::(?P<account>\d{12}):"
    r"(?:(?P<root>root)|(?P<kind>role|user)/(?:.*/)?(?P<name>[^/]+))$"
)
_SESSION_ARN = re.compile(
    r"^arn:(?P<partition>[a-z-]+):sts::(?P<account>\d{12}):assumed-role/(?P<role>[^/]+)/(?P<session>[^/]+)$"
)
_ROLE_RESOURCE = re.compile(r"^arn:[a-z-]+:iam::\d{12}:role/")
_KMS_KEY_RESOURCE = re.compile(r"^arn:[a-z-]+:kms:[^:]*:\d{12}:key/")
_VERSIONS = ("2012-10-17", "2008-10-17")
_STATEMENT_KEYS = frozenset(
    {"Sid", "Effect", "Principal", "NotPrincipal", "Action", "NotAction", "Resource", "NotResource", "Condition"}
)

#: Request condition keys (lower-cased) whose absence from ``context`` means absence from the request. The
#: caller supplies each one AWS would set for the call; any key not listed here, not in ``context`` and not
#: filled by the evaluator raises :class:`PolicyError`, because its value on AWS is unknown here.
REQUEST_KEYS: frozenset[str] = frozenset(
    {
        "aws:securetransport",
        "aws:sourcearn",
        "aws:sourceaccount",
        "aws:sourceorgid",
        "aws:sourceorgpaths",
        "aws:sourceip",
        "aws:sourcevpc",
        "aws:sourcevpce",
        "aws:vpcsourceip",
        "aws:requestedregion",
        "aws:calledvia",
        "aws:calledviafirst",
        "aws:calledvialast",
        "aws:viaawsservice",
        "aws:multifactorauthpresent",
        "aws:multifactorauthage",
        "sts:externalid",
        "sts:sourceidentity",
        "sts:rolesessionname",
    }
)

_PRINCIPAL_KEYS = frozenset(
    {"aws:principalarn", "aws:principalaccount", "aws:principaltype", "aws:username", "aws:principalisawsservice"}
)


class PolicyError(ValueError):
    """A policy the evaluator cannot evaluate exactly; the message names the construct and where it is."""


class _Unknown:
    """The type of :data:`UNKNOWN`."""

    _instance: "_Unknown | None" = None

    def __new__(cls) -> "_Unknown":
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNKNOWN"


#: A ``context`` value for a key AWS sets on the request to a value the caller cannot know (``aws:SourceIp``):
#: the key is present, so ``Null`` conditions are decided, and every other condition on it raises PolicyError.
UNKNOWN = _Unknown()

_Values = tuple[str, ...] | None | _Unknown


@dataclass(frozen=True)
class Principal:
    """The identity a request is signed with.

    Attributes:
        arn: the IAM identity: a role ARN ``arn:aws:iam::111111111111:role/Name`` (also for its assumed-role
            sessions), a user ARN, or the account root ``arn:aws:iam::111111111111:root``.
        account: the identity's account, 12 digits (must match the ARN).
        session_arn: ``arn:aws:sts::111111111111:assumed-role/Name/session`` when the caller is a role session;
            ``None`` (default) otherwise.
    """

    arn: str
    account: str
    session_arn: str | None = None


@dataclass(frozen=True)
class Decision:
    """The outcome of :func:`evaluate`.

    Attributes:
        allowed: whether AWS would allow the call.
        reason: AWS's wording of why, e.g. ``because no identity-based policy allows the dynamodb:PutItem
            action`` or ``with an explicit deny in a resource-based policy``; ``allowed`` when allowed.
    """

    allowed: bool
    reason: str


@dataclass(frozen=True)
class _Caller:
    """A parsed :class:`Principal`."""

    partition: str
    account: str
    kind: Literal["role", "user", "root"]
    arn: str
    session_arn: str | None

    @property
    def display_arn(self) -> str:
        """The ARN AWS names in an AccessDenied message: the session's when a session."""
        return self.session_arn or self.arn


# --------------------------------------------------------------------------------------------- public API


def evaluate(
    principal: Principal,
    action: str,
    resource: str,
    *,
    identity_policies: Sequence[Mapping[str, Any]],
    resource_policy: Mapping[str, Any] | None = None,
    resource_account: str,
    context: Mapping[str, str | Sequence[str] | None | _Unknown] | None = None,
) -> Decision:
    """Decide whether ``principal`` may perform ``action`` on ``resource``, as AWS would.

    Args:
        principal: who signed the request.
        action: ``service:Operation``, e.g. ``dynamodb:PutItem`` (matched case-insensitively).
        resource: the full ARN the call acts on (matched case-sensitively); ``"*"`` for an action IAM knows
            no resource type for (``dynamodb:ListStreams``), with the caller's account as ``resource_account``.
        identity_policies: the policy documents attached to the principal (for a session: to its role),
            intrinsics already resolved. Must be empty for the account root.
        resource_policy: the resource's policy (a table's ``ResourcePolicy``, a role's trust policy), or
            ``None`` (default) when the resource has none.
        resource_account: the 12-digit account that owns the resource.
        context: request condition keys (``aws:SecureTransport``, ``aws:SourceArn``, ...) to their value, a
            list of values for a multivalued key, ``None`` to declare a key absent, or :data:`UNKNOWN` for a
            key AWS sets to a value unknown here. Default: no keys.

    Returns:
        The decision and AWS's wording of its reason.

    Raises:
        PolicyError: a policy uses something the evaluator cannot decide exactly.
        ValueError: the principal, action, account or context are malformed.
    """
    caller = _parse_principal(principal)
    _check_action(action)
    if not _ACCOUNT.match(resource_account):
        raise ValueError(f"resource_account must be 12 digits, got {resource_account!r}")
    keys = _condition_keys(caller, context or {})
    request = _Request(action=action, resource=resource, keys=keys)
    if caller.kind == "root" and identity_policies:
        raise ValueError("the account root user has no identity-based policies; pass identity_policies=[]")

    identity = _Verdict()
    for index, document in enumerate(identity_policies):
        _evaluate_document(document, f"identity policy {index}", request, caller=None, verdict=identity)
    resource_verdict = _Verdict()
    if resource_policy is not None:
        _evaluate_document(resource_policy, "resource policy", request, caller=caller, verdict=resource_verdict)

    if identity.deny:
        return Decision(False, "with an explicit deny in an identity-based policy")
    if resource_verdict.deny:
        return Decision(False, "with an explicit deny in a resource-based policy")
    return _combine(caller, request, resource_account, identity, resource_verdict)


def denied_message(principal: Principal, action: str, resource: str, decision: Decision) -> str:
    """AWS's AccessDenied text for a denied ``decision``.

    For example ``User: arn:aws:sts::111111111111:assumed-role/R/s is not authorized to perform:
    dynamodb:PutItem on resource: arn:aws:dynamodb:eu-west-1:222222222222:table/T because no resource-based
    policy allows the dynamodb:PutItem action``.

    Raises:
        ValueError: ``decision`` is an allow.
    """
    if decision.allowed:
        raise ValueError("denied_message needs a denied decision")
    who = principal.session_arn or principal.arn
    return f"User: {who} is not authorized to perform: {action} on resource: {resource} {decision.reason}"


def service_may_assume(trust_policy: Mapping[str, Any] | None, service: str,
                       action: str = "sts:AssumeRole") -> bool:
    """Whether the AWS service ``service`` (``lambda.amazonaws.com``) may perform ``action`` on a role whose
    trust policy is ``trust_policy`` (what Lambda's CreateFunction checks for an execution role).

    Allowed when a statement allows ``action`` to ``"Principal": "*"`` or to ``{"Service": service}`` and no
    statement denies it to ``"*"``, ``{"AWS": "*"}`` or the service. ``None`` (no trust policy) allows nothing.

    Raises:
        PolicyError: the policy is malformed, or a statement that would decide it has a ``Condition`` (which
            keys a service sets when it assumes a role is not modelled) or a ``NotPrincipal``.
    """
    if trust_policy is None:
        return False
    if not isinstance(trust_policy, Mapping) or "Statement" not in trust_policy:
        raise PolicyError("trust policy: a policy document must be an object with a Statement element")
    statements = trust_policy["Statement"]
    statements = [statements] if isinstance(statements, Mapping) else statements
    if not isinstance(statements, list):
        raise PolicyError("trust policy: Statement must be an object or a list")
    allowed = denied = False
    for index, statement in enumerate(statements):
        where = f"trust policy statement {index}"
        if not isinstance(statement, Mapping) or statement.get("Effect") not in ("Allow", "Deny"):
            raise PolicyError(f"{where}: a statement must be an object with Effect 'Allow' or 'Deny'")
        if "NotPrincipal" in statement:
            raise PolicyError(f"{where}: NotPrincipal is not supported by the local evaluator")
        deny = statement["Effect"] == "Deny"
        if not _names_service(statement.get("Principal"), service, where, wildcard_aws=deny):
            continue
        if not _matches_action(statement, action, where):
            continue
        if "Condition" in statement:
            raise PolicyError(f"{where}: a Condition on what {service} may do is not modelled by the local "
                              "evaluator")
        denied = denied or deny
        allowed = allowed or not deny
    return allowed and not denied


def _names_service(element: Any, service: str, where: str, *, wildcard_aws: bool) -> bool:
    """Whether a trust policy's ``Principal`` names ``service`` (``{"AWS": "*"}`` too when ``wildcard_aws``)."""
    if element == "*":
        return True
    if not isinstance(element, Mapping) or not element:
        raise PolicyError(f"{where}: Principal must be '*' or an object, got {element!r}")
    if "Service" in element and service in _strings(element["Service"], where, "Principal.Service"):
        return True
    return wildcard_aws and "AWS" in element and "*" in _strings(element["AWS"], where, "Principal.AWS")


# ------------------------------------------------------------------------------------------ combination


@dataclass
class _Verdict:
    """What one policy type said: an explicit deny, an allow naming the principal, an allow naming its account."""

    deny: bool = False
    allow: bool = False
    account_allow: bool = False


@dataclass(frozen=True)
class _Request:
    action: str
    resource: str
    keys: Mapping[str, _Values]


def _combine(
    caller: _Caller, request: _Request, resource_account: str, identity: _Verdict, resource: _Verdict
) -> Decision:
    """Combine identity and resource verdicts (no explicit deny) into AWS's decision."""
    no_identity = Decision(False, f"because no identity-based policy allows the {request.action} action")
    no_resource = Decision(False, f"because no resource-based policy allows the {request.action} action")
    allowed = Decision(True, "allowed")
    if caller.kind == "root":
        if _ROLE_RESOURCE.match(request.resource) and request.action.lower().startswith("sts:"):
            return Decision(False, "because the root user cannot assume a role")
        identity = _Verdict(allow=True)  # the root user may do anything its account's policies do not deny
    if caller.account != resource_account:
        if not identity.allow:
            return no_identity
        return allowed if (resource.allow or resource.account_allow) else no_resource
    if _resource_policy_required(request):
        if resource.allow:
            return allowed
        if not resource.account_allow:
            return no_resource
        return allowed if identity.allow else no_identity
    return allowed if (identity.allow or resource.allow) else no_identity


def _resource_policy_required(request: _Request) -> bool:
    """Whether AWS needs the resource policy even in the same account: role trust policies and key policies."""
    service = request.action.split(":", 1)[0].lower()
    if service == "sts" and _ROLE_RESOURCE.match(request.resource):
        return True
    return service == "kms" and bool(_KMS_KEY_RESOURCE.match(request.resource))


# -------------------------------------------------------------------------------------------- documents


def _evaluate_document(
    document: Mapping[str, Any], where: str, request: _Request, *, caller: _Caller | None, verdict: _Verdict
) -> None:
    """Fold the statements of one policy document into ``verdict``.

    ``caller`` is ``None`` for an identity-based policy (no ``Principal`` allowed) and the calling principal
    for a resource-based policy (``Principal`` required).
    """
    if not isinstance(document, Mapping):
        raise PolicyError(f"{where}: a policy document must be an object, got {type(document).__name__}")
    unknown = set(document) - {"Version", "Id", "Statement"}
    if unknown:
        raise PolicyError(f"{where}: unknown policy element(s) {sorted(unknown)}")
    version = document.get("Version", "2008-10-17")
    if version not in _VERSIONS:
        raise PolicyError(f"{where}: unknown policy Version {version!r}")
    if "Statement" not in document:
        raise PolicyError(f"{where}: a policy document needs a Statement element")
    statements = document["Statement"]
    if isinstance(statements, Mapping):
        statements = [statements]
    if not isinstance(statements, list):
        raise PolicyError(f"{where}: Statement must be an object or a list, got {type(statements).__name__}")
    for index, statement in enumerate(statements):
        label = f"{where} statement {index}"
        if isinstance(statement, Mapping) and isinstance(statement.get("Sid"), str):
            label += f" ({statement['Sid']})"
        _evaluate_statement(statement, label, version, request, caller=caller, verdict=verdict)


def _evaluate_statement(
    statement: Any, where: str, version: str, request: _Request, *, caller: _Caller | None, verdict: _Verdict
) -> None:
    if not isinstance(statement, Mapping):
        raise PolicyError(f"{where}: a statement must be an object, got {type(statement).__name__}")
    unknown = set(statement) - _STATEMENT_KEYS
    if unknown:
        raise PolicyError(f"{where}: unknown statement element(s) {sorted(unknown)}")
    effect = statement.get("Effect")
    if effect not in ("Allow", "Deny"):
        raise PolicyError(f"{where}: Effect must be 'Allow' or 'Deny', got {effect!r}")
    if "NotPrincipal" in statement:
        raise PolicyError(f"{where}: NotPrincipal is not supported by the local evaluator")

    # Every element is read even when an earlier one already rules the statement out, so a policy the
    # evaluator cannot read exactly is reported on every call, not only on the calls it happens to reach.
    principal_match: Literal["direct", "account"] | None = "direct"
    if caller is None:
        if "Principal" in statement:
            raise PolicyError(f"{where}: an identity-based policy cannot have a Principal element")
    else:
        if "Principal" not in statement:
            raise PolicyError(f"{where}: a resource-based policy statement needs a Principal element")
        principal_match = _match_principal(statement["Principal"], caller, where)
    action = _matches_action(statement, request.action, where)
    resource = _matches_resource(statement, request.resource, where, version, required=caller is None)
    conditions = _conditions_hold(statement.get("Condition", {}), request.keys, where, version)
    if principal_match is None or not (action and resource and conditions):
        return
    if effect == "Deny":
        verdict.deny = True
    elif principal_match == "direct":
        verdict.allow = True
    else:
        verdict.account_allow = True


# --------------------------------------------------------------------------------------------- elements


def _strings(value: Any, where: str, element: str) -> list[str]:
    """A string-or-list element as a list of strings."""
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not values or not all(isinstance(v, str) for v in values):
        raise PolicyError(
            f"{where}: {element} must be a string or a non-empty list of strings (intrinsics resolved), "
            f"got {value!r}"
        )
    return values


def _matches_action(statement: Mapping[str, Any], action: str, where: str) -> bool:
    if ("Action" in statement) == ("NotAction" in statement):
        raise PolicyError(f"{where}: exactly one of Action and NotAction is required")
    element = "Action" if "Action" in statement else "NotAction"
    patterns = _strings(statement[element], where, element)
    hit = any(_glob(pattern, action, ignore_case=True) for pattern in patterns)
    return hit if element == "Action" else not hit


def _matches_resource(
    statement: Mapping[str, Any], resource: str, where: str, version: str, *, required: bool
) -> bool:
    has_resource, has_not = "Resource" in statement, "NotResource" in statement
    if has_resource and has_not:
        raise PolicyError(f"{where}: Resource and NotResource together")
    if not (has_resource or has_not):
        if required:
            raise PolicyError(f"{where}: an identity-based policy statement needs Resource or NotResource")
        return True  # a resource policy statement without Resource applies to the resource it is attached to
    element = "Resource" if has_resource else "NotResource"
    patterns = _strings(statement[element], where, element)
    hit = any(_matches_arn_pattern(_no_variables(p, where, version), resource, where, element) for p in patterns)
    return hit if has_resource else not hit


def _matches_arn_pattern(pattern: str, arn: str, where: str, element: str) -> bool:
    """Resource matching: case-sensitive, ``*`` and ``?`` wildcards within the colon-separated segments.

    AWS documents that a ``*`` ending a pattern segment may run past colons; one inside a segment may not
    (as far as documented). Where that reading and a plain whole-string match disagree, AWS's answer is not
    certain here, so :class:`PolicyError` is raised rather than guessing (either guess would be kinder than
    AWS for one of Allow and Deny).
    """
    if pattern == "*":
        return True
    documented = _segment_glob(pattern, arn)
    if documented != _glob(pattern, arn, ignore_case=False):
        raise PolicyError(
            f"{where}: {element} pattern {pattern!r} matches {arn!r} only if a '*' inside a segment crosses "
            "a colon; end the segment with '*' or write one pattern per segment"
        )
    return documented


def _segment_glob(pattern: str, arn: str) -> bool:
    """Wildcards stay within a colon-separated segment, except a ``*`` ending its segment."""
    return _segment_regex(pattern).fullmatch(arn) is not None


@functools.lru_cache(maxsize=4096)
def _segment_regex(pattern: str) -> re.Pattern[str]:
    """The compiled regex of :func:`_segment_glob` (policies repeat a few patterns on every call)."""
    segments = []
    for segment in pattern.split(":"):
        parts = []
        for index, char in enumerate(segment):
            if char == "*":
                parts.append(".*" if index == len(segment) - 1 else "[^:]*")
            elif char == "?":
                parts.append("[^:]")
            else:
                parts.append(re.escape(char))
        segments.append("".join(parts))
    return re.compile(":".join(segments), re.DOTALL)


def _arn_condition_match(pattern: str, value: str, where: str, operator: str, key: str) -> bool:
    """ArnEquals/ArnLike: each of the six ARN parts matched on its own, with wildcards.

    Where that and a whole-string match disagree (a ``*`` that would have to cross a colon), raise.
    """
    pattern_parts, value_parts = pattern.split(":", 5), value.split(":", 5)
    if len(pattern_parts) == 6 and len(value_parts) == 6:
        parts = all(_glob(p, v, ignore_case=False) for p, v in zip(pattern_parts, value_parts, strict=True))
    else:
        parts = False
    if parts != _glob(pattern, value, ignore_case=False):
        raise PolicyError(
            f"{where}: {operator} {key}: {pattern!r} matches {value!r} only if a '*' crosses an ARN part; "
            "write one pattern per ARN part"
        )
    return parts


def _glob(pattern: str, value: str, *, ignore_case: bool) -> bool:
    """IAM wildcard matching over the whole string: ``*`` any run of characters, ``?`` exactly one."""
    if "*" not in pattern and "?" not in pattern:
        return pattern.lower() == value.lower() if ignore_case else pattern == value
    return _glob_regex(pattern, ignore_case).fullmatch(value) is not None


@functools.lru_cache(maxsize=4096)
def _glob_regex(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    """The compiled regex of :func:`_glob`."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile(regex, re.DOTALL | (re.IGNORECASE if ignore_case else 0))


def _no_variables(value: str, where: str, version: str) -> str:
    """``value`` itself; policy variables (``${...}``, Version 2012-10-17 only) are not supported."""
    if version == "2012-10-17" and "${" in value:
        raise PolicyError(f"{where}: policy variables such as in {value!r} are not supported by the local evaluator")
    return value


# ------------------------------------------------------------------------------------------- principals


def _parse_principal(principal: Principal) -> _Caller:
    if not _ACCOUNT.match(principal.account):
        raise ValueError(f"Principal.account must be 12 digits, got {principal.account!r}")
    match = _IDENTITY_ARN.match(principal.arn)
    if match is None:
        raise ValueError(f"Principal.arn must be an IAM role, user or root ARN, got {principal.arn!r}")
    if match["account"] != principal.account:
        raise ValueError(f"Principal.arn {principal.arn!r} is not in account {principal.account}")
    kind: Literal["role", "user", "root"] = "root" if match["root"] else match["kind"]  # type: ignore[assignment]
    if principal.session_arn is not None:
        session = _SESSION_ARN.match(principal.session_arn)
        if (
            kind != "role"
            or session is None
            or session["account"] != principal.account
            or session["partition"] != match["partition"]
            or session["role"] != match["name"]
        ):
            raise ValueError(
                f"Principal.session_arn {principal.session_arn!r} is not a session of {principal.arn!r}"
            )
    return _Caller(match["partition"], principal.account, kind, principal.arn, principal.session_arn)


def _match_principal(element: Any, caller: _Caller, where: str) -> Literal["direct", "account"] | None:
    """How a ``Principal`` element names ``caller``: itself (``direct``), its account, or not at all."""
    if element == "*":
        return "direct"
    if not isinstance(element, Mapping) or not element:
        raise PolicyError(f"{where}: Principal must be '*' or an object, got {element!r}")
    best: Literal["direct", "account"] | None = None
    for kind, value in element.items():
        if kind in ("Service", "Federated"):
            _strings(value, where, f"Principal.{kind}")
            continue  # a service or a federated identity is never the caller here
        if kind != "AWS":
            raise PolicyError(f"{where}: Principal type {kind!r} is not supported by the local evaluator")
        for name in _strings(value, where, "Principal.AWS"):
            found = _match_aws_principal(name, caller, where)
            if found == "direct" or best is None:
                best = found or best
    return best


def _match_aws_principal(name: str, caller: _Caller, where: str) -> Literal["direct", "account"] | None:
    if name == "*":
        return "direct"
    if _ACCOUNT.match(name):
        return "account" if name == caller.account else None
    if "*" in name or "?" in name:
        raise PolicyError(f"{where}: wildcards in a principal ARN ({name!r}) are not valid in AWS")
    identity = _IDENTITY_ARN.match(name)
    if identity is not None:
        if identity["partition"] != caller.partition:
            return None
        if identity["root"]:
            return "account" if identity["account"] == caller.account else None
        return "direct" if name == caller.arn else None
    session = _SESSION_ARN.match(name)
    if session is not None:
        return "direct" if name == caller.session_arn else None
    if re.match(r"^arn:[a-z-]+:sts::\d{12}:federated-user/", name):
        return None  # a federated user is never the caller here
    raise PolicyError(f"{where}: principal {name!r} is not an account, role, user or session the evaluator knows")


# ------------------------------------------------------------------------------------------- conditions


def _condition_keys(
    caller: _Caller, context: Mapping[str, str | Sequence[str] | None | _Unknown]
) -> dict[str, _Values]:
    """Every known condition key (lower-cased, as AWS compares key names) to its values, ``None`` if absent."""
    keys: dict[str, _Values] = {key: None for key in REQUEST_KEYS}
    principal_keys: dict[str, tuple[str, ...] | None] = {
        "aws:principalarn": (caller.arn,),
        "aws:principalaccount": (caller.account,),
        "aws:principaltype": ({"role": "AssumedRole", "user": "User", "root": "Account"}[caller.kind],),
        "aws:username": (caller.arn.rsplit("/", 1)[1],) if caller.kind == "user" else None,
        "aws:principalisawsservice": ("false",),
    }
    keys.update(principal_keys)
    for key, value in context.items():
        name = key.lower()
        values: _Values
        if value is None or isinstance(value, _Unknown):
            values = value
        elif isinstance(value, str):
            values = (value,)
        elif isinstance(value, Sequence) and all(isinstance(v, str) for v in value):
            values = tuple(value)
        else:
            raise ValueError(f"context[{key!r}] must be a string, a list of strings or None, got {value!r}")
        if name in _PRINCIPAL_KEYS and values != principal_keys[name]:
            raise ValueError(f"context[{key!r}] contradicts the principal ({principal_keys[name]!r})")
        keys[name] = values
    return keys


_OPERATORS = {
    "StringEquals": ("string", False),
    "StringNotEquals": ("string", True),
    "StringEqualsIgnoreCase": ("string_ic", False),
    "StringNotEqualsIgnoreCase": ("string_ic", True),
    "StringLike": ("like", False),
    "StringNotLike": ("like", True),
    "ArnEquals": ("arn", False),
    "ArnLike": ("arn", False),
    "ArnNotEquals": ("arn", True),
    "ArnNotLike": ("arn", True),
    "Bool": ("bool", False),
    "NumericEquals": ("num_eq", False),
    "NumericNotEquals": ("num_eq", True),
    "NumericLessThan": ("num_lt", False),
    "NumericLessThanEquals": ("num_le", False),
    "NumericGreaterThan": ("num_gt", False),
    "NumericGreaterThanEquals": ("num_ge", False),
    "IpAddress": ("ip", False),
    "NotIpAddress": ("ip", True),
}
#: Operators AWS has that the evaluator does not implement (a clear PolicyError rather than "unknown").
_UNSUPPORTED = frozenset(
    {
        "DateEquals",
        "DateNotEquals",
        "DateLessThan",
        "DateLessThanEquals",
        "DateGreaterThan",
        "DateGreaterThanEquals",
        "BinaryEquals",
    }
)


def _conditions_hold(
    block: Any, keys: Mapping[str, _Values], where: str, version: str
) -> bool:
    """Every operator and every key of a ``Condition`` block holds (AND); values of one key are ORed."""
    if not isinstance(block, Mapping):
        raise PolicyError(f"{where}: Condition must be an object, got {block!r}")
    holds = True
    # Evaluate every entry even after one fails, so a policy the evaluator cannot read is always reported.
    for operator, entries in block.items():
        if not isinstance(entries, Mapping) or not entries:
            raise PolicyError(f"{where}: Condition operator {operator!r} needs an object of keys to values")
        for key, value in entries.items():
            if not isinstance(key, str):
                raise PolicyError(f"{where}: condition key {key!r} must be a string")
            policy_values = _condition_values(value, where, operator, key, version)
            if not _condition_holds(operator, key, policy_values, keys, where):
                holds = False
    return holds


def _condition_values(value: Any, where: str, operator: str, key: str, version: str) -> list[str]:
    values = value if isinstance(value, list) else [value]
    out = []
    for item in values:
        if isinstance(item, bool):
            out.append("true" if item else "false")
        elif isinstance(item, (int, float)):
            out.append(str(item))
        elif isinstance(item, str):
            out.append(_no_variables(item, where, version))
        else:
            raise PolicyError(f"{where}: {operator} {key}: value {item!r} is not a string (intrinsics resolved?)")
    if not out:
        raise PolicyError(f"{where}: {operator} {key}: no value")
    return out


def _condition_holds(
    operator: str,
    key: str,
    policy_values: list[str],
    keys: Mapping[str, _Values],
    where: str,
) -> bool:
    """Whether one condition (``operator``, ``key``, ``policy_values``) holds on the request's condition
    ``keys`` (lower-cased names). Raises PolicyError where AWS's answer cannot be known or given locally."""
    qualifier, base, if_exists = _parse_operator(operator, where)
    request_values = _request_values(key, keys, where)
    if base == "Null":
        return _bool_value(policy_values, where, operator, key) == (request_values is None)
    family, negated = _OPERATORS[base]
    if isinstance(request_values, _Unknown):
        # Either answer could be kinder than AWS (an Allow that should not match, a Deny that should).
        raise PolicyError(
            f"{where}: {operator} on condition key {key!r}: AWS sets it on this request to a value the local "
            "runtime cannot know"
        )
    if request_values is None:
        return _holds_on_absent_key(qualifier, if_exists, negated, operator, key, where)

    def one(request_value: str) -> bool:
        hit = any(_compare(family, policy, request_value, where, operator, key) for policy in policy_values)
        return not hit if negated else hit

    if qualifier == "ForAnyValue":
        return any(one(v) for v in request_values)
    if qualifier == "ForAllValues":
        return all(one(v) for v in request_values)
    if len(request_values) != 1:
        raise PolicyError(
            f"{where}: {operator} on multivalued key {key!r} needs ForAnyValue: or ForAllValues:"
        )
    return one(request_values[0])


def _parse_operator(operator: str, where: str) -> tuple[str, str, bool]:
    """(set qualifier or "", base operator without ``IfExists``, whether ``IfExists`` was given) of a
    condition operator such as ``ForAnyValue:StringLikeIfExists``; raises PolicyError for an unknown,
    invalid or locally unsupported one."""
    qualifier, _, base = operator.rpartition(":")
    if qualifier not in ("", "ForAnyValue", "ForAllValues"):
        raise PolicyError(f"{where}: unknown condition set operator {qualifier!r} in {operator!r}")
    if_exists = base.endswith("IfExists")
    if if_exists:
        base = base[: -len("IfExists")]
    if base == "Null" and (qualifier or if_exists):
        raise PolicyError(f"{where}: {operator!r} is not a valid condition operator")
    if base in _UNSUPPORTED:
        raise PolicyError(f"{where}: condition operator {operator!r} is not supported by the local evaluator")
    if base != "Null" and base not in _OPERATORS:
        raise PolicyError(f"{where}: unknown condition operator {operator!r}")
    return qualifier, base, if_exists


def _request_values(key: str, keys: Mapping[str, _Values], where: str) -> _Values:
    """The request's values of condition ``key`` (names are case-insensitive); a key the caller did not
    describe is refused rather than taken as absent, which could be kinder than AWS."""
    name = key.lower()
    if name not in keys:
        raise PolicyError(
            f"{where}: condition key {key!r} is not known to the local evaluator for this request; "
            "pass its value (or None if AWS would not set it) in context"
        )
    return keys[name]


def _holds_on_absent_key(qualifier: str, if_exists: bool, negated: bool, operator: str, key: str,
                         where: str) -> bool:
    """Whether a condition holds when the request does not carry its key at all (AWS's documented rules)."""
    if if_exists:
        return True
    if qualifier == "ForAllValues":
        return True  # AWS: ForAllValues holds over an empty set of request values
    if qualifier == "ForAnyValue":
        if negated:
            # AWS documents both "ForAnyValue is false without values" and "a negated operator holds on
            # an absent key"; which one wins is not documented, so refuse rather than guess.
            raise PolicyError(f"{where}: {operator} on absent key {key!r} has no documented result")
        return False
    return negated  # AWS: an absent key fails a condition, and satisfies its negation


def _compare(family: str, policy: str, value: str, where: str, operator: str, key: str) -> bool:
    """Whether one request value matches one policy value under the (positive) operator ``family``."""
    if family == "string":
        return policy == value
    if family == "string_ic":
        return policy.casefold() == value.casefold()
    if family == "like":
        return _glob(policy, value, ignore_case=False)
    if family == "arn":
        return _arn_condition_match(policy, value, where, operator, key)
    if family == "bool":
        return _bool_value([policy], where, operator, key) == (value.lower() == "true")
    if family.startswith("num_"):
        left, right = _number(value, where, operator, key), _number(policy, where, operator, key)
        return {
            "num_eq": left == right,
            "num_lt": left < right,
            "num_le": left <= right,
            "num_gt": left > right,
            "num_ge": left >= right,
        }[family]
    if family == "ip":
        try:
            return ipaddress.ip_address(value) in ipaddress.ip_network(policy, strict=False)
        except ValueError as exc:
            raise PolicyError(f"{where}: {operator} {key}: {exc}") from exc
    raise AssertionError(family)


def _bool_value(values: Iterable[str], where: str, operator: str, key: str) -> bool:
    values = list(values)
    if len(values) != 1 or values[0].lower() not in ("true", "false"):
        raise PolicyError(f"{where}: {operator} {key} needs one value 'true' or 'false', got {values!r}")
    return values[0].lower() == "true"


def _number(text: str, where: str, operator: str, key: str) -> Decimal:
    try:
        return Decimal(text)
    except InvalidOperation as exc:
        raise PolicyError(f"{where}: {operator} {key}: {text!r} is not a number") from exc


def _check_action(action: str) -> None:
    if not re.fullmatch(r"[A-Za-z0-9-]+:[A-Za-z0-9]+", action):
        raise ValueError(f"action must be 'service:Operation', got {action!r}")
