"""SSM Parameter Store for the local runtime, served by the :class:`~cdk_replication.local.gateway.Gateway`.

The local deploy puts each ``AWS::SSM::Parameter`` of the assembly into a :class:`ParameterStore` (one namespace
per account and region, as on AWS), and the gateway serves it on SSM's JSON 1.1 protocol (``X-Amz-Target:
AmazonSSM.<Operation>``, signed for service ``ssm``): ``GetParameter``, ``GetParameters`` and ``PutParameter``.
Every call is evaluated by the gateway's IAM like a DynamoDB call: action ``ssm:<Operation>`` on the parameter
ARN ``arn:<partition>:ssm:<region>:<account>:parameter/<name without its leading slash>``, the account being
the signer's and the region the signing region (standard parameters have no resource policy, so another
account's parameter is never reachable). A parameter the caller may read but that does not exist is
``ParameterNotFound``; a refusal is ``AccessDeniedException`` with AWS's message.

Not modelled (refused, never served kinder than AWS): ``SecureString`` (no KMS locally), parameter ARNs of
another account or region (shared advanced-tier parameters), labels and versions in names (``name:3``),
``GetParametersByPath``, parameter policies and tags.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from cdk_replication.local.intrinsics import partition_of

#: Standard tier: a value of at most 4 KB (AWS counts characters; the values here are ASCII-safe JSON).
MAX_STANDARD_VALUE = 4096
#: The parameter types served (``SecureString`` needs KMS, which is not emulated).
SERVED_TYPES = ("String", "StringList")
_PARAMETER_ARN = re.compile(
    r"^arn:(?P<partition>[^:]+):ssm:(?P<region>[^:]*):(?P<account>\d{12}):parameter/(?P<name>.+)$")
_NAME = re.compile(r"^[a-zA-Z0-9_.\-/]{1,2048}$")

#: ``authorize(action, resource ARN)``: raises the gateway's AccessDenied error unless the caller may.
Authorize = Callable[[str, str], None]


class ParameterError(Exception):
    """An SSM error answer: ``code`` is SSM's error code (``ParameterNotFound``, ``ValidationException``, ...)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Parameter:
    """One stored parameter version.

    Attributes:
        name: the parameter name as written (``/cdk-replication/Orders/status``).
        value: its value.
        type: ``String`` or ``StringList``.
        version: 1 for the first value, +1 per overwrite.
        modified: when this version was written, in seconds since the epoch.
        arn: the parameter ARN.
    """

    name: str
    value: str
    type: str
    version: int
    modified: float
    arn: str

    def as_response(self) -> dict[str, Any]:
        """The ``Parameter`` element of SSM's GetParameter answer."""
        return {"Name": self.name, "Type": self.type, "Value": self.value, "Version": self.version,
                "LastModifiedDate": self.modified, "ARN": self.arn, "DataType": "text"}


def parameter_arn(name: str, region: str, account: str) -> str:
    """The ARN of parameter ``name`` in ``region`` and ``account`` (AWS drops the name's leading slash)."""
    partition, _ = partition_of(region)
    return f"arn:{partition}:ssm:{region}:{account}:parameter/{name.lstrip('/')}"


