"""Faults a test can inject into a local Lambda function's DynamoDB calls.

The parent process keeps the fault state (:class:`FunctionFaults`); each invocation sends the faults still
armed to the worker, which applies them through botocore's event system and reports back how many it used.
That way a fault survives a container restart (a crash or a timeout) exactly as far as it was consumed.

Only the pieces a test touches are public: :class:`FunctionFaults` (reached as ``LocalFunction.faults``)
and :class:`WriteFault`.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field
from typing import Any

#: DynamoDB operations that write items; the only calls the fault hooks count or fail.
WRITE_OPERATIONS = frozenset({"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"})

#: The two throttling errors DynamoDB returns; botocore's retry modes retry both.
THROTTLING_ERRORS = ("ProvisionedThroughputExceededException", "ThrottlingException")


@dataclass
class WriteFault:
    """Fail DynamoDB writes to one table (or every table) with a chosen error.

    The error is returned in place of the HTTP response (botocore's ``before-send`` event), so the SDK's own
    retry logic sees it exactly like an error from the service: a throttle is retried by botocore and each
    attempt counts as one call here.

    Attributes:
        table: table name the fault applies to; ``None`` means every table.
        error_code: the DynamoDB error code returned. Default: ``ProvisionedThroughputExceededException``.
        message: the error message returned.
        status_code: the HTTP status returned. Default: 400 (what DynamoDB returns for these errors).
        calls: fail this many calls, then stop. ``None`` means no limit (use with ``fraction``).
        fraction: fail each call with this probability (0..1). ``None`` means every call.
        seed: seed of the random choice behind ``fraction``, for reproducible tests.
        matching: only calls whose JSON request body contains this text fail, e.g. ``'"N":"42"'`` to make
            the writes of one item a poison. ``None`` means every call to the table.
    """

    table: str | None
    error_code: str = "ProvisionedThroughputExceededException"
    message: str = "Injected fault: the level of configured provisioned throughput for the table was exceeded"
    status_code: int = 400
    calls: int | None = None
    fraction: float | None = None
    seed: int | None = None
    matching: str | None = None
    #: Calls failed so far (updated from the worker's reports).
    failed_calls: int = 0
    #: Calls handed to invocations still running (concurrent invocations share ``calls``, not each get it).
    _reserved: int = field(default=0, init=False, repr=False, compare=False)
    _rng: random.Random = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.calls is not None and self.calls < 0:
            raise ValueError(f"calls must be >= 0 or None, got {self.calls}")
        if self.fraction is not None and not 0.0 <= self.fraction <= 1.0:
            raise ValueError(f"fraction must be between 0 and 1, got {self.fraction}")
        if self.calls is None and self.fraction is None:
            raise ValueError("a WriteFault needs calls=<n>, fraction=<p> or both (otherwise it never ends)")
        self._rng = random.Random(self.seed)

    def next_seed(self) -> int:
        """A seed for one invocation's draws, itself drawn from ``seed`` so that whole runs repeat."""
        return self._rng.randrange(2**32)

    @property
    def exhausted(self) -> bool:
        """True once ``calls`` failures have been returned."""
        return self.calls is not None and self.failed_calls >= self.calls


@dataclass
class _CrashFault:
    writes_left: int


@dataclass
class WiredFaults:
    """What one invocation was sent (:meth:`FunctionFaults.to_wire_with_refs`): the write faults its indexes
    refer to and whether it carried the crash fault."""

    write_faults: list[WriteFault]
    crash: bool
    given: list[int | None] = field(default_factory=list)  # calls_left handed to the invocation, per fault


@dataclass
class FunctionFaults:
    """The faults armed on one local function. Thread-safe.

    Use through ``LocalFunction.faults``::

        fn.faults.crash_after_writes(3)              # the container dies after its 3rd successful write
        fn.faults.throttle_writes("Employees", calls=5)
        fn.faults.fail_writes("Employees", "ResourceNotFoundException", fraction=0.1, seed=7)
        fn.faults.clear()
    """

    _write_faults: list[WriteFault] = field(default_factory=list)
    _crash: _CrashFault | None = None
    _crash_out: bool = False  # an invocation in flight carries the crash fault
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def crash_after_writes(self, writes: int) -> None:
        """Kill the container (SIGKILL, as an out-of-memory kill would) right after its ``writes``-th
        successful DynamoDB write call from now, counted across invocations. Fires once: of concurrent
        invocations only one carries it (and counts its writes) at a time."""
        if writes < 1:
            raise ValueError(f"writes must be >= 1, got {writes}")
        with self._lock:
            self._crash = _CrashFault(writes)

    def throttle_writes(
        self,
        table: str | None,
        calls: int | None = None,
        fraction: float | None = None,
        error_code: str = THROTTLING_ERRORS[0],
        seed: int | None = None,
    ) -> WriteFault:
        """Answer writes to ``table`` with a throttling error for ``calls`` calls and/or a ``fraction`` of calls."""
        if error_code not in THROTTLING_ERRORS:
            raise ValueError(f"error_code {error_code!r} is not a throttling error; use one of {THROTTLING_ERRORS}")
        return self.fail_writes(table, error_code, calls=calls, fraction=fraction, seed=seed)

    def fail_writes(
        self,
        table: str | None,
        error_code: str,
        calls: int | None = None,
        fraction: float | None = None,
        message: str | None = None,
        status_code: int = 400,
        seed: int | None = None,
        matching: str | None = None,
    ) -> WriteFault:
        """Answer writes to ``table`` (``None``: every table) with ``error_code``; returns the armed fault.

        ``matching`` limits the fault to calls whose JSON body contains that text (see :class:`WriteFault`).
        """
        fault = WriteFault(
            table=table,
            error_code=error_code,
            message=message or f"Injected fault: {error_code}",
            status_code=status_code,
            calls=calls,
            fraction=fraction,
            seed=seed,
            matching=matching,
        )
        with self._lock:
            self._write_faults.append(fault)
        return fault

    def clear(self) -> None:
        """Disarm every fault."""
        with self._lock:
            self._write_faults.clear()
            self._crash = None
            self._crash_out = False

    @property
    def crash_armed(self) -> bool:
        """True while a crash fault has not fired yet."""
        with self._lock:
            return self._crash is not None

    # --- used by LocalFunction ---------------------------------------------------------------------------

    def to_wire(self) -> dict[str, Any]:
        """The armed faults as JSON for one invocation's message to the worker."""
        return self.to_wire_with_refs()[0]

    def to_wire_with_refs(self) -> tuple[dict[str, Any], WiredFaults]:
        """:meth:`to_wire` and what it refers to, for :meth:`apply_usage` (invocations run concurrently:
        another one's :meth:`to_wire` may drop exhausted faults and shift the indexes)."""
        with self._lock:
            self._write_faults = [f for f in self._write_faults if not f.exhausted]
            refs = list(self._write_faults)
            crash = self._crash is not None and not self._crash_out
            self._crash_out = self._crash_out or crash
            given = [None if f.calls is None else max(0, f.calls - f.failed_calls - f._reserved) for f in refs]
            for fault, calls in zip(refs, given):
                fault._reserved += calls or 0
            return {
                "crash_after_writes": self._crash.writes_left if crash and self._crash else None,
                "write_faults": [
                    {
                        "index": i,
                        "table": f.table,
                        "error_code": f.error_code,
                        "message": f.message,
                        "status_code": f.status_code,
                        "calls_left": given[i],
                        "fraction": f.fraction,
                        "seed": f.next_seed(),
                        "matching": f.matching,
                    }
                    for i, f in enumerate(refs)
                ],
            }, WiredFaults(refs, crash, given)

    def apply_usage(self, usage: dict[str, Any] | None, crashed: bool, wired: WiredFaults | None = None) -> None:
        """Record what the worker used during one invocation (``crashed``: the container died); ``wired``:
        what the invocation was sent (from :meth:`to_wire_with_refs`). Default: the current faults, crash
        included (an invocation made with :meth:`to_wire`)."""
        with self._lock:
            for fault, calls in zip(wired.write_faults, wired.given) if wired is not None else ():
                fault._reserved -= calls or 0
            carried = wired is None or wired.crash
            if wired is not None and wired.crash:
                self._crash_out = False
            if not carried:
                self._apply_write_faults(usage, wired)
                return
            if crashed and self._crash is not None:
                # A crash fault fires once; any other death of the container leaves it armed only if no
                # write happened, which the worker cannot report, so disarming is the conservative choice.
                self._crash = None
            if not usage:
                return
            if self._crash is not None:
                self._crash.writes_left -= int(usage.get("writes", 0))
                if self._crash.writes_left <= 0:
                    self._crash = None
            self._apply_write_faults(usage, wired)

    def _apply_write_faults(self, usage: dict[str, Any] | None, wired: WiredFaults | None) -> None:
        targets = self._write_faults if wired is None else wired.write_faults
        for index, failed in (usage or {}).get("write_faults_failed", {}).items():
            i = int(index)
            if i < len(targets):
                targets[i].failed_calls += int(failed)
