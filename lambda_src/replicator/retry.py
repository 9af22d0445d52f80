"""Retrying writes within the invocation's remaining time: error classification, deadline, backoff.

botocore's own retries are switched off (see clients.py) because they know nothing of the Lambda timeout: a
write that is still being retried when the function times out fails the whole batch, while a write given up
shortly before the deadline fails only its own records.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

from botocore.exceptions import BotoCoreError, ClientError

#: Error codes worth retrying: throttling, capacity and transient server errors.
RETRYABLE_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "LimitExceededException",
        "InternalServerError",
        "InternalFailure",
        "ServiceUnavailable",
        "TransactionConflictException",
        "TransactionInProgressException",
    }
)

#: First backoff ceiling, in seconds; doubles per attempt.
BACKOFF_BASE_S = 0.05
#: Largest backoff ceiling, in seconds.
BACKOFF_CAP_S = 2.0
#: Time kept free before the function's timeout, in seconds, so the handler can still return its report.
SAFETY_MARGIN_S = 3.0

_rng = random.SystemRandom()


def error_code(exc: BaseException) -> str:
    """The DynamoDB error code of ``exc``, or the botocore exception's class name for transport errors."""
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code") or "Unknown")
    return type(exc).__name__


def is_retryable(exc: BaseException) -> bool:
    """Throttling, 5xx and transport errors (timeouts, dropped connections) are retried; nothing else."""
    if isinstance(exc, ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return error_code(exc) in RETRYABLE_CODES or int(status) >= 500
    # ParamValidationError and friends are programming errors, not transient.
    return isinstance(exc, BotoCoreError) and type(exc).__name__ in {
        "EndpointConnectionError",
        "ConnectionClosedError",
        "ConnectTimeoutError",
        "ReadTimeoutError",
        "ConnectionError",
        "HTTPClientError",
    }


@dataclass
class Deadline:
    """The moment (``time.monotonic()``) after which no new retry starts."""

    at: float

    @classmethod
    def from_remaining_ms(cls, remaining_ms: int, margin_s: float = SAFETY_MARGIN_S) -> "Deadline":
        """``remaining_ms`` from ``context.get_remaining_time_in_millis()``; the margin is at most half of it."""
        remaining = remaining_ms / 1000.0
        return cls(time.monotonic() + remaining - min(margin_s, remaining / 2))

    def remaining(self) -> float:
        return self.at - time.monotonic()

    def passed(self) -> bool:
        """No time is left for a new request: a write still queued behind slow ones is not started, so the
        handler returns its report before Lambda's timeout instead of failing the whole batch."""
        return self.remaining() <= 0


#: Code of a write not even tried because the invocation had no time left for it.
DEADLINE_EXCEEDED = "DeadlineExceeded"


def backoff_delay(attempt: int) -> float:
    """Exponential backoff with full jitter: uniform in [0, min(cap, base * 2**attempt)] seconds."""
    return _rng.uniform(0.0, min(BACKOFF_CAP_S, BACKOFF_BASE_S * (2**attempt)))


def wait_before_retry(deadline: Deadline, attempt: int) -> bool:
    """Sleep before retry number ``attempt + 1``; False (without sleeping) when that would pass the deadline."""
    delay = backoff_delay(attempt)
    if deadline.remaining() <= delay:
        return False
    time.sleep(delay)
    return True
