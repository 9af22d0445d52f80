"""Test-only entry point of a replicator container in the chaos suite (never shipped, never in lambda_src/).

The local runtime starts each container with ``python -I``, which ignores ``PYTHONPATH`` and therefore any
``sitecustomize`` a test could offer. The chaos suite instead copies this module into its own synthesized copy
of the code asset and points the function's handler here; at import (the container's init phase) it

1. logs every DynamoDB write call the container makes, with the item it sends, as one JSON line appended to
   ``$CHAOS_WRITE_LOG`` (opened ``O_APPEND`` and written with one ``os.write`` per call, so a line is either
   complete or absent even when the crash fault kills the container right after a write). The suite checks
   these lines to detect echoes (rule 3) independently of the replicator's own echo detection;
2. when ``$CHAOS_MUTANT`` names a mutant, switches off one replication rule by monkeypatching the replicator
   (see ``MUTANTS``), so that ``python -m tests.chaos.mutants`` can show the suite catches each one;
3. delegates every invocation to the template's real handler (``$CHAOS_REAL_HANDLER``).

Only the standard library, botocore and the replicator itself are imported, as in a real container.
"""

from __future__ import annotations

import base64
import importlib
import json
import os
from collections.abc import Callable
from typing import Any

import botocore.session

_WRITES = frozenset({"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"})


def _plain(value: Any) -> Any:
    """Wire-form attribute values as JSON (binary as base64 text, like a stream record)."""
    if isinstance(value, (bytes, bytearray)):
        return {"__b64__": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


class _WriteLog:
    """Appends one JSON line per write call made by this container."""

    def __init__(self, path: str) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._region = os.environ.get("AWS_REGION", "")

    def before_parameter_build(self, params: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        if model.name not in _WRITES:
            return
        line = {
            "function_region": self._region,
            "target_region": context.get("client_region"),
            "operation": model.name,
            "params": _plain(params),
        }
        os.write(self._fd, (json.dumps(line, separators=(",", ":")) + "\n").encode("utf-8"))


def _install_write_log(path: str) -> None:
    log = _WriteLog(path)
    original_init = botocore.session.Session.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        # before-parameter-build sees the caller's parameters and the client's region, before any fault
        # hook answers the call: every attempt is logged, including ones that fail or are retried.
        self.register("before-parameter-build.dynamodb", log.before_parameter_build)

    botocore.session.Session.__init__ = init  # type: ignore[method-assign]


# --- mutants ------------------------------------------------------------------------------------------------
# Each switches off exactly one rule through the narrowest seam, without touching lambda_src/.


def _mutant_loop() -> None:
    """Rule 3 off: no write is recognised as the replicator's own, so replicated writes are sent again."""
    from replicator import multi_active

    multi_active.MultiActiveReplication._is_echo = lambda self, change: False  # type: ignore[method-assign]


def _mutant_tiebreak() -> None:
    """Rule 4's tie-break off: states with equal conflict value and kind order equal whatever their origin,
    so whichever arrives last wins in each region."""
    import decimal

    from replicator import metadata

    def order(self: Any) -> tuple[bool, decimal.Decimal, bool, str]:
        return (self.version is not None, self.version or decimal.Decimal(0), self.deleted, "")

    metadata.State.order = property(order)  # type: ignore[assignment]


def _mutant_tombstones() -> None:
    """Rule 5 off: a delete is replicated as a plain DeleteItem that leaves nothing behind (no tombstone),
    so nothing remembers the version that was deleted."""
    from replicator import conditional_writer, multi_active
    from replicator.attributes import key_item

    def deleting(real: Callable[..., Any]) -> Callable[..., Any]:
        def write(client: Any, table: Any, op: Any, codec: Any, deadline: Any) -> Any:
            if not op.state.deleted:
                return real(client, table, op, codec, deadline)
            client.delete_item(TableName=table.table_name, Key=key_item(op.key))
            return conditional_writer.Outcome(written=True)

        return write

    multi_active.put_if_newer = deleting(conditional_writer.put_if_newer)
    multi_active.put_if_unchanged = deleting(conditional_writer.put_if_unchanged)


def _mutant_order() -> None:
    """Rule 2 off: the records of one item are planned in reverse stream order."""
    from replicator import processor, records

    def reversed_groups(changes: Any) -> dict[Any, list[Any]]:
        return {key: group[::-1] for key, group in records.group_by_item(changes).items()}

    processor.group_by_item = reversed_groups


def _mutant_ttl() -> None:
    """Rules 1 and 5 through TTL expiry off: deletes made by DynamoDB's TTL process are not replicated (the
    multi-active default before issue 10), so no other region learns the expired version."""
    from replicator import multi_active

    real = multi_active.MultiActiveReplication._skip_remove

    def skip_remove(self: Any, change: Any) -> Any:
        return "TTL delete (mutant: not replicated)" if change.by_ttl else real(self, change)

    multi_active.MultiActiveReplication._skip_remove = skip_remove  # type: ignore[method-assign]


MUTANTS: dict[str, Callable[[], None]] = {
    "loop": _mutant_loop,
    "tiebreak": _mutant_tiebreak,
    "tombstones": _mutant_tombstones,
    "order": _mutant_order,
    "ttl": _mutant_ttl,
}


def _load_real_handler() -> Callable[[Any, Any], Any]:
    module_name, _, function_name = os.environ["CHAOS_REAL_HANDLER"].rpartition(".")
    return getattr(importlib.import_module(module_name), function_name)


def _container_init() -> Callable[[Any, Any], Any]:
    """Install the write log and the mutant, then load the real handler (the container's init phase)."""
    if os.environ.get("CHAOS_WRITE_LOG"):
        _install_write_log(os.environ["CHAOS_WRITE_LOG"])
    mutant = os.environ.get("CHAOS_MUTANT", "")
    if mutant:
        if mutant not in MUTANTS:
            raise ValueError(f"CHAOS_MUTANT={mutant!r} is not one of {sorted(MUTANTS)}")
        MUTANTS[mutant]()
    return _load_real_handler()


# Only inside a container set up by tests/chaos/conftest.py; the mutant runner imports MUTANTS alone.
if os.environ.get("CHAOS_REAL_HANDLER"):
    handler = _container_init()
