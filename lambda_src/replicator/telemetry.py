"""Structured logs (one JSON object per line) and CloudWatch Embedded Metric Format (EMF) metrics.

Both go to stdout, which Lambda ships to CloudWatch Logs; EMF lines become metrics in namespace
``CdkReplication`` without any ``PutMetricData`` permission.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections import Counter
from collections.abc import Mapping
from typing import IO, Any

#: CloudWatch namespace of every metric the replicator emits.
NAMESPACE = "CdkReplication"
LOGGER_NAME = "replicator"

# Metric names (the contract with dashboards and alarms).
RECORDS_RECEIVED = "RecordsReceived"
RECORDS_APPLIED = "RecordsApplied"
RECORDS_SKIPPED = "RecordsSkipped"
RECORDS_FAILED = "RecordsFailed"
BATCH_DURATION = "BatchDurationMs"
REPLICATION_LAG = "ReplicationLagMs"
WRITE_FAILURES = "WriteFailures"
CONFLICTS = "Conflicts"
#: Delete tombstones written (multi-active, and a one-way copy fed by Kinesis); emitted only when some were.
TOMBSTONES_WRITTEN = "TombstonesWritten"

#: ``ErrorCode`` of a record whose ``Keys`` name other attributes than the configured key (REPLICATION_KEY):
#: a configuration error (e.g. an existing source declared without its sort key); the record is not written.
#: Its failure-queue message holds only a shard and sequence range, and nothing redrives it: declare the exact
#: key, replace the replica tables created with the wrong key, then copy with ``cdk-replication backfill``.
KEY_SCHEMA_MISMATCH = "KeySchemaMismatch"


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON line: level, message, timestamp and every ``extra`` field given as
    ``extra={"fields": {...}}``."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "level": record.levelname,
            "message": record.getMessage(),
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "logger": record.name,
        }
        line.update(getattr(record, "fields", {}))
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, ensure_ascii=False)


class _StdoutHandler(logging.Handler):
    """Writes to whatever ``sys.stdout`` is at the time of each record (Lambda and test runners swap it)."""

    def __init__(self, stream: IO[str] | None) -> None:
        super().__init__()
        self._stream = stream

    def emit(self, record: logging.LogRecord) -> None:
        try:
            out = self._stream or sys.stdout
            out.write(self.format(record) + "\n")
            out.flush()
        except Exception:  # noqa: BLE001 - logging's own contract: report via handleError, never raise
            self.handleError(record)


def configure_logger(level: str, stream: IO[str] | None = None) -> logging.Logger:
    """The replicator's logger, writing JSON lines to ``stream`` (default: the current stdout) at ``level``.

    It does not propagate to the root logger, so the Lambda runtime's own handler does not print each line a
    second time in its plain-text format.
    """
    logger = logging.getLogger(LOGGER_NAME)
    logger.setLevel(level)
    logger.propagate = False
    for existing in list(logger.handlers):
        logger.removeHandler(existing)
    handler = _StdoutHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger.addHandler(handler)
    return logger


def log(logger: logging.Logger, level: int, message: str, **fields: Any) -> None:
    """Log ``message`` with ``fields`` as top-level keys of the JSON line."""
    logger.log(level, message, extra={"fields": fields})


def emf_line(dimensions: Mapping[str, str], metrics: Mapping[str, tuple[float, str]], now_ms: int) -> str:
    """One EMF document: ``metrics`` maps a name to (value, unit); all share ``dimensions``."""
    doc: dict[str, Any] = {
        "_aws": {
            "Timestamp": now_ms,
            "CloudWatchMetrics": [
                {
                    "Namespace": NAMESPACE,
                    "Dimensions": [list(dimensions)],
                    "Metrics": [{"Name": name, "Unit": unit} for name, (_, unit) in metrics.items()],
                }
            ],
        },
        **dimensions,
    }
    for name, (value, _) in metrics.items():
        doc[name] = value
    return json.dumps(doc, separators=(",", ":"))


class InvocationMetrics:
    """Counters of one invocation, written as EMF lines by :meth:`flush`.

    One line carries the batch totals (dimension ``SourceTable``); failures and conflicts get one line per
    error code / kind (dimensions ``SourceTable`` and ``ErrorCode`` / ``Kind``) so alarms can tell a missing
    table from throttling.
    """

    def __init__(self, source_table: str, stream: IO[str] | None = None) -> None:
        self._source = source_table
        self._stream = stream
        self.received = 0
        self.applied = 0
        self.skipped = 0
        self.failed = 0
        self.tombstones = 0
        self.max_lag_ms: float | None = None
        self.failures: Counter[str] = Counter()
        self.conflicts: Counter[str] = Counter()
        self._started = time.monotonic()

    def observe_lag(self, created_at: float | None, now: float) -> None:
        """Record the lag of one record (``now`` and ``created_at`` in epoch seconds)."""
        if created_at is None:
            return
        lag_ms = max(0.0, (now - created_at) * 1000.0)
        if self.max_lag_ms is None or lag_ms > self.max_lag_ms:
            self.max_lag_ms = lag_ms

    def flush(self) -> None:
        out = self._stream or sys.stdout
        now_ms = int(time.time() * 1000)
        totals: dict[str, tuple[float, str]] = {
            RECORDS_RECEIVED: (self.received, "Count"),
            RECORDS_APPLIED: (self.applied, "Count"),
            RECORDS_SKIPPED: (self.skipped, "Count"),
            RECORDS_FAILED: (self.failed, "Count"),
            BATCH_DURATION: ((time.monotonic() - self._started) * 1000.0, "Milliseconds"),
        }
        if self.max_lag_ms is not None:
            totals[REPLICATION_LAG] = (self.max_lag_ms, "Milliseconds")
        if self.tombstones:
            totals[TOMBSTONES_WRITTEN] = (self.tombstones, "Count")
        lines = [emf_line({"SourceTable": self._source}, totals, now_ms)]
        for code, count in sorted(self.failures.items()):
            lines.append(
                emf_line({"SourceTable": self._source, "ErrorCode": code}, {WRITE_FAILURES: (count, "Count")}, now_ms)
            )
        for kind, count in sorted(self.conflicts.items()):
            lines.append(emf_line({"SourceTable": self._source, "Kind": kind}, {CONFLICTS: (count, "Count")}, now_ms))
        out.write("\n".join(lines) + "\n")
        out.flush()
