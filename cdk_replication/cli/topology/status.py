"""``cdk-replication status TABLE...`` (where each location of a topology stands, and its next step) and
``cdk-replication leave WRITER... LEAVING`` (has a LEAVING region drained, so that it can be removed?)."""

from __future__ import annotations

import argparse
import dataclasses
import json
from typing import Any, TextIO

from cdk_replication.cli.errors import EXIT_INCOMPLETE, EXIT_OK
from cdk_replication.cli.options import VerifyOptions
from cdk_replication.cli.output import print_json, say_unchecked
from cdk_replication.cli.tables import TableRef, describe_table, probe_read
from cdk_replication.cli.connections import connections
from cdk_replication.cli.topology.join import NEXT_ACTIVE, join_state_path, table_created
from cdk_replication.cli.topology.published import ONE_WAY, location_id, read_replicator, read_status
from cdk_replication.cli.topology.steps import (
    DEPLOY_JOINING,
    open_topology,
    own_replicator,
    published_plan,
    require_every_region,
    require_status,
    tombstone_ttl_attribute,
)
from cdk_replication.cli.topology.drain import undelivered_deletes
from cdk_replication.cli.verify import run_verify

SET_LEAVING = ("set status=LocationStatus.LEAVING on the location, deploy, and stop the application's writes "
               "there")
REMOVE = ("remove the location from the app, deploy, then `cdk destroy` its stack (its table is retained, with its "
          "metadata attributes and tombstones: delete it yourself once it is no longer needed)")


