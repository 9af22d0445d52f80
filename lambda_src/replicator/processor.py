"""One invocation: parse the batch, plan each item, apply the plans concurrently, report what failed.

Lambda resumes a shard from the lowest ``itemIdentifier`` returned and re-delivers every record after it.
Writes are idempotent in stream order, so re-applying records that did succeed is harmless; what must never
happen is a later record of an item being applied while an earlier one of the same item is still pending.
Hence an item stops at its first failed record, and the batch reports the lowest failed sequence number.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import Executor, ThreadPoolExecutor
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from .attributes import ItemKey, key_for_log
from .clients import AssumeRole, ClientFactory
from .config import ChangeSource, Config, Mode
from .plan import ItemPlan, TargetFailure
from .records import Change, KeyMismatch, group_by_item, parse_event
from .retry import Deadline
from .telemetry import KEY_SCHEMA_MISMATCH, InvocationMetrics, configure_logger, log


class Replication(Protocol):
    """A replication mode: how one item's records become writes, and how those writes are applied."""

    def plan(self, key: ItemKey, changes: Sequence[Change]) -> ItemPlan: ...

    def apply(
        self, plans: Sequence[ItemPlan], pool: Executor, deadline: Deadline, metrics: InvocationMetrics
    ) -> dict[ItemKey, list[TargetFailure]]: ...


