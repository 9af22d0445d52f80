"""Lambda entry point: ``replicator.handler.handler``.

The configuration is parsed at import, i.e. once per container: a bad environment fails the cold start with a
message naming the variable. Clients and threads are created on first use and reused by later invocations.
"""

from __future__ import annotations

import os
from typing import Any

from .config import load_config
from .processor import Processor

CONFIG = load_config(os.environ)
PROCESSOR = Processor(CONFIG)


def handler(event: dict[str, Any], context: Any) -> dict[str, list[dict[str, str]]]:
    """Replicate one batch of DynamoDB stream records.

    Returns the partial batch response ``{"batchItemFailures": [{"itemIdentifier": <SequenceNumber>}]}``,
    naming the lowest record that was not applied, or an empty list when every record was applied. Lambda
    reads it only when the mapping has ``FunctionResponseTypes: [ReportBatchItemFailures]``, which the construct
    always sets (``report_batch_item_failures=False`` is refused): without it a failed record would be lost.
    """
    return PROCESSOR.process(event, context)
