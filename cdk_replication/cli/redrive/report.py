"""The redrive's ``--json`` document and its text summary."""

from __future__ import annotations

from typing import Any

from cdk_replication.cli.items import KeySchema, key_text, to_json_item
from cdk_replication.cli.redrive.locations import MARKER_PREFIX
from cdk_replication.cli.redrive.resync import SETTLED_OUTCOMES
from cdk_replication.cli.redrive.run import RedriveResult

#: Keys (and skipped objects) listed in the text summary at most; ``--json`` lists all.
SHOW = 20


def redrive_json(result: RedriveResult, key_schema: KeySchema) -> dict[str, Any]:
    """The ``--json`` document (keys documented in docs/cli.md)."""
    return {
        "command": "redrive",
        "from": result.location,
        "dryRun": result.dry_run,
        "targets": result.targets,
        "complete": result.complete,
        "interrupted": result.interrupted,
        "records": {
            "read": result.records,
            "alreadyRedriven": result.already_redriven,
            "notFailureRecords": len(result.skipped),
            "settled": result.settled_records,
            "redriven": result.redriven,
            "lost": len(result.lost),
            "unreadable": len({name for name, _ in result.unreadable}),
        },
        "keys": len(result.keys),
        "counts": dict(result.counts),
        "items": [
            {"key": to_json_item(result.keys[key_id]), "target": target, "outcome": outcome, "reason": reason}
            for (key_id, target), (outcome, reason) in result.outcomes.items()
        ],
        "lostRanges": [{"record": name, **lost.as_json()} for name, lost in result.lost],
        "unreadable": [{"record": name, "reason": why} for name, why in result.unreadable],
        "skipped": [{"object": name, "reason": why} for name, why in result.skipped],
        "seconds": round(result.seconds, 3),
    }


def redrive_text(result: RedriveResult, key_schema: KeySchema, source_label: str) -> list[str]:
    """Human lines: what was read, what the resync did, what is lost, what was marked."""
    lines = [
        f"redrive from {result.location}: {result.records:,} failure records"
        f" ({result.already_redriven:,} already redriven, skipped), {len(result.keys):,} keys, "
        f"{len(result.targets)} target(s)"
    ]
    if not (result.records or result.already_redriven or result.skipped):
        lines.append(f"nothing found at {result.location}: check the location (Lambda writes its failure records "
                     "under aws/lambda/<mapping UUID>/ in the destination bucket)")
    lines += [f"note: {note}" for note in result.notes]
    if result.skipped:
        lines.append(f"skipped {len(result.skipped):,} objects that are not failure records:")
        lines += [f"  {name}: {why}" for name, why in result.skipped[:SHOW]]
    counts = ", ".join(f"{name} {n:,}" for name, n in sorted(result.counts.items()))
    lines.append(f"{'dry run' if result.dry_run else 'resync'}: {counts or 'nothing to do'}")
    shown = [(k, t, o, r) for (k, t), (o, r) in result.outcomes.items() if o not in SETTLED_OUTCOMES]
    for key_id, target, outcome, reason in shown[:SHOW]:
        lines.append(f"  {outcome} {key_text(result.keys[key_id])} in {target}" + (f": {reason}" if reason else ""))
    if len(shown) > SHOW:
        lines.append(f"  ... and {len(shown) - SHOW:,} more (--json for all)")
    for name, lost in result.lost:
        lines.append(f"lost: {lost.describe()} (record {name}); its keys are unknown: run "
                     f"`cdk-replication verify --repair {source_label} TARGET` to find and fix them")
    for name, why in result.unreadable[:SHOW]:
        lines.append(f"unreadable: {name}: {why}; the record is left unmarked: find its key another way "
                     f"(`cdk-replication verify --repair {source_label} TARGET`)")
    if len(result.unreadable) > SHOW:
        lines.append(f"  ... and {len(result.unreadable) - SHOW:,} more unreadable (--json for all)")
    if result.dry_run:
        lines.append(f"dry run: nothing written, no record marked ({result.settled_records:,} of "
                     f"{result.records:,} records already in sync)")
    else:
        left = "; run the same command again to retry the rest" if result.redriven < result.records else ""
        lines.append(f"marked {result.redriven:,} of {result.records:,} records redriven ({MARKER_PREFIX}<key> "
                     f"or deleted from the queue){left}")
    return lines
