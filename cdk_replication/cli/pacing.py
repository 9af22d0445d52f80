"""Rate limiting (a token bucket shared by threads) and retries of throttled calls with backoff."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from cdk_replication.cli.errors import RETRYABLE_ERROR_CODES, error_code

T = TypeVar("T")

#: First backoff ceiling, in seconds; doubles with every attempt up to :data:`BACKOFF_CAP_S`.
BACKOFF_BASE_S = 0.05
#: Largest backoff ceiling, in seconds.
BACKOFF_CAP_S = 10.0
#: Attempts of one call before its throttling error is given up on (a ``--max-retries`` default).
DEFAULT_MAX_ATTEMPTS = 10


class TokenBucket:
    """Allows ``rate`` operations per second on average, with bursts of up to one second's worth.

    Args:
        rate: operations per second; ``None`` or ``0`` means unlimited.
    """

    def __init__(self, rate: float | None) -> None:
        self.rate = rate or 0.0
        self._capacity = max(1.0, self.rate)
        # Start empty so that a run's first second is not a burst of twice the rate.
        self._tokens = 0.0 if self.rate else self._capacity
        self._last = time.monotonic()
        self._lock = threading.Lock()

    def acquire(self, tokens: float = 1.0) -> None:
        """Block until ``tokens`` operations are allowed (a large request runs into debt and waits it off)."""
        if not self.rate:
            return
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self._capacity, self._tokens + (now - self._last) * self.rate)
            self._last = now
            self._tokens -= tokens
            wait = -self._tokens / self.rate if self._tokens < 0 else 0.0
        if wait > 0:
            time.sleep(wait)


class Retrier:
    """Calls a function, retrying throttling and transient errors with exponential backoff and full jitter.

    Args:
        max_attempts: attempts per call before the last error is raised (default 10).
        sleep: the sleep function (tests pass a fake one).
    """

    def __init__(self, max_attempts: int = DEFAULT_MAX_ATTEMPTS, sleep: Callable[[float], None] = time.sleep) -> None:
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {max_attempts}")
        self.max_attempts = max_attempts
        self._sleep = sleep
        self._lock = threading.Lock()
        #: Retries made so far, over all calls (for the summary).
        self.retries = 0

    def call(self, fn: Callable[..., T], **kwargs: Any) -> T:
        """``fn(**kwargs)``, retried while it raises a retryable error."""
        from botocore.exceptions import ConnectionError as BotoConnectionError
        from botocore.exceptions import ReadTimeoutError

        attempt = 0
        while True:
            try:
                return fn(**kwargs)
            except (BotoConnectionError, ReadTimeoutError):
                attempt += 1
                if attempt >= self.max_attempts:
                    raise
            except Exception as exc:
                attempt += 1
                if error_code(exc) not in RETRYABLE_ERROR_CODES or attempt >= self.max_attempts:
                    raise
            with self._lock:
                self.retries += 1
            # Full jitter: threads throttled together must not come back together.
            self._sleep(random.uniform(0, min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2**attempt)))
