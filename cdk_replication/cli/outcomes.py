"""Outcomes of one key's repair or resync (``verify --repair``, ``backfill``'s check, ``redrive``).

Their own module so that the one-way repair (:mod:`cdk_replication.cli.repair`, which re-exports them) and the
multi-active resync (:mod:`cdk_replication.cli.redrive.multi_active`, which the repair calls) share them without
importing each other.
"""

from __future__ import annotations

REPAIRED = "repaired"  # written (or deleted) and confirmed against the source
SETTLED = "settled"  # equal by the time it was re-read: nothing to write
WOULD_PUT = "would-put"  # dry run
WOULD_DELETE = "would-delete"  # dry run
KEPT = "kept"  # multi-active: the target's state orders after the source's, or exists only in the target
UNSETTLED = "unsettled"  # kept changing during the repair
FAILED = "failed"  # an error; the reason is kept

#: Outcomes after which the tables may still differ at this key.
REMAINING = frozenset({WOULD_PUT, WOULD_DELETE, KEPT, UNSETTLED, FAILED})