class Processor:
    """Holds what lives as long as the container (clients, thread pool, logger) and handles invocations.

    Args:
        config: the parsed environment.
        assume_role: STS call used for targets with a ``roleArn``; default: real STS (tests replace it).
    """

    def __init__(self, config: Config, assume_role: AssumeRole | None = None) -> None:
        self.config = config
        self.logger = configure_logger(config.log_level)
        self.clients = ClientFactory(
            config.max_concurrency, session_name=f"cdk-replication-{config.source.table_name}", assume_role=assume_role
        )
        self.replication: Replication = self._replication()
        self._pool: ThreadPoolExecutor | None = None
        log(
            self.logger,
            logging.INFO,
            "replicator configured",
            mode=config.mode.value,
            changeSource=config.change_source.value,
            sourceTable=config.source.describe(),
            targetTables=[t.describe() for t in config.targets],
            maxConcurrency=config.max_concurrency,
        )

    def _replication(self) -> Replication:
        if self.config.change_source is ChangeSource.KINESIS:
            from .ordered_one_way import OrderedOneWayReplication

            return OrderedOneWayReplication(self.config, self.clients, self.logger)
        if self.config.mode is Mode.ONE_WAY:
            from .one_way import OneWayReplication

            return OneWayReplication(self.config, self.clients)
        from .multi_active import MultiActiveReplication

        return MultiActiveReplication(self.config, self.clients, self.logger)

    @property
    def pool(self) -> ThreadPoolExecutor:
        # Created on first use and kept: threads (like clients) are reused by later invocations.
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=self.config.max_concurrency, thread_name_prefix="replicator")
        return self._pool

    def close(self) -> None:
        """Stop the worker threads (tests and local workers; Lambda simply freezes the container)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def process(self, event: Mapping[str, Any], context: Any) -> dict[str, list[dict[str, str]]]:
        """Handle one Lambda event; return the partial batch response.

        Raises whatever is unexpected (a malformed event, a bug): the invocation then fails and Lambda
        retries or bisects the batch instead of taking it as done.
        """
        metrics = InvocationMetrics(self.config.source.table_name)
        deadline = Deadline.from_remaining_ms(context.get_remaining_time_in_millis())
        request_id = getattr(context, "aws_request_id", None)
        try:
            parsed = parse_event(event, self.config.key, self.config.source.table_name)
            changes = parsed.changes
            metrics.received = parsed.received
            # Another table's records in a shared stream: left unread.
            metrics.skipped += parsed.received - len(changes) - len(parsed.mismatched)
            now = time.time()
            for change in changes:
                metrics.observe_lag(change.created_at, now)
            plans = [self.replication.plan(key, group) for key, group in group_by_item(changes).items()]
            failures = self.replication.apply(plans, self.pool, deadline, metrics) if plans else {}
            lowest: Change | KeyMismatch | None = self._settle(plans, failures, metrics, request_id)
            mismatched = self._refuse_mismatched_keys(parsed.mismatched, metrics, request_id)
            if mismatched is not None and (lowest is None or mismatched.index < lowest.index):
                lowest = mismatched
        except Exception:
            self.logger.exception(
                "invocation failed; Lambda will retry the batch", extra={"fields": {"requestId": request_id}}
            )
            raise
        finally:
            metrics.flush()
        if lowest is None:
            return {"batchItemFailures": []}
        return {"batchItemFailures": [{"itemIdentifier": lowest.sequence_number}]}

    def _settle(
        self,
        plans: Sequence[ItemPlan],
        failures: Mapping[ItemKey, list[TargetFailure]],
        metrics: InvocationMetrics,
        request_id: str | None,
    ) -> Change | None:
        """Count, log and reduce the outcome to the lowest record not applied (``None``: all applied)."""
        by_index = {c.index: c for plan in plans for c in plan.changes}
        lowest: Change | None = None
        for plan in plans:
            stop: int | None = None
            if plan.blocked is not None:
                stop = plan.blocked.change.index
                metrics.failures[plan.blocked.code] += 1
                self._log_failure(plan, plan.blocked.change, None, plan.blocked.code, plan.blocked.message, request_id)
            item_failures = failures.get(plan.key, [])
            if item_failures:
                assert plan.covers_from is not None
                stop = plan.covers_from if stop is None else min(stop, plan.covers_from)
                first = by_index[plan.covers_from]
                for target_failure in item_failures:
                    failure = target_failure.failure
                    metrics.failures[failure.code] += 1
                    self._log_failure(
                        plan,
                        first,
                        target_failure.target.describe(),
                        failure.code,
                        failure.message,
                        request_id,
                        retriesExhausted=failure.retries_exhausted,
                    )
            skipped = {c.index for c in plan.skipped}
            for change in plan.changes:
                if stop is not None and change.index >= stop:
                    metrics.failed += 1
                elif change.index in skipped:
                    metrics.skipped += 1
                else:
                    metrics.applied += 1
            if stop is not None and (lowest is None or stop < lowest.index):
                lowest = by_index[stop]
        return lowest

    def _refuse_mismatched_keys(
        self, mismatched: Sequence[KeyMismatch], metrics: InvocationMetrics, request_id: str | None
    ) -> KeyMismatch | None:
        """Count records whose keys are not the configured key, log them in one line; return the first
        (``None``: none).

        They are never written: keyed by the configured names, distinct items would be merged into one. Each
        is reported as failed like any other record not applied, so Lambda retries the batch and, once the
        retries or the maximum record age run out, sends the record's shard and sequence range to the
        on-failure destination. That queue does not hold the records, the stream forgets them after 24 h, and
        nothing redrives them: the fix is the configuration (the table's exact key in the construct), then
        replica tables created with the wrong key replaced, then ``cdk-replication backfill`` from the source.

        One ERROR line per invocation, not per record: every retry re-delivers the same records, and they share
        one cause (the records reaching here are one table's, whose key is the same in all of them). It names
        how many, the first record's key and sequence number, and both key sets; the metric counts each record.
        """
        if not mismatched:
            return None
        metrics.failures[KEY_SCHEMA_MISMATCH] += len(mismatched)
        metrics.failed += len(mismatched)
        first = mismatched[0]
        log(
            self.logger,
            logging.ERROR,
            f"{len(mismatched)} record(s) not applied: their key attributes are not the configured key "
            "(REPLICATION_KEY), so they are reported to Lambda for re-delivery and end in the failure "
            "queue, which keeps only shard and sequence ranges. Declare the table's exact key (partition "
            "and sort key) in the construct, replace replica tables created with the wrong key, then copy "
            "the source with `cdk-replication backfill`",
            sourceTable=self.config.source.describe(),
            records=len(mismatched),
            key=key_for_log(first.key),
            configuredKey=list(first.configured),
            recordKey=list(first.found),
            sequenceNumber=first.sequence_number,
            eventName=first.event_name,
            errorCode=KEY_SCHEMA_MISMATCH,
            requestId=request_id,
        )
        return first

    def _log_failure(
        self,
        plan: ItemPlan,
        change: Change,
        target: str | None,
        code: str,
        message: str,
        request_id: str | None,
        **extra: Any,
    ) -> None:
        log(
            self.logger,
            logging.ERROR,
            "record not applied; reported to Lambda for re-delivery",
            sourceTable=self.config.source.describe(),
            targetTable=target,
            key=key_for_log(plan.key),
            sequenceNumber=change.sequence_number,
            eventName=change.event_name,
            errorCode=code,
            error=message,
            recordsHeldBack=sum(1 for c in plan.changes if c.index >= change.index),
            requestId=request_id,
            **extra,
        )
