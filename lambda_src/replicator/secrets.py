"""The HMAC key of masked replicas: read from Secrets Manager, cached per container, and the compiled transform
of each target.

The key is the secret's value as bytes (``SecretString`` UTF-8 encoded, or ``SecretBinary``). It is read at
cold start and then at most once per refresh period (:data:`DEFAULT_REFRESH_SECONDS`, 15 minutes) per
container: a rotated secret reaches every container within that period. A rotation changes every hashed value,
so a replica keyed or joined by hashed values must be rebuilt after it, once every container has the new key
(docs/architecture.md "Replica transforms", key rotation).

A failed read never stops the targets that need no key (rule 6). A failed *refresh* keeps the key read before:
the values are still masked, only not yet with a rotated key; it is logged (WARNING, ``errorCode``) and counted
(metric ``KeyRefreshFailures``, dimensions ``SourceTable`` and ``ErrorCode``). With no key at all (the read at
cold start failed: a missing permission, a deleted secret), only that target's records fail: each is reported
with the error (``TargetTransforms.get`` raises :class:`KeyUnavailable`, which the modes turn into that target's
write failure), and the key is read again at most every :data:`RETRY_AFTER_FAILURE_SECONDS`.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from .config import Config, TableRef
from .retry import error_code
from .telemetry import LOGGER_NAME, emf_line, log
from .transform import Transform

#: How long a key read from Secrets Manager is used before it is read again, in seconds.
DEFAULT_REFRESH_SECONDS = 900.0
#: After a failed read, how long a container waits before reading the key again, in seconds (meanwhile it
#: uses the key it had, or reports the target's records as failed): one read per 30 s, not one per item.
RETRY_AFTER_FAILURE_SECONDS = 30.0
#: Metric counting failed key reads that kept the previous key.
KEY_REFRESH_FAILURES = "KeyRefreshFailures"
#: Failure code of a target's write when no HMAC key could ever be read.
HMAC_KEY_UNAVAILABLE = "HmacKeyUnavailable"

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


class KeyUnavailable(Exception):
    """No HMAC key has been read for a secret: the records of targets that need it cannot be applied."""

    def __init__(self, secret_arn: str, code: str, message: str) -> None:
        super().__init__(f"the HMAC key of {secret_arn} could not be read ({code}): {message}")
        self.code = code


class TargetTransforms:
    """The compiled transform of each target of ``config`` (``None`` for an exact copy).

    Keys are read at construction (cold start) and re-read through :func:`load_hmac_key`'s cache; a changed
    key recompiles the target's transform. ``load_key`` (default: boto3 Secrets Manager) maps a secret ARN to
    its bytes; ``clock`` (default ``time.monotonic``, seconds) paces reads after a failure.
    """

    def __init__(
        self,
        config: Config,
        load_key: Callable[[str], bytes] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._config = config
        self._load_key = load_key or _boto3_key_loader()
        self._clock = clock
        self._compiled: dict[TableRef, tuple[bytes | None, Transform]] = {}
        self._keys: dict[str, bytes] = {}  # per secret ARN: the last key read
        self._failed: dict[str, tuple[float, KeyUnavailable]] = {}  # per secret ARN: (read again after, error)
        self._lock = threading.Lock()
        for target in config.targets:
            try:
                self.get(target)
            except KeyUnavailable:
                pass  # logged; only this target's records fail until a read succeeds

    @property
    def any(self) -> bool:
        """Whether any target has a transform."""
        return any(t.transform is not None for t in self._config.targets)

    def get(self, target: TableRef) -> Transform | None:
        """``target``'s transform with the current key, or ``None`` (an exact copy)."""
        spec: Mapping[str, Any] | None = target.transform
        if spec is None:
            return None
        key = self._key(spec["secretArn"]) if Transform.needs_secret(spec) else None
        with self._lock:
            compiled = self._compiled.get(target)
            if compiled is None or compiled[0] != key:
                compiled = (key, Transform.from_spec(spec, key, self._config.key.names))
                self._compiled[target] = compiled
        return compiled[1]

    def _key(self, secret_arn: str) -> bytes:
        """The key of ``secret_arn``: read (through the cache), or the last one read while reads fail.

        Raises:
            KeyUnavailable: no read of it has ever succeeded in this container.
        """
        with self._lock:
            failed, previous = self._failed.get(secret_arn), self._keys.get(secret_arn)
        if failed is not None and self._clock() < failed[0]:
            if previous is not None:
                return previous
            raise failed[1]
        try:
            key = self._load_key(secret_arn)
        except Exception as exc:  # any reason (denied, deleted, throttled, a KMS outage) is handled alike
            error = KeyUnavailable(secret_arn, error_code(exc), str(exc)[:400])
            with self._lock:
                self._failed[secret_arn] = (self._clock() + RETRY_AFTER_FAILURE_SECONDS, error)
            self._report(secret_arn, error, kept=previous is not None)
            if previous is None:
                raise error from exc
            return previous
        with self._lock:
            self._failed.pop(secret_arn, None)
            self._keys[secret_arn] = key
        return key

    def _report(self, secret_arn: str, error: KeyUnavailable, kept: bool) -> None:
        """Log a failed read; with a key kept, count it (metric :data:`KEY_REFRESH_FAILURES`)."""
        message = (
            "reading the HMAC key failed; the key read before is used until a read succeeds"
            if kept
            else "reading the HMAC key failed; records of the targets that need it are reported as failed"
        )
        log(logging.getLogger(LOGGER_NAME), logging.WARNING if kept else logging.ERROR, message,
            secretArn=secret_arn, errorCode=error.code, error=str(error),
            retryAfterSeconds=RETRY_AFTER_FAILURE_SECONDS, sourceTable=self._config.source.describe())
        if kept:
            dimensions = {"SourceTable": self._config.source.table_name, "ErrorCode": error.code}
            line = emf_line(dimensions, {KEY_REFRESH_FAILURES: (1, "Count")}, int(time.time() * 1000))
            sys.stdout.write(line + "\n")
