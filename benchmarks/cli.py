"""``python -m benchmarks``: every measurement in one run, printed as tables and saved as JSON.

Sections (``--sections``, default all): ``ceiling``, ``replication``, ``memory``, ``backfill``. Each section
runs its measured code in fresh child processes (see worker.py, ceiling.py, backfill_worker.py) against one
DynamoDB Local started for the run. See benchmarks/README.md for the method.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from cdk_replication.local import DynamoDBLocal

from benchmarks import runner
from benchmarks import workload as wl
from benchmarks.report import KINESIS_KIND
from benchmarks.runner import base_env, replication_env, run_child, summarize

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
#: Lambda's limit on an invocation's payload (the event source mapping's batches stay within it).
MAX_PAYLOAD_BYTES = 6 * 1024 * 1024

SECTIONS = ("ceiling", "replication", "memory", "backfill")
#: REPLICATION_MAX_CONCURRENCY of the runs that do not vary it (the replicator's default is 128 since 7593d96).
CONCURRENCY = 64
#: The one-way replicator fed by Kinesis runs at the construct's default concurrency.
KINESIS_CONCURRENCY = 128


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="small sizes for a smoke run (about 2 minutes)")
    p.add_argument("--records", type=int, help="stream records per workload (full 4000, quick 2000)")
    p.add_argument("--hot-items", type=int, default=100, help="items of the hot-key workload (default 100)")
    p.add_argument("--rtt-ms", type=float, default=100.0, help="simulated replica round trip (default 100)")
    p.add_argument("--batch-sizes", type=_ints, help="mapping batch sizes (full 100,500,1000,2000; quick 100,1000)")
    p.add_argument(
        "--concurrency", type=_ints, help="REPLICATION_MAX_CONCURRENCY values for multi-active at the largest "
        "batch size (full 64,128,256; quick 64,256); 64 is used everywhere else"
    )
    p.add_argument("--baseline-sample", type=int, help="records the naive baseline replicates at the round trip "
                   "(full 100, quick 50); at zero round trip it gets up to 3000")
    p.add_argument("--backfill-items", type=int, help="items of the backfill source table (full 100000, quick 5000)")
    p.add_argument("--ceiling-items", type=int, help="items per ceiling measurement (full 4000, quick 2000)")
    p.add_argument("--code", default="HEAD", help="git revision whose lambda_src/ and cdk_replication/ are measured "
                   "(default HEAD: a snapshot, so others' uncommitted edits do not change a run), or 'worktree'")
    p.add_argument("--no-experiments", action="store_true",
                   help="skip the runs of the proposed client tuning (monkeypatched in the worker)")
    p.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated subset of {','.join(SECTIONS)}")
    p.add_argument("--write-docs", action="store_true", help="rewrite docs/performance.md and the plot from this run")
    p.add_argument("--output", type=Path, help="results JSON (default benchmarks/results/latest[-quick].json)")
    return p


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    quick = args.quick
    return {
        "quick": quick,
        "records": args.records or (2000 if quick else 4000),
        "hot_items": args.hot_items,
        "rtt_ms": args.rtt_ms,
        "batch_sizes": args.batch_sizes or ([100, 1000] if quick else [100, 500, 1000, 2000]),
        "concurrency": args.concurrency or ([64, 256] if quick else [64, 128, 256]),
        "baseline_sample": args.baseline_sample or (50 if quick else 100),
        "baseline_sample_zero_rtt": 1000 if quick else 3000,
        "backfill_items": args.backfill_items or (5000 if quick else 100000),
        "ceiling_items": args.ceiling_items or (2000 if quick else 4000),
        "sections": [s for s in args.sections.split(",") if s],
        "experiments": not args.no_experiments,
    }


def _snapshot(revision: str, work: Path) -> Path:
    """``lambda_src/`` and ``cdk_replication/`` of ``revision``, extracted under ``work``."""
    return runner.snapshot_code(revision, work / "code")


def _git_state(revision: str) -> dict[str, Any]:
    """The code measured: a commit snapshot, or the working tree and which measured files differ from HEAD."""
    import subprocess

    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=30).stdout.rstrip()
        except Exception:  # noqa: BLE001 - informational only
            return ""

    if revision != "worktree":
        return {"commit": git("rev-parse", "--short", revision).strip(), "uncommitted": [], "snapshot": True}
    dirty = git("status", "--porcelain", "--", "lambda_src", "cdk_replication/cli", "cdk_replication/local")
    return {"commit": git("rev-parse", "--short", "HEAD").strip(), "uncommitted": dirty.splitlines(), "snapshot": False}


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _log(message: str) -> None:
    print(f"[{dt.datetime.now(dt.timezone.utc):%H:%M:%S}] {message}", flush=True)


# --- sections ------------------------------------------------------------------------------------------------


def run_ceiling(ddb: DynamoDBLocal, s: dict[str, Any], work: Path) -> list[dict[str, Any]]:
    spec = {
        "region": wl.REPLICA_REGION,
        "items": s["ceiling_items"],
        "payload_bytes": 200,
        "kinds": ["batch", "conditional", "transact"],
        "threads": [16, 64, 256],
    }
    load = _load()
    results = run_child("benchmarks.ceiling", spec, base_env(ddb, wl.REPLICA_REGION), work)
    for r in results:
        r.setdefault("load", load)
        _log(f"ceiling {r['kind']:<11} threads={r['threads']:<3} {r['items_per_s']:8.0f} items/s (errors {r['errors']})")
    return results


def _replicate(
    ddb: DynamoDBLocal,
    work: Path,
    source: wl.TableSpec,
    records: list[dict[str, Any]],
    expected: dict[str, str | None],
    *,
    workload: str,
    kind: str,
    mode: str,
    rtt_ms: float,
    batch_size: int,
    concurrency: int | None,
    limit: int | None = None,
    tuning: str | None = None,
    change_source: str | None = None,
) -> dict[str, Any]:
    """One run; ``change_source="KINESIS"``: ``records`` are Kinesis records (``wl.kinesis_records``) and the
    replicator reads them as REPLICATION_CHANGE_SOURCE=KINESIS does."""
    concurrency = concurrency or CONCURRENCY
    target = wl.create_table(ddb, "replica", wl.REPLICA_REGION, stream=False)
    events = work / f"events-{batch_size}-{limit}.jsonl"
    count = wl.write_events(events, records, batch_size, limit)
    env = base_env(ddb)
    env.update(replication_env(source, [target], mode, concurrency, change_source))
    load_before = _load()
    raw = run_child(
        "benchmarks.worker",
        {"kind": kind, "env": env, "rtt_ms": rtt_ms, "events_file": str(events), "tuning": tuning},
        env,
        work,
    )
    row = summarize(raw)
    # A copy that is wrong is not a result: check every item (key and conflict attribute) of full runs.
    check = None
    if limit is None:
        check = wl.check_copy(ddb, target, expected)
    wl.delete_table(ddb, target)
    events.unlink()
    if tuning:
        kind = f"{kind}+{tuning}-tuning"
    if change_source == "KINESIS":
        kind = KINESIS_KIND
    row.update(
        workload=workload,
        kind=kind,
        mode=mode,
        rtt_ms=rtt_ms,
        batch_size=batch_size,
        concurrency=concurrency,
        change_source=change_source or "DYNAMODB_STREAMS",
        sample=limit is not None,
        copy_check="ok" if limit is None and check is None else (check or "not checked (sample)"),
        load=load_before,
    )
    _log(
        f"{workload:<6} {kind:<20} {mode:<12} rtt={rtt_ms:>5.0f}ms batch={batch_size:<5} conc={row['concurrency']:<3} "
        f"{row['records_per_s']:8.1f} rec/s  p50={row['p50_s']:.3f}s p99={row['p99_s']:.3f}s "
        f"cpu={row['cpu_us_per_record']:.0f}us/rec rss={row['peak_rss_mib']:.0f}MiB copy={row['copy_check']} "
        f"load={load_before[0]}"
    )
    if row["failed_batches"]:
        _log(f"  WARNING: {row['failed_batches']} batches reported failures")
    return row


def run_replication(ddb: DynamoDBLocal, s: dict[str, Any], work: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    rtt = s["rtt_ms"]
    sizes = s["batch_sizes"]
    largest = max(sizes)
    shapes = [("spread", s["records"]), ("hot", min(s["hot_items"], s["records"]))]
    for workload, items in shapes:
        source = wl.create_table(ddb, f"src-{workload}", wl.SOURCE_REGION, stream=True)
        t0 = time.perf_counter()
        wl.write_workload(ddb, source, s["records"], items)
        records = wl.read_stream(ddb, source)
        expected = wl.final_states(records)
        _log(f"{workload}: {len(records)} stream records over {len(expected)} items ({time.perf_counter() - t0:.0f} s)")
        common = dict(workload=workload)
        kinesis = wl.kinesis_records(records, source)

        def via_kinesis(rtt_ms: float, size: int, conc: int = KINESIS_CONCURRENCY) -> dict[str, Any]:
            """The same changes read from a Kinesis data stream (one-way, one conditional PutItem per item)."""
            return _replicate(ddb, work, source, kinesis, expected, **common, kind="replicator", mode="ONE_WAY",
                              rtt_ms=rtt_ms, batch_size=size, concurrency=conc, change_source="KINESIS")

        if workload == "spread":
            for mode in ("ONE_WAY", "MULTI_ACTIVE"):
                for size in sizes:
                    rows.append(_replicate(ddb, work, source, records, expected, **common, kind="replicator",
                                           mode=mode, rtt_ms=rtt, batch_size=size, concurrency=None))
            for conc in s["concurrency"]:
                if conc == 64:
                    continue
                rows.append(_replicate(ddb, work, source, records, expected, **common, kind="replicator",
                                       mode="MULTI_ACTIVE", rtt_ms=rtt, batch_size=largest, concurrency=conc))
            rows += [via_kinesis(rtt, size) for size in sizes]
            rows += [via_kinesis(rtt, largest, conc) for conc in s["concurrency"] if conc != KINESIS_CONCURRENCY]
            # Zero round trip: CPU per record, and the rate when nothing but CPU and DynamoDB Local limit it.
            for mode in ("ONE_WAY", "MULTI_ACTIVE"):
                for size in sorted({100, largest}):
                    rows.append(_replicate(ddb, work, source, records, expected, **common, kind="replicator",
                                           mode=mode, rtt_ms=0, batch_size=size, concurrency=None))
            rows += [via_kinesis(0, size) for size in sorted({100, largest})]
            # The naive baseline, in the same run: a sample at the round trip, a larger one without it.
            for mode in ("ONE_WAY", "MULTI_ACTIVE"):
                rows.append(_replicate(ddb, work, source, records, expected, **common, kind="naive", mode=mode,
                                       rtt_ms=rtt, batch_size=100, concurrency=None, limit=s["baseline_sample"]))
                rows.append(_replicate(ddb, work, source, records, expected, **common, kind="naive", mode=mode,
                                       rtt_ms=0, batch_size=100, concurrency=None,
                                       limit=min(len(records), s["baseline_sample_zero_rtt"])))
            if s["experiments"]:
                # The client change proposed in docs/performance.md, applied by a monkeypatch in the worker.
                top = max(s["concurrency"])
                for mode, rtt_ms, size, conc in (
                    ("ONE_WAY", rtt, 1000 if 1000 in sizes else largest, None),
                    ("MULTI_ACTIVE", rtt, largest, top),
                    ("ONE_WAY", 0, 100, None),
                    ("MULTI_ACTIVE", 0, 100, None),
                ):
                    rows.append(_replicate(ddb, work, source, records, expected, **common, kind="replicator",
                                           mode=mode, rtt_ms=rtt_ms, batch_size=size, concurrency=conc,
                                           tuning="client"))
        else:
            for mode in ("ONE_WAY", "MULTI_ACTIVE"):
                for size in sorted({100, largest}):
                    rows.append(_replicate(ddb, work, source, records, expected, **common, kind="replicator",
                                           mode=mode, rtt_ms=rtt, batch_size=size, concurrency=None))
            rows += [via_kinesis(rtt, size) for size in sorted({100, largest})]
        wl.delete_table(ddb, source)
    return rows


def _six_mb_event(ddb: DynamoDBLocal, path: Path) -> int:
    """A real stream batch of just under 6 MB: MODIFY records of ~3 KB items (old and new image each)."""
    source = wl.create_table(ddb, "src-6mb", wl.SOURCE_REGION, stream=True)
    wl.write_workload(ddb, source, 2 * 1100, 1100, payload_bytes=2800)
    records = [r for r in wl.read_stream(ddb, source) if r["eventName"] == "MODIFY"]
    wl.delete_table(ddb, source)
    chosen: list[dict[str, Any]] = []
    size = len('{"Records":[]}')
    for record in records:
        extra = len(json.dumps(record, separators=(",", ":"))) + 1
        if size + extra > MAX_PAYLOAD_BYTES:
            break
        chosen.append(record)
        size += extra
    path.write_text(json.dumps({"Records": chosen}, separators=(",", ":")))
    return len(chosen)


def run_memory(ddb: DynamoDBLocal, s: dict[str, Any], work: Path) -> list[dict[str, Any]]:
    event = work / "six-mb-event.json"
    count = _six_mb_event(ddb, event)
    rows = []
    for mode in ("ONE_WAY", "MULTI_ACTIVE"):
        source = wl.TableSpec("bench-src-6mb", wl.SOURCE_REGION)
        target = wl.create_table(ddb, "replica-6mb", wl.REPLICA_REGION, stream=False)
        env = base_env(ddb)
        env.update(replication_env(source, [target], mode))
        raw = run_child("benchmarks.worker", {"kind": "memory", "env": env, "rtt_ms": s["rtt_ms"],
                                              "events_file": str(event)}, env, work)
        wl.delete_table(ddb, target)
        raw.update(mode=mode, peak_rss_mib=raw["peak_rss_kib"] / 1024, imported_rss_mib=raw["rss_imported_kib"] / 1024,
                   rtt_ms=s["rtt_ms"], load=_load())
        rows.append(raw)
        _log(f"6 MB event {mode:<12} {raw['records']} records, {raw['payload_bytes']:,} bytes: peak RSS "
             f"{raw['peak_rss_mib']:.1f} MiB (after import {raw['imported_rss_mib']:.1f} MiB), {raw['seconds']:.2f} s, "
             f"failed={raw['failed']}")
    assert count == rows[0]["records"]
    return rows


def _backfill_source(ddb: DynamoDBLocal, items: int) -> wl.TableSpec:
    source = wl.create_table(ddb, "bf-src", wl.SOURCE_REGION, stream=False)
    t0 = time.perf_counter()
    wl.write_workload(ddb, source, items, items)
    _log(f"backfill source: {items:,} items loaded ({time.perf_counter() - t0:.0f} s)")
    return source


def run_backfill(ddb: DynamoDBLocal, s: dict[str, Any], work: Path) -> list[dict[str, Any]]:
    """The CLI copies the whole table without a round trip, and with it at 8 segments x 256 workers; its
    defaults (4 x 16) at the round trip copy a smaller table (16 writers at 100 ms cannot pass ~160 items/s,
    so 100,000 items would take over ten minutes); the naive copy runs on samples."""
    rtt = s["rtt_ms"]
    n = s["backfill_items"]
    small = max(1000, n // 20)
    source = _backfill_source(ddb, n)
    env = base_env(ddb)
    runs: list[dict[str, Any]] = [
        {"kind": "cli", "rtt_ms": 0, "extra_args": []},
        {"kind": "cli", "rtt_ms": rtt, "extra_args": ["--segments", "8", "--workers", "256"]},
        {"kind": "naive", "rtt_ms": 0, "limit": min(n, 2000 if s["quick"] else 3000)},
        {"kind": "naive", "rtt_ms": rtt, "limit": s["baseline_sample"]},
        {"kind": "cli", "rtt_ms": rtt, "extra_args": [], "small": True},
    ]
    rows = []
    small_source: wl.TableSpec | None = None
    for run in runs:
        table = source
        if run.get("small"):
            wl.delete_table(ddb, source)
            small_source = table = _backfill_source(ddb, small)
        target = wl.create_table(ddb, "bf-dst", wl.REPLICA_REGION, stream=False)
        spec = dict(run, source=table.name, target=target.name, source_region=table.region,
                    target_region=target.region, endpoint_url=ddb.endpoint_url,
                    state_file=str(work / "backfill-state.json"), limit=run.get("limit", n))
        load = _load()
        raw = run_child("benchmarks.backfill_worker", spec, env, work)
        wl.delete_table(ddb, target)
        table_items = small if run.get("small") else n
        raw.update(kind=run["kind"], rtt_ms=run["rtt_ms"], options=" ".join(run.get("extra_args", [])) or "defaults",
                   table_items=table_items, sample=run["kind"] == "naive" and raw["items"] < table_items, load=load)
        rows.append(raw)
        _log(f"backfill {raw['kind']:<6} rtt={raw['rtt_ms']:>5.0f}ms {raw['options']:<28} {raw['items']:>7} items "
             f"{raw['items_per_s']:8.1f} items/s ({raw['seconds']:.1f} s) load={load[0]}")
    wl.delete_table(ddb, small_source or source)
    return rows


# --- main ----------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    s = _settings(args)
    unknown = set(s["sections"]) - set(SECTIONS)
    if unknown:
        print(f"unknown section(s): {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    results: dict[str, Any] = {
        "settings": s,
        "command": "python -m benchmarks " + " ".join(argv if argv is not None else sys.argv[1:]),
        "started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "load_start": _load(),
        "git": _git_state(args.code),
    }
    _log(f"settings: {json.dumps(s)}  load={results['load_start']}")
    work = Path(tempfile.mkdtemp(prefix="cdk-replication-bench-"))
    RESULTS.mkdir(parents=True, exist_ok=True)
    output = args.output or RESULTS / ("latest-quick.json" if s["quick"] else "latest.json")
    partial = output.with_name(output.stem + ".partial.json")
    if args.code != "worktree":
        runner.CODE_DIR = _snapshot(args.code, work)
    try:
        with DynamoDBLocal(jvm_options=["-Xmx2g"]) as ddb:
            # DynamoDB Local is a JVM: let its JIT compile the write paths before anything is measured.
            _log("warming up DynamoDB Local")
            run_child("benchmarks.ceiling", {"region": wl.REPLICA_REGION, "items": 2000, "payload_bytes": 200,
                                             "kinds": ["batch", "conditional"], "threads": [64]},
                      base_env(ddb, wl.REPLICA_REGION), work)
            for section in SECTIONS:
                if section in s["sections"]:
                    _log(f"== {section}")
                    results[section] = globals()[f"run_{section}"](ddb, s, work)
                    # Saved after every section, so an interrupted run keeps what it measured.
                    partial.write_text(json.dumps(results, indent=1) + "\n")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    results["finished"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    results["load_end"] = _load()

    from benchmarks.report import evaluate, text_report

    results["targets"] = evaluate(results)
    print()
    print(text_report(results))
    output.write_text(json.dumps(results, indent=1) + "\n")
    partial.unlink(missing_ok=True)
    _log(f"results saved to {output}")
    if args.write_docs:
        from benchmarks.report import write_docs

        for path in write_docs(results, output):
            _log(f"wrote {path}")
    return 0