class ParameterStore:
    """Parameters by (account, region, name); safe to use from many threads."""

    def __init__(self) -> None:
        self._parameters: dict[tuple[str, str, str], Parameter] = {}
        self._lock = threading.Lock()

    def put(self, name: str, value: str, *, region: str, account: str, type: str = "String",
            overwrite: bool = True) -> Parameter:
        """Store a value (a new version when the parameter exists).

        Args:
            name: the parameter name.
            value: its value (at most :data:`MAX_STANDARD_VALUE` characters: standard tier).
            region: the parameter's region.
            account: the parameter's account (12 digits).
            type: ``String`` (default) or ``StringList``.
            overwrite: replace an existing value (default ``True``, what CloudFormation does on update);
                ``False`` refuses with ``ParameterAlreadyExists`` as PutParameter does.

        Raises:
            ParameterError: the name, type or value is not valid, or the parameter exists and ``overwrite`` is
                ``False``.
        """
        _check_name(name)
        _check_new_name(name)
        if type not in SERVED_TYPES:
            raise ParameterError("ValidationException", f"local runtime: parameter type {type!r} is not served "
                                                        f"(only {', '.join(SERVED_TYPES)}; SecureString needs KMS)")
        if len(value) > MAX_STANDARD_VALUE:
            raise ParameterError("ValidationException", f"1 validation error detected: Value at 'value' failed to "
                                                        "satisfy constraint: Member must have length less than or "
                                                        f"equal to {MAX_STANDARD_VALUE} (standard tier)")
        key = (account, region, name)
        with self._lock:
            existing = self._parameters.get(key)
            if existing is not None and not overwrite:
                raise ParameterError("ParameterAlreadyExists", "The parameter already exists. To overwrite this "
                                                               "value, set the overwrite option in the request to "
                                                               "true.")
            stored = Parameter(name, value, type, (existing.version if existing else 0) + 1, time.time(),
                               parameter_arn(name, region, account))
            self._parameters[key] = stored
        return stored

    def get(self, name: str, *, region: str, account: str) -> Parameter | None:
        """The current version of a parameter, or ``None`` when there is none."""
        return self._parameters.get((account, region, name))

    def delete(self, name: str, *, region: str, account: str) -> None:
        """Delete a parameter (what CloudFormation does with a removed one); no error when there is none."""
        with self._lock:
            self._parameters.pop((account, region, name), None)

    def names(self, *, region: str | None = None, account: str | None = None) -> list[str]:
        """The stored parameter names (narrowed by region and account when given), sorted."""
        return sorted(n for a, r, n in self._parameters if region in (None, r) and account in (None, a))


