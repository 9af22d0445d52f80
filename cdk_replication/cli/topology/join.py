"""``cdk-replication join WRITER... NEW``: copy the data of a running topology into a location that joins it,
after checking the earlier steps are done, then verify (docs/cli.md, "join").

Steps, in order; ``join`` refuses to run one whose predecessor is not done and names it:

1. the new location is deployed with ``status=JOINING`` (its published status parameter says ``JOINING``);
2. every writer's deployed replicator sends to it (its published ``replicator`` parameter lists it);
3. copy: one-way, ``backfill`` (safe against the running replicator); multi-active, every item and tombstone
   of EVERY existing region, as that region's replicator sends it (:mod:`cdk_replication.cli.topology.copy`);
   a one-way replica with a replica transform receives each item TRANSFORMED, the transform taken from the
   source's published parameter with ``backfill``'s safety net (:func:`cdk_replication.cli.transforms.view_for`);
4. verify: the new table equals each writer's (transformed, for a transformed replica; consistent re-reads of
   every difference); one-way, every difference that persists is REPAIRED (``verify --repair``'s one-way rules);
5. (the user) set ``status=ACTIVE`` and deploy.

Why a one-way join repairs. NEW may hold stale items that no record will ever correct: a replica imported from a
native export holds SOURCE's state at the export time T0, while the replicator sends to NEW only from the deploy
that sets ``export_arn`` (T1). A change made between T0 and T1 (an update or a delete) reached NEW by no record,
and the backfill skips every key NEW already holds (it takes them for the replicator's later writes). The repair
makes NEW equal to SOURCE anyway, while the replicator runs:

- step 2 checked, from the published ``replicator`` parameter and before the copy, that the replicator sends to
  NEW: every change made from then on reaches NEW by a record, applied after what it replaces;
- every earlier change (the T0-T1 gap included) is reflected in SOURCE's CURRENT state, which the repair reads
  (consistently) and writes at every key where the tables still differ after the re-reads (a key SOURCE no
  longer holds: NEW's copy is deleted);
- each write is conditional on NEW still holding what the repair read, and SOURCE is read again after it: a
  record the replicator applied meanwhile fails the condition (the key is read again), and a change made
  meanwhile is a later record that the replicator applies after the repair's write (or SOURCE reads different
  and the key is repaired again). So the repair never undoes the replicator's newer write (cli/repair.py).

A key that differs but reads equal on a re-read (replication lag) is left to the replicator. No stream is read,
so the export may be of any age: an older one only leaves more keys to repair. The repair writes through the same
``view`` as the copy, so a transformed replica receives only transformed items. Multi-active joins only verify.

Resumable: the join state file records each finished copy (and the copy's own positions); a re-run skips what is
done, so after a verification that found the replica still catching up, running ``join`` again verifies again.
"""

from __future__ import annotations

import argparse
import dataclasses
import threading
import time
from pathlib import Path
from typing import Any, TextIO

from cdk_replication.cli.backfill import BackfillOptions, run_backfill
from cdk_replication.cli.errors import EXIT_INCOMPLETE, EXIT_INTERRUPTED, EXIT_OK, BadInput
from cdk_replication.cli.items import to_json_item
from cdk_replication.cli.options import VerifyOptions
from cdk_replication.cli.outcomes import REMAINING
from cdk_replication.cli.output import print_json, say_unchecked
from cdk_replication.cli.pacing import Retrier
from cdk_replication.cli.progress import Progress
from cdk_replication.cli.redrive.multi_active import MultiActiveResync
from cdk_replication.cli.repair import RepairReport
from cdk_replication.cli.state import StateFile, default_state_path
from cdk_replication.cli.tables import TableHandle, probe_batch_get, probe_read, probe_write
from cdk_replication.cli.topology.copy import RegionCopy, copy_region
from cdk_replication.cli.topology.published import (
    MULTI_ACTIVE,
    PublishedReplicator,
    identity_of,
    location_id,
    read_replicator,
)
from cdk_replication.cli.transforms import IDENTITY, ReplicaView, published_entry, refuse_multi_active, view_for
from cdk_replication.cli.topology.steps import (
    DEPLOY_JOINING,
    Plan,
    Topology,
    open_topology,
    published_plan,
    require_senders,
    require_status,
    tombstone_ttl_attribute,
)
from cdk_replication.cli.verify import run_verify

NEXT_ACTIVE = "set status=LocationStatus.ACTIVE on the location in the app and deploy"


