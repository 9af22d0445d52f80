"""A simulated cross-region round trip, added in-process to every request of chosen botocore clients.

A ``before-send`` handler sleeps for the round trip and returns ``None``, so the request then goes to DynamoDB
Local as usual: every call costs RTT plus DynamoDB Local's own time. ``time.sleep`` releases the GIL, so
concurrent requests wait concurrently, as real network waits do. What it does not model: TCP/TLS handshakes
of new connections (pooled keep-alive connections make them rare), bandwidth, and loss.
"""

from __future__ import annotations

import time
from typing import Any

_UNIQUE_ID = "cdk-replication-benchmark-rtt"


def add_round_trip(client: Any, rtt_ms: float) -> None:
    """Make every request of ``client`` (a botocore client) take ``rtt_ms`` longer. 0 does nothing."""
    if rtt_ms <= 0:
        return
    delay = rtt_ms / 1000.0

    def _wait(**_: Any) -> None:
        time.sleep(delay)
        return None  # no response: botocore sends the request

    client.meta.events.register("before-send", _wait, unique_id=_UNIQUE_ID)
