"""Secrets Manager for the local runtime, served by the :class:`~cdk_replication.local.gateway.Gateway`.

The local deploy puts each ``AWS::SecretsManager::Secret`` of the assembly into a :class:`SecretStore` (one
namespace per account and region, as on AWS): its ``SecretString``, or a value generated as
``GenerateSecretString`` asks (length, excluded characters and classes). The gateway serves
``GetSecretValue`` on Secrets Manager's JSON 1.1 protocol (``X-Amz-Target: secretsmanager.GetSecretValue``,
signed for service ``secretsmanager``; boto3 reaches it through ``AWS_ENDPOINT_URL_SECRETS_MANAGER``). Every call
is evaluated by the gateway's IAM: action ``secretsmanager:GetSecretValue`` on the secret's full ARN
(``arn:<partition>:secretsmanager:<region>:<account>:secret:<name>-<6 random characters>``), whether the
request names it by name, full ARN or ARN without the suffix (a partial ARN, which the replicator uses for a
generated secret) -- as AWS evaluates it. A secret the caller may not read is ``AccessDeniedException``; one
that does not exist is ``ResourceNotFoundException`` (asked by ARN, IAM is evaluated first, as on AWS).

Not modelled (refused, never served kinder than AWS): resource policies (so another account's secret is never
reachable), KMS keys (``KmsKeyId``), versions and staging labels other than ``AWSCURRENT``, rotation,
``SecretBinary`` values in templates, and every other operation.
"""

from __future__ import annotations

import re
import secrets as random_source
import string
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from cdk_replication.local.intrinsics import partition_of

#: ``authorize(action, resource ARN)``: raises the gateway's AccessDenied error unless the caller may.
Authorize = Callable[[str, str], None]
_SECRET_ARN = re.compile(
    r"^arn:(?P<partition>[^:]+):secretsmanager:(?P<region>[^:]*):(?P<account>\d{12}):secret:(?P<name>.+)$")
#: GenerateSecretString's default length and the punctuation it may use (AWS's documented set).
DEFAULT_LENGTH = 32
PUNCTUATION = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"


class SecretError(Exception):
    """A Secrets Manager error answer: ``code`` is its error code (``ResourceNotFoundException``, ...)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Secret:
    """One stored secret (its current version).

    Attributes:
        name: the secret's name.
        arn: its full ARN (the name, ``-`` and six random characters).
        value: its ``SecretString``.
        created: when it was stored, in seconds since the epoch.
    """

    name: str
    arn: str
    value: str
    created: float

    def as_response(self) -> dict[str, Any]:
        """Secrets Manager's GetSecretValue answer."""
        return {"ARN": self.arn, "Name": self.name, "SecretString": self.value, "VersionId": "local-current",
                "VersionStages": ["AWSCURRENT"], "CreatedDate": self.created}


def generate_value(spec: Mapping[str, Any]) -> str:
    """A value as ``GenerateSecretString`` describes it (``PasswordLength``, default 32; ``ExcludeCharacters``,
    ``ExcludePunctuation``, ``ExcludeNumbers``, ``ExcludeUppercase``, ``ExcludeLowercase``, ``IncludeSpace``).

    Raises:
        SecretError: ``SecretStringTemplate``/``GenerateStringKey`` (a JSON secret) is not modelled, or nothing
            is left to draw from.
    """
    if spec.get("SecretStringTemplate") or spec.get("GenerateStringKey"):
        raise SecretError("ValidationException", "local runtime: SecretStringTemplate/GenerateStringKey (a "
                                                 "generated JSON secret) is not modelled")
    alphabet = ""
    for flag, chars in (("ExcludeLowercase", string.ascii_lowercase), ("ExcludeUppercase", string.ascii_uppercase),
                        ("ExcludeNumbers", string.digits), ("ExcludePunctuation", PUNCTUATION)):
        if not _true(spec.get(flag)):
            alphabet += chars
    if _true(spec.get("IncludeSpace")):
        alphabet += " "
    excluded = set(str(spec.get("ExcludeCharacters", "")))
    alphabet = "".join(c for c in alphabet if c not in excluded)
    if not alphabet:
        raise SecretError("ValidationException", "GenerateSecretString excludes every character")
    length = int(spec.get("PasswordLength", DEFAULT_LENGTH))
    return "".join(random_source.choice(alphabet) for _ in range(length))