def join_state_path(info: Any) -> Path:
    """The default join state file of the table ``info``: ``.cdk-replication/join-<region>-<table>.json``."""
    region, name = identity_of(info)
    return default_state_path("join", region, name)


def table_created(info: Any) -> str | None:
    """The table's creation time as the join state file records it (its identity with the table's location)."""
    created = info.description.get("CreationDateTime")
    return str(created) if created is not None else None


def cmd_join(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """``join``: check steps 1-2, copy (step 3), verify (step 4), report; returns the exit code."""
    topology = open_topology(args, pool=args.segments + args.workers, role="new")
    notes = say_unchecked(err, *topology.others, topology.table)
    require_status(topology, "JOINING", DEPLOY_JOINING)
    plan = published_plan(topology)
    own = require_senders(topology, plan)
    if plan.mode == MULTI_ACTIVE:
        plan = dataclasses.replace(plan, ttl_attribute=tombstone_ttl_attribute(topology, plan, own))
    view = _join_view(topology, plan, notes)
    for writer in topology.others:
        probe_read(writer, "writer")
    if plan.mode != MULTI_ACTIVE:
        # Only the one-way backfill's check reads NEW in batches; least privilege: probe what the mode uses.
        probe_batch_get(topology.table, "new")
    probe_write(topology.table, "new", delete=plan.mode != MULTI_ACTIVE)
    state = _join_state(args, topology)
    report: dict[str, Any] = {"command": "join", "table": location_id(topology.table.info), "mode": plan.mode,
                              "writers": [location_id(w.info) for w in topology.others], "notes": notes,
                              "stateFile": str(state.path), "copy": {}, "verify": {}}
    if not view.identity:
        report["transform"] = view.describe()
    copied, interrupted = _copy_all(args, topology, plan, view, state, report, err)
    if copied:
        _verify_all(args, topology, plan, view, state, report, err)
    report["inSync"] = bool(copied and all(v["inSync"] for v in report["verify"].values()))
    report["nextStep"] = _next_step(report, copied, interrupted)
    if args.json:
        print_json(out, report)
    else:
        out.write(join_text(report))
    if interrupted:
        return EXIT_INTERRUPTED
    return EXIT_OK if report["inSync"] else EXIT_INCOMPLETE


def _join_view(topology: Topology, plan: Plan, notes: list[str]) -> ReplicaView:
    """How the new table holds the writers' items: its replica transform, from each writer's published
    parameter (already read), under the same safety net as ``backfill`` (a tagged table is never written
    without its transform). A transformed table is one-way only: refused for a multi-active join."""
    if plan.mode == MULTI_ACTIVE:
        # A transform is one-way (the construct refuses it for multi-active), so a multi-active join reads no
        # tags (least privilege); a published transform is still refused.
        if any(p.transforms.get(identity_of(topology.table.info)) for p in plan.published):
            raise BadInput(f"{location_id(topology.table.info)} is published with a replica transform, which is "
                           "one-way only: a multi-active region cannot join as a transformed copy")
        return IDENTITY
    views = [view_for(topology.others_conn, topology.table,
                      published_entry(p.parameter, p.region, p.transforms.get(identity_of(topology.table.info))),
                      notes=notes)
             for p in plan.published]
    for view in views:
        refuse_multi_active(view, plan.conflict, topology.table)
    return views[0]


def _join_state(args: argparse.Namespace, topology: Topology) -> StateFile:
    """The join state file (``--state-file`` or :func:`join_state_path`), resumed unless ``--restart``."""
    # The new table's creation time: a state file left by a join into an earlier table of the same name (deleted
    # and created again) is refused, not taken for this one's finished copy.
    identity = {"command": "join", "table": location_id(topology.table.info),
                "tableCreated": table_created(topology.table.info),
                "writers": sorted(location_id(w.info) for w in topology.others)}
    state = StateFile(args.state_file or join_state_path(topology.table.info), identity)
    if args.restart:
        state.start()
    else:
        state.load()
    state.data.setdefault("copy", {})
    state.save()
    return state


def _copy_all(args: argparse.Namespace, topology: Topology, plan: Plan, view: ReplicaView, state: StateFile,
              report: dict[str, Any], err: TextIO) -> tuple[bool, bool]:
    """Step 3 for every writer not copied yet; returns ``(every copy done, interrupted)``."""
    for writer, published in zip(topology.others, plan.published):
        name = location_id(writer.info)
        again = _start_copy(state, name, published)
        entry = state.data["copy"][name]
        if entry.get("done"):
            report["copy"][name] = {"done": True, "counts": entry.get("counts", {}), "resumed": True}
            continue
        if plan.mode == MULTI_ACTIVE:
            done, interrupted, result = _copy_multi_active(args, writer, topology.table, plan, state, err)
        else:
            done, interrupted, result = _copy_one_way(args, writer, topology.table, plan, view, err,
                                                      restart=again)
        changed = _parameter_changed(topology, writer, published)
        with state.lock:
            entry = state.data["copy"][name]
            entry.update(done=done and not changed, counts=result["counts"])
            if changed:
                entry["parameterVersion"] = None  # the next run copies again
            state.save()
        report["copy"][name] = {"done": entry["done"], **result, **({"copiedAgain": again} if again else {}),
                                **({"parameterChanged": changed} if changed else {})}
        if not entry["done"]:
            return False, interrupted
    return True, False


def _start_copy(state: StateFile, name: str, published: PublishedReplicator) -> str | None:
    """Record the writer's parameter version the copy from ``name`` is made under. A copy (done or under way)
    made under another version is started again: the parameter changed since, so the writer's replicator may
    have stopped sending to NEW for a while (a rollback, an older app deployed), and the changes made then
    reached NEW by no record. Returns why it is copied again, or ``None``."""
    with state.lock:
        entry = state.data["copy"].get(name)
        again = None
        if entry is not None and entry.get("parameterVersion") != published.version:
            again = (f"{published.parameter} in {published.region} changed since the copy (version "
                     f"{entry.get('parameterVersion')} -> {published.version}): copied again")
            entry = None
        if entry is None:
            state.data["copy"][name] = {"segments": {}, "done": False, "parameterVersion": published.version}
            state.save()
        return again


def _parameter_changed(topology: Topology, writer: TableHandle, published: PublishedReplicator) -> str | None:
    """Why the copy from ``writer`` cannot be trusted: its parameter changed during the copy; else ``None``."""
    now = read_replicator(topology.others_conn, writer.info)
    if now is not None and now.version == published.version:
        return None
    return (f"{published.parameter} in {published.region} changed during the copy (version {published.version} -> "
            f"{None if now is None else now.version}): run the same command again, it copies again")


def _copy_one_way(args: argparse.Namespace, source: TableHandle, new: TableHandle, plan: Plan, view: ReplicaView,
                  err: TextIO, *, restart: bool | str | None = False) -> tuple[bool, bool, dict[str, Any]]:
    """The one-way copy: ``backfill`` (each item transformed by ``view``), with its own state file (resumed by a
    re-run unless ``restart``)."""
    options = BackfillOptions(segments=args.segments, workers=args.workers, rate=args.rate,
                              max_attempts=args.max_retries, restart=bool(args.restart or restart),
                              metadata_prefix=plan.metadata_prefix, view=view)
    result = run_backfill(source, new, options, progress_stream=err, show_progress=not args.quiet)
    failures = [{"key": to_json_item(key), "reason": reason} for key, reason in result.failures[:100]]
    done = result.complete and not result.counts["failed"]
    return done, result.interrupted, {"counts": result.totals, "listed": failures}


def _copy_multi_active(args: argparse.Namespace, writer: TableHandle, new: TableHandle, plan: Plan,
                       state: StateFile, err: TextIO) -> tuple[bool, bool, dict[str, Any]]:
    """The multi-active copy of one region (:func:`copy_region`)."""
    assert plan.conflict is not None
    resync = MultiActiveResync(plan.conflict, Retrier(args.max_retries), plan.metadata_prefix,
                               source_region=writer.info.region, ttl_attribute=plan.ttl_attribute)
    progress = RegionCopy()
    started = time.monotonic()

    def render() -> str:
        c = progress.counts
        return (f"join: copying {writer.info.label()} -> {new.info.label()}: {c['scanned']:,} items, "
                f"{c['repaired']:,} written, {c['settled']:,} already there, {c['kept']:,} kept, "
                f"{c['failed']:,} failed | {time.monotonic() - started:.0f} s")

    stop = threading.Event()
    with Progress(render, err, enabled=not args.quiet):
        done = copy_region(writer, new, resync, state, segments=args.segments, workers=args.workers, stop=stop,
                           progress=progress)
    listed = [{"key": to_json_item(k), "outcome": o, "reason": r} for k, o, r in progress.listed()]
    return done, False, {"counts": dict(progress.counts), "listed": listed}


def _verify_all(args: argparse.Namespace, topology: Topology, plan: Plan, view: ReplicaView, state: StateFile,
                report: dict[str, Any], err: TextIO) -> None:
    """Step 4: the new table against each writer (transformed by ``view``; metadata ignored, tombstones as
    absent). One-way, with ``verify --repair``'s one-way rules (why that is sound: the module docstring);
    multi-active, report only."""
    repair = plan.mode != MULTI_ACTIVE
    options = VerifyOptions(segments=args.segments, workers=args.workers, rate=args.rate,
                            metadata_prefix=plan.metadata_prefix, max_attempts=args.max_retries, repair=repair)
    for writer in topology.others:
        result = run_verify(writer, topology.table, options, progress_stream=err, show_progress=not args.quiet,
                            view=view)
        found: dict[str, Any] = {
            "inSync": not result.differences_remain, "sourceItems": result.source_items,
            "missing": len(result.missing), "extra": len(result.extra), "different": len(result.different)}
        if repair:
            found["repair"] = _repair_summary(result.repair, writer)
        report["verify"][location_id(writer.info)] = found
    with state.lock:
        state.data["verified"] = {"at": int(time.time()), "results": report["verify"]}
        state.save()


def _repair_summary(repair: RepairReport | None, writer: TableHandle) -> dict[str, Any]:
    """The repair's counts and (up to 100) keys it left different, with their outcome and reason."""
    if repair is None:  # nothing differed after the re-reads: nothing to repair
        return {"counts": {}, "listed": []}
    listed = [{"key": to_json_item(writer.info.key.key_from_id(k)), "outcome": o, "reason": repair.reasons.get(k)}
              for k, o in repair.outcomes.items() if o in REMAINING]
    return {"counts": dict(repair.counts), "listed": listed[:100]}


def _next_step(report: dict[str, Any], copied: bool, interrupted: bool) -> str:
    """What the user does next, in one line."""
    if interrupted:
        return "run the same command again to resume the copy"
    changed = [c["parameterChanged"] for c in report["copy"].values() if c.get("parameterChanged")]
    if changed:
        return changed[0]
    if not copied:
        return "fix what failed (listed), then run the same command again: it resumes"
    left = sum(n for v in report["verify"].values() for o, n in v.get("repair", {}).get("counts", {}).items()
               if o in REMAINING)
    if not report["inSync"] and left:
        return (f"the repair left {left:,} key{'s' if left > 1 else ''} different (listed: still changing, or "
                "failed): fix what failed, "
                "then run the same command again (the copy is done, it verifies and repairs again)")
    if not report["inSync"]:
        return ("wait until the replicators have caught up (IteratorAge near zero), then run the same command "
                "again: the copy is done, it verifies again")
    return NEXT_ACTIVE


def join_text(report: dict[str, Any]) -> str:
    """The human-readable report of ``join``."""
    lines = [f"join {report['table']} ({report['mode']}):",
             "  1. status JOINING: yes", "  2. every writer's replicator sends to it: yes"]
    for arn, copy in report["copy"].items():
        counts = ", ".join(f"{v:,} {k}" for k, v in sorted(copy.get("counts", {}).items()))
        state = "done" if copy["done"] else "NOT done"
        lines.append(f"  3. copy from {arn}: {state}{' (earlier run)' if copy.get('resumed') else ''}: {counts}")
        lines += [f"       {copy[k]}" for k in ("copiedAgain", "parameterChanged") if copy.get(k)]
        lines += [f"       {e['key']}: {e.get('outcome', 'failed')}: {e['reason']}" for e in copy.get("listed", [])]
    for arn, found in report["verify"].items():
        differences = f"{found['missing']:,} missing, {found['extra']:,} extra, {found['different']:,} different"
        repaired = found.get("repair", {}).get("counts")
        verdict = ("in sync" + (f" after the repair (found {differences})" if repaired else "")
                   if found["inSync"] else differences)
        lines.append(f"  4. verify against {arn}: {verdict}")
        if repaired:
            lines.append("       repair: " + ", ".join(f"{v:,} {k}" for k, v in sorted(repaired.items())))
            lines += [f"       {e['key']}: {e['outcome']}: {e['reason']}" for e in found["repair"]["listed"]]
    lines.append(f"next step: {report['nextStep']}")
    return "\n".join(lines) + "\n"
