"""The HMAC key of masked replicas: read from Secrets Manager, cached per container, and the compiled transform
of each target.

The key is the secret's value as bytes (``SecretString`` UTF-8 encoded, or ``SecretBinary``). It is read at
cold start (a missing ``secretsmanager:GetSecretValue`` permission fails the cold start, before any record is
written) and then at most once per refresh period (:data:`DEFAULT_REFRESH_SECONDS`, 15 minutes) per
container: a rotated secret reaches every container within that period. A rotation changes every hashed value,
so a replica keyed or joined by hashed values must be rebuilt after it (docs/architecture.md "Replica
transforms", key rotation); the refresh only bounds how long old containers keep writing with the old key.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from .config import Config, TableRef
from .transform import Transform

#: How long a key read from Secrets Manager is used before it is read again, in seconds.
DEFAULT_REFRESH_SECONDS = 900.0

_cache: dict[str, tuple[bytes, float]] = {}
_lock = threading.Lock()


def secret_region(secret_arn: str) -> str:
    """The region of a secret ARN (``arn:<partition>:secretsmanager:<region>:<account>:secret:<name>``)."""
    parts = secret_arn.split(":")
    if len(parts) < 7 or parts[2] != "secretsmanager" or not parts[3]:
        raise ValueError(f"{secret_arn!r} is not a Secrets Manager secret ARN")
    return parts[3]


def load_hmac_key(
    client: Any,
    secret_arn: str,
    refresh_seconds: float = DEFAULT_REFRESH_SECONDS,
    clock: Callable[[], float] = time.monotonic,
) -> bytes:
    """The secret's value as bytes, cached per container for ``refresh_seconds`` (default 900 s).

    ``client`` is a boto3 Secrets Manager client of the secret's region. Errors (access denied, no such
    secret) propagate: the caller fails rather than writing unmasked or differently masked values.
    """
    now = clock()
    with _lock:
        cached = _cache.get(secret_arn)
    if cached is not None and now - cached[1] < refresh_seconds:
        return cached[0]
    response = client.get_secret_value(SecretId=secret_arn)
    if "SecretBinary" in response and response["SecretBinary"] is not None:
        key = bytes(response["SecretBinary"])
    else:
        key = str(response.get("SecretString") or "").encode("utf-8")
    if not key:
        raise ValueError(f"the secret {secret_arn} is empty: an HMAC key needs bytes")
    with _lock:
        _cache[secret_arn] = (key, now)
    return key


def forget_cached_keys() -> None:
    """Drop every cached key (tests; a container never needs it)."""
    with _lock:
        _cache.clear()


def _boto3_key_loader() -> Callable[[str], bytes]:
    """Reads keys with one Secrets Manager client per region (created on first use, kept)."""
    import boto3

    clients: dict[str, Any] = {}

    def load(secret_arn: str) -> bytes:
        region = secret_region(secret_arn)
        if region not in clients:
            clients[region] = boto3.session.Session().client("secretsmanager", region_name=region)
        return load_hmac_key(clients[region], secret_arn)

    return load


class TargetTransforms:
    """The compiled transform of each target of ``config`` (``None`` for an exact copy).

    Keys are read at construction (cold start) and re-read through :func:`load_hmac_key`'s cache; a changed
    key recompiles the target's transform. ``load_key`` (default: boto3 Secrets Manager) maps a secret ARN to
    its bytes.
    """

    def __init__(self, config: Config, load_key: Callable[[str], bytes] | None = None) -> None:
        self._config = config
        self._load_key = load_key or _boto3_key_loader()
        self._compiled: dict[TableRef, tuple[bytes | None, Transform]] = {}
        self._lock = threading.Lock()
        for target in config.targets:
            self.get(target)

    @property
    def any(self) -> bool:
        """Whether any target has a transform."""
        return any(t.transform is not None for t in self._config.targets)

    def get(self, target: TableRef) -> Transform | None:
        """``target``'s transform with the current key, or ``None`` (an exact copy)."""
        spec: Mapping[str, Any] | None = target.transform
        if spec is None:
            return None
        key = self._load_key(spec["secretArn"]) if Transform.needs_secret(spec) else None
        with self._lock:
            compiled = self._compiled.get(target)
            if compiled is None or compiled[0] != key:
                compiled = (key, Transform.from_spec(spec, key, self._config.key.names))
                self._compiled[target] = compiled
        return compiled[1]