def _true(value: Any) -> bool:
    """A template boolean (``true`` or ``"true"``)."""
    return value is True or str(value).lower() == "true"


class SecretStore:
    """Secrets by (account, region, name); safe to use from many threads."""

    def __init__(self) -> None:
        self._secrets: dict[tuple[str, str, str], Secret] = {}
        self._lock = threading.Lock()

    def put(self, name: str, value: str, *, region: str, account: str) -> Secret:
        """Store ``value`` as the current value of ``name`` (created with a random ARN suffix, kept after)."""
        key = (account, region, name)
        with self._lock:
            existing = self._secrets.get(key)
            arn = existing.arn if existing else _arn(name, region, account)
            stored = Secret(name, arn, value, time.time())
            self._secrets[key] = stored
        return stored

    def get(self, name: str, *, region: str, account: str) -> Secret | None:
        """The secret named ``name``, or ``None``."""
        return self._secrets.get((account, region, name))

    def find(self, secret_id: str, *, region: str, account: str) -> tuple[str, Secret | None]:
        """The ARN IAM evaluates and the secret for a ``SecretId`` (a name, a full ARN or a partial ARN).

        Raises:
            SecretError: the ARN is of another account or region (no resource policies here).
        """
        match = _SECRET_ARN.match(secret_id)
        if match is None:
            found = self.get(secret_id, region=region, account=account)
            return (found.arn if found else _arn(secret_id, region, account, suffix="??????")), found
        if (match["partition"], match["region"], match["account"]) != (partition_of(region)[0], region, account):
            raise SecretError("AccessDeniedException", f"local runtime: {secret_id} is a secret of another account "
                                                       "or region; secret resource policies are not modelled")
        named = match["name"]
        with self._lock:
            for (acct, reg, name), secret in self._secrets.items():
                if (acct, reg) == (account, region) and named in (name, secret.arn.rsplit(":", 1)[1]):
                    return secret.arn, secret
        # Unknown: IAM is evaluated on the ARN as asked (a partial one may still match a policy's "-??????").
        return secret_id, None


def _arn(name: str, region: str, account: str, suffix: str | None = None) -> str:
    partition, _ = partition_of(region)
    tail = suffix or "".join(random_source.choice(string.ascii_letters + string.digits) for _ in range(6))
    return f"arn:{partition}:secretsmanager:{region}:{account}:secret:{name}-{tail}"


class SecretService:
    """Secrets Manager's JSON 1.1 API over a :class:`SecretStore`, for :meth:`Gateway.add_service`.

    Args:
        store: the secrets served.
    """

    #: The ``X-Amz-Target`` prefix of Secrets Manager's operations.
    target_prefix = "secretsmanager."
    #: Its name in a credential scope.
    signing_name = "secretsmanager"
    #: boto3's variable for its endpoint (the service id "Secrets Manager": ``AWS_ENDPOINT_URL_SECRETS_MANAGER``).
    endpoint_env_name = "AWS_ENDPOINT_URL_SECRETS_MANAGER"

    def __init__(self, store: SecretStore) -> None:
        self.store = store

    def serve(self, operation: str, request: Mapping[str, Any], *, region: str, account: str,
              authorize: Authorize) -> dict[str, Any]:
        """The answer document of one call by a caller of ``account`` signed for ``region``.

        Raises:
            SecretError: Secrets Manager's error for the call (AccessDenied is the gateway's, via ``authorize``).
        """
        if operation != "GetSecretValue":
            raise SecretError("ValidationException", f"local runtime: Secrets Manager's {operation} is not served "
                                                     "(only GetSecretValue)")
        secret_id = request.get("SecretId")
        if not isinstance(secret_id, str) or not secret_id:
            raise SecretError("ValidationException", "1 validation error detected: Value null at 'secretId' failed "
                                                     "to satisfy constraint: Member must not be null")
        for unsupported in ("VersionId", "VersionStage"):
            if request.get(unsupported) not in (None, "AWSCURRENT"):
                raise SecretError("ValidationException", f"local runtime: {unsupported} is not modelled")
        arn, secret = self.store.find(secret_id, region=region, account=account)
        authorize("secretsmanager:GetSecretValue", arn)
        if secret is None:
            raise SecretError("ResourceNotFoundException", "Secrets Manager can't find the specified secret.")
        return secret.as_response()