class ParameterService:
    """SSM's JSON 1.1 API over a :class:`ParameterStore`, for :meth:`Gateway.add_service`.

    Args:
        store: the parameters served.
    """

    #: The ``X-Amz-Target`` prefix of SSM's operations.
    target_prefix = "AmazonSSM."
    #: SSM's name in a credential scope and in ``AWS_ENDPOINT_URL_SSM``.
    signing_name = "ssm"

    def __init__(self, store: ParameterStore) -> None:
        self.store = store

    def serve(self, operation: str, request: Mapping[str, Any], *, region: str, account: str,
              authorize: Authorize) -> dict[str, Any]:
        """The answer document of one SSM call by a caller of ``account`` signed for ``region``.

        Raises:
            ParameterError: SSM's error for the call (the gateway raises its own AccessDenied through
                ``authorize``).
        """
        if operation == "GetParameter":
            name = self._own_name(request.get("Name"), region, account)
            authorize("ssm:GetParameter", parameter_arn(name, region, account))
            found = self.store.get(name, region=region, account=account)
            if found is None:
                raise ParameterError("ParameterNotFound", f"Parameter {name} not found.")
            return {"Parameter": found.as_response()}
        if operation == "GetParameters":
            return self._get_parameters(request, region, account, authorize)
        if operation == "PutParameter":
            return self._put_parameter(request, region, account, authorize)
        raise ParameterError("ValidationException", f"local runtime: SSM's {operation} is not served (only "
                                                    "GetParameter, GetParameters, PutParameter)")

    def _put_parameter(self, request: Mapping[str, Any], region: str, account: str,
                       authorize: Authorize) -> dict[str, Any]:
        """PutParameter: a name (never an ARN), and a ``Type`` when it creates the parameter (an overwrite may
        leave it out: the parameter keeps its type)."""
        named = request.get("Name")
        if isinstance(named, str) and named.startswith("arn:"):
            # AWS: "You can't enter the Amazon Resource Name (ARN) for a parameter, only the parameter name itself."
            raise ParameterError("ValidationException", f"Parameter name {named!r}: an ARN is not accepted by "
                                                        "PutParameter, only the parameter name itself")
        name = self._own_name(named, region, account)
        authorize("ssm:PutParameter", parameter_arn(name, region, account))
        existing = self.store.get(name, region=region, account=account)
        kind = request.get("Type")
        if kind is None and existing is None:
            raise ParameterError("ValidationException", "A parameter type is required when you create a parameter.")
        stored = self.store.put(name, str(request.get("Value", "")), region=region, account=account,
                                type=str(kind if kind is not None else existing.type),  # type: ignore[union-attr]
                                overwrite=bool(request.get("Overwrite", False)))
        return {"Version": stored.version, "Tier": "Standard"}

    def _get_parameters(self, request: Mapping[str, Any], region: str, account: str,
                        authorize: Authorize) -> dict[str, Any]:
        """GetParameters: every name is authorized first (one refusal fails the call, as on AWS); names that
        do not exist are listed in ``InvalidParameters``."""
        names = request.get("Names")
        if not isinstance(names, list) or not 1 <= len(names) <= 10:
            raise ParameterError("ValidationException", "1 validation error detected: Value at 'names' failed to "
                                                        "satisfy constraint: Member must have length between 1 "
                                                        "and 10")
        own = [self._own_name(n, region, account) for n in names]
        for name in own:
            authorize("ssm:GetParameters", parameter_arn(name, region, account))
        found, invalid = [], []
        for asked, name in zip(names, own):
            parameter = self.store.get(name, region=region, account=account)
            (found.append(parameter.as_response()) if parameter else invalid.append(asked))
        return {"Parameters": found, "InvalidParameters": invalid}

    def _own_name(self, named: Any, region: str, account: str) -> str:
        """The parameter name a request means: a name, or an ARN of the caller's own account and region."""
        if not isinstance(named, str):
            raise ParameterError("ValidationException", "1 validation error detected: Value null at 'name' "
                                                        "failed to satisfy constraint: Member must not be null")
        match = _PARAMETER_ARN.match(named)
        if match is None:
            _check_name(named)
            return named
        if (match["partition"], match["region"], match["account"]) != (partition_of(region)[0], region, account):
            raise ParameterError("ValidationException", f"local runtime: {named} is a parameter of another account "
                                                        "or region; shared (advanced-tier) parameters are not "
                                                        "modelled")
        # The ARN drops a leading slash: "/a/b" and "a/b" share it, and the slashed name is the usual one.
        slashed = "/" + match["name"]
        return slashed if self.store.get(slashed, region=region, account=account) else match["name"]


def _check_name(name: str) -> None:
    """SSM's name rules that matter here: allowed characters, a version or label selector is not served."""
    if ":" in name:
        raise ParameterError("ValidationException", f"local runtime: parameter selectors ({name!r}) are not "
                                                    "modelled; name the parameter without a version or label")
    if not _NAME.match(name):
        raise ParameterError("ValidationException", f"Parameter name {name!r}: only a-zA-Z0-9_.-/ are allowed, "
                                                    "1 to 2048 characters")


def _check_new_name(name: str) -> None:
    """SSM's rules for the name of a parameter being created: a hierarchy starts with ``/``, and the first
    level may not start with ``aws`` or ``ssm`` (case-insensitive; ``/aws/...`` is AWS's own public tree)."""
    if "/" in name and not name.startswith("/"):
        raise ParameterError("ValidationException", "Parameter name must be a fully qualified name.")
    first = name.lstrip("/").lower()
    if first.startswith(("aws", "ssm")):
        if name.lower().startswith("/aws/"):
            raise ParameterError("AccessDeniedException", f"No access to reserved parameter name: {name}.")
        raise ParameterError("ValidationException", 'Parameter name: can\'t be prefixed with "aws" or "ssm" '
                                                    "(case-insensitive).")
