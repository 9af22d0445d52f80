"""The handler ``python -m benchmarks.lag`` gives the local runtime's replicator containers (copied, with
``_bench_rtt.py`` = benchmarks/rtt.py, next to the replicator's code; lambda_src is not changed).

It imports ``replicator.handler`` as Lambda would and wraps the replicator's ``ClientFactory._create`` (as
benchmarks/worker.py does), so every client made for a table in another region than the function's gets the
simulated round trip of ``CDK_REPLICATION_BENCH_RTT_MS`` milliseconds on every request. Clients of the
function's own region (multi-active tombstones and repairs) pay none. The clients are still created lazily, at
the first batch, as the replicator does on Lambda: that cost stays in the measured invocation.
"""

from __future__ import annotations

import os
from typing import Any

from _bench_rtt import add_round_trip  # benchmarks/rtt.py, copied next to this file
from replicator import handler as _module

_RTT_MS = float(os.environ.get("CDK_REPLICATION_BENCH_RTT_MS", "0"))
_REGION = os.environ["AWS_REGION"]
_factory = _module.PROCESSOR.clients
_create = _factory._create


def _create_with_rtt(table: Any) -> Any:
    client = _create(table)
    if table.region != _REGION:
        add_round_trip(client, _RTT_MS)
    return client


_factory._create = _create_with_rtt  # type: ignore[method-assign]
handler = _module.handler