def cmd_status(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """``status``: per table, its published status, which replicators send to it, the join's copy and
    verification (from the join state file) and the next step; exit 0 (it only reads). The last table is read
    with ``--target-profile``, the others with ``--source-profile`` (``--profile``), as ``join`` reads them."""
    source_conn, target_conn = connections(args)
    conns = [source_conn] * (len(args.tables) - 1) + [target_conn]
    tables = [describe_table(c, TableRef.parse(t, "table"), "table") for c, t in zip(conns, args.tables)]
    notes = say_unchecked(err, *tables)
    published = [read_replicator(c, t.info) for c, t in zip(conns, tables)]
    locations = []
    for i, (conn, table) in enumerate(zip(conns, tables)):
        senders = {location_id(other.info): p.sends_to(table.info)
                   for j, (other, p) in enumerate(zip(tables, published)) if p and j != i}
        entry: dict[str, Any] = {"table": location_id(table.info), "arn": table.info.arn,
                                 "status": read_status(conn, table.info), "writer": published[i] is not None,
                                 "sentToBy": senders, "join": _join_progress(table.info, notes, err)}
        entry["nextStep"] = _status_next_step(entry, args.tables)
        locations.append(entry)
    if args.json:
        print_json(out, {"command": "status", "locations": locations, "notes": notes})
    else:
        out.write(status_text(locations))
    return EXIT_OK


def _join_progress(info: Any, notes: list[str], err: TextIO) -> dict[str, Any] | None:
    """What the join state file of ``info`` says (copies done, last verification), or ``None``: no file, or a
    file of another table (another location, or an earlier table of the same name, deleted and created again:
    ``join``'s identity check), which is said on ``err`` (and in ``notes``) and ignored."""
    path = join_state_path(info)
    if not path.exists():
        return None
    data = json.loads(path.read_text())
    expected = {"table": location_id(info), "tableCreated": table_created(info)}
    stale = [f"{k} is {data.get(k)!r}, this table has {v!r}" for k, v in expected.items() if data.get(k) != v]
    if stale:
        notes.append(f"join state file {path} is ignored: it belongs to another table ({'; '.join(stale)})")
        err.write(notes[-1] + "\n")
        return None
    copies = {arn: {"done": bool(c.get("done")), "counts": c.get("counts", {})} for arn, c in data["copy"].items()}
    return {"copy": copies, "verified": data.get("verified"), "stateFile": str(path)}


def _status_next_step(entry: dict[str, Any], tables: list[str]) -> str:
    """The location's next step, from its status, its senders and its join's progress."""
    status, join = entry["status"], entry["join"]
    late = [t for t, sends in entry["sentToBy"].items() if not sends]
    if status is None:
        return f"not deployed by this cdk-replication: {DEPLOY_JOINING}"
    if status == "LEAVING":
        return f"cdk-replication leave <every other region> {entry['table']} (checks it has drained)"
    if late:
        return f"deploy: the replicator of {', '.join(late)} does not send to it yet"
    if status == "ACTIVE":
        return "none (ACTIVE)"
    command = "cdk-replication join <writers> " + entry["table"]
    if join is None or not all(c["done"] for c in join["copy"].values()) or not join["copy"]:
        return f"copy: {command}"
    verified = join.get("verified") or {}
    if not verified or not all(r["inSync"] for r in verified.get("results", {}).values()):
        return f"verify: {command} again once the replicators have caught up"
    return NEXT_ACTIVE


def status_text(locations: list[dict[str, Any]]) -> str:
    """The human-readable report of ``status``."""
    lines = []
    for entry in locations:
        senders = ", ".join(f"{t} {'yes' if s else 'NO'}" for t, s in entry["sentToBy"].items()) or "-"
        lines.append(f"{entry['table']}: status {entry['status'] or 'not published'}"
                     f"{' (writer)' if entry['writer'] else ''}; sent to by: {senders}")
        join = entry["join"]
        if join:
            for arn, copy in join["copy"].items():
                lines.append(f"  copy from {arn}: {'done' if copy['done'] else 'not done'} {copy['counts']}")
            if join.get("verified"):
                ok = all(r["inSync"] for r in join["verified"]["results"].values())
                lines.append(f"  verified: {'in sync' if ok else 'differences'} (epoch {join['verified']['at']})")
        lines.append(f"  next step: {entry['nextStep']}")
    return "\n".join(lines) + "\n"


def cmd_leave(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """``leave``: refuse unless the table is LEAVING and every region is named, then check it has drained
    (equal to every other region, differences re-read with consistent reads, and each of its unexpired
    tombstones held by every other region as the same or a later state); exit 0 when it may be removed, 1
    when not yet."""
    topology = open_topology(args, pool=2 * args.segments + args.workers, role="leaving")
    notes = say_unchecked(err, *topology.others, topology.table)
    plan = published_plan(topology)
    report: dict[str, Any] = {"command": "leave", "table": location_id(topology.table.info), "mode": plan.mode,
                              "verify": {}, "notes": notes}
    if plan.mode == ONE_WAY:
        # Nothing but the replicator writes a one-way replica: nothing of the application's can be stranded there.
        return _leave_report(args, out, {**report, "drained": True, "nextStep": "nothing to drain (one-way "
                                         "replica): " + REMOVE})
    require_status(topology, "LEAVING", SET_LEAVING)
    # Every region must be compared: a write made in LEAVING that reached the named regions but not an unnamed
    # one would be stranded for good by the removal.
    own = own_replicator(topology)
    require_every_region(topology, plan, own)
    plan = dataclasses.replace(plan, ttl_attribute=tombstone_ttl_attribute(topology, plan, own))
    probe_read(topology.table, "leaving")
    options = VerifyOptions(segments=args.segments, workers=args.workers, rate=args.rate,
                            metadata_prefix=plan.metadata_prefix, max_attempts=args.max_retries)
    for other in topology.others:
        probe_read(other, "writer")
        result = run_verify(topology.table, other, options, progress_stream=err, show_progress=not args.quiet)
        report["verify"][location_id(other.info)] = {
            "inSync": not result.differences_remain, "missing": len(result.missing), "extra": len(result.extra),
            "different": len(result.different)}
    deletes = undelivered_deletes(topology.table, topology.others, plan, workers=args.workers,
                                  max_attempts=args.max_retries)
    for other, found in deletes.items():
        report["verify"][other].update(deletes=found, inSync=report["verify"][other]["inSync"]
                                       and not found["undelivered"])
    report["drained"] = all(v["inSync"] for v in report["verify"].values())
    report["nextStep"] = REMOVE if report["drained"] else (
        "wait until every replicator has caught up (IteratorAge near zero; check the failure destinations, "
        "redrive), then run the same command again")
    return _leave_report(args, out, report)


def _leave_report(args: argparse.Namespace, out: TextIO, report: dict[str, Any]) -> int:
    """Print ``leave``'s report; exit 0 when drained, 1 when not yet."""
    if args.json:
        print_json(out, report)
    else:
        verdicts = [f"  against {arn}: {'equal' if v['inSync'] else 'differs'}"
                    f"{_deletes_text(v.get('deletes'))}" for arn, v in report["verify"].items()]
        out.write("\n".join([f"leave {report['table']}: {'drained' if report['drained'] else 'NOT drained'}",
                             *verdicts, f"next step: {report['nextStep']}"]) + "\n")
    return EXIT_OK if report["drained"] else EXIT_INCOMPLETE


def _deletes_text(deletes: dict[str, Any] | None) -> str:
    """``; N of M deletes made here not there yet`` for the text report, or nothing."""
    if not deletes or not deletes["undelivered"]:
        return ""
    return f"; {deletes['undelivered']:,} of its {deletes['tombstones']:,} deletes not there yet"
