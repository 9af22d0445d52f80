"""``python -m benchmarks.saturated``: one saturated shard per mode, with parallel batches (issue 17).

For each mode (DynamoDB Streams one-way, Kinesis one-way, multi-active) and workload (*spread*: every record
a new item; *mixed*: issue 17's black box, 3 writes per key with 10% deletes and re-creates, ~200-byte items),
the stream already holds every record when the clock starts (a saturated shard: Lambda's poller never waits
for a batch to fill). Lambda's ``ParallelizationFactor`` is modelled as Lambda documents it: each record goes
to one of ``factor`` lanes by a stable hash of its item key (DynamoDB Streams: the record's ``Keys``;
Kinesis: its partition key), so one key's records stay in one lane, in order; each lane is its own container
(a fresh ``benchmarks.worker`` process with its own CPU) that handles its lane's consecutive batches of up to
the batch size one after the other; the lanes run concurrently, started together once every container has
imported the handler. Measured per row: records / wall time from the first invocation's start to the last
one's end (the shard's rate); CPU per record over all containers; p50/p99 batch duration.

Rows per mode and workload, in one run: the naive baseline (benchmarks/naive.py, factor 1, a sample),
*today* (the code of ``TODAY_COMMIT`` at its defaults: factor 1, batch 1,000, 128 writers), and the
*candidate* defaults on the measured code (``--code``, default HEAD) as ``cdk_replication.defaults`` of the
working tree gives them per mode. ``--explain`` adds the rows behind the black-box explanation
(docs/performance.md). Results: benchmarks/results/saturated[-quick].json, saturated.svg; ``--write-docs``
rewrites the generated part of docs/performance.md's issue 17 section (``--from-json FILE`` re-renders a
saved run without measuring).
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from benchmarks import runner
from benchmarks import workload as wl
from benchmarks.runner import base_env, finish_child, percentile, replication_env, start_child

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
#: "Today's defaults" of issue 17: the code and defaults at the start of session 6.
TODAY_COMMIT = "1817fb1"
#: The three ways a shard is replicated: (REPLICATION_MODE, REPLICATION_CHANGE_SOURCE or None).
MODES: dict[str, tuple[str, str | None]] = {
    "streams-one-way": ("ONE_WAY", None),
    "kinesis-one-way": ("ONE_WAY", "KINESIS"),
    "multi-active": ("MULTI_ACTIVE", None),
}


@dataclass(frozen=True)
class Settings:
    """Mapping settings of one row: parallelization factor, batch size, REPLICATION_MAX_CONCURRENCY."""

    factor: int
    batch_size: int
    concurrency: int


#: Defaults of ``TODAY_COMMIT`` in every mode.
TODAY = Settings(factor=1, batch_size=1000, concurrency=128)


def candidate_settings(mode: str) -> Settings:
    """The construct's defaults for ``mode`` in the working tree's cdk_replication/defaults.py."""
    from cdk_replication import defaults

    per_mode = getattr(defaults, "MAPPING_DEFAULTS", None)
    if per_mode is None:  # before per-mode defaults existed
        return Settings(defaults.PARALLELIZATION_FACTOR, defaults.BATCH_SIZE, defaults.MAX_CONCURRENCY)
    factor, batch_size = per_mode[mode]
    return Settings(factor, batch_size, defaults.MAX_CONCURRENCY)


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _log(message: str) -> None:
    print(f"[{dt.datetime.now(dt.timezone.utc):%H:%M:%S}] {message}", flush=True)


# --- workloads -----------------------------------------------------------------------------------------------


@dataclass
class Workload:
    """A source table's stream records, as DynamoDB Streams and as Kinesis deliver them, and the end state."""

    name: str
    source: wl.TableSpec
    records: list[dict[str, Any]]
    kinesis: list[dict[str, Any]]
    expected: dict[str, Any]


def build_workload(ddb: Any, name: str, records: int, items: int) -> Workload:
    source = wl.create_table(ddb, f"src-{name}", wl.SOURCE_REGION, stream=True)
    if name.startswith("mixed"):
        wl.write_mixed_workload(ddb, source, records, items)
    else:
        wl.write_workload(ddb, source, records, items)
    stream = wl.read_stream(ddb, source)
    deletes = sum(1 for r in stream if r["eventName"] == "REMOVE")
    _log(f"{name}: {len(stream)} stream records over {items} items, {deletes} deletes")
    return Workload(name, source, stream, wl.kinesis_records(stream, source), wl.final_states(stream))


def lane_of(record: dict[str, Any], factor: int) -> int:
    """The lane (0..factor-1) of ``record``: a stable hash of its item key, as Lambda keeps one partition key's
    records in one of a shard's concurrent batches."""
    if factor == 1:
        return 0
    key = record["kinesis"]["partitionKey"] if "kinesis" in record else json.dumps(record["dynamodb"]["Keys"], sort_keys=True)
    return int.from_bytes(hashlib.md5(key.encode()).digest()[:8], "big") % factor


def split_lanes(records: list[dict[str, Any]], factor: int) -> list[list[dict[str, Any]]]:
    """``records`` (one shard's, in stream order) dealt to ``factor`` lanes by :func:`lane_of`, each lane in
    stream order: what Lambda's concurrent batches of one shard see."""
    lanes: list[list[dict[str, Any]]] = [[] for _ in range(factor)]
    for record in records:
        lanes[lane_of(record, factor)].append(record)
    return lanes


# --- one row -------------------------------------------------------------------------------------------------


def run_row(
    ddb: Any,
    work: Path,
    w: Workload,
    *,
    label: str,
    mode: str,
    settings: Settings,
    kind: str = "replicator",
    code: Path | None,
    rtt_ms: float,
    limit: int | None = None,
    trace: bool = False,
    gateway: Any = None,
) -> dict[str, Any]:
    """Replicate ``w`` (its first ``limit`` records) to a fresh table with ``settings`` and measure it.

    ``gateway``: a ``cdk_replication.local.gateway.Gateway`` in this process that the containers talk to
    instead of DynamoDB Local (as the local runtime's functions do); its CPU (this process's, which otherwise
    only waits) is reported as ``gateway_cpu_us_per_record``."""
    repl_mode, change_source = MODES[mode]
    records = (w.kinesis if change_source else w.records)[:limit]
    target = wl.create_table(ddb, "replica", wl.REPLICA_REGION, stream=False)
    env = base_env(ddb)
    env.update(replication_env(w.source, [target], repl_mode, settings.concurrency, change_source))
    if gateway is not None:
        env.update(gateway.endpoint_env())
    lanes = split_lanes(records, settings.factor)
    go = work / f"go-{time.monotonic_ns()}"
    children = []
    for i, lane in enumerate(l for l in lanes if l):
        events = work / f"events-{go.name}-{i}.jsonl"
        wl.write_events(events, lane, settings.batch_size)
        spec = {"kind": kind, "env": env, "rtt_ms": rtt_ms, "events_file": str(events), "trace": trace,
                "ready_file": str(events) + ".ready", "go_file": str(go)}
        children.append((start_child("benchmarks.worker", spec, env, work, code_dir=code), Path(spec["ready_file"])))
    _wait_ready(children)
    load = _load()
    cpu0 = time.process_time()
    go.write_text("go")
    raws = [finish_child(child) for child, _ in children]
    row = summarize_lanes(raws)
    if gateway is not None:
        row["gateway_cpu_us_per_record"] = 1e6 * (time.process_time() - cpu0) / row["records"]
    check = wl.check_copy(ddb, target, w.expected) if limit is None else None
    wl.delete_table(ddb, target)
    row.update(label=label, mode=mode, workload=w.name, kind=kind, via_gateway=gateway is not None, rtt_ms=rtt_ms, load=load, load_after=_load(),
               sample=limit is not None, copy_check="not checked (sample)" if limit is not None else (check or "ok"),
               **asdict(settings))
    _log(f"{w.name:<6} {mode:<16} {label:<22} f={settings.factor:<2} b={settings.batch_size:<5} "
         f"c={settings.concurrency:<3} {row['records_per_s']:8.1f} rec/s p50={row['p50_s']:.3f}s "
         f"p99={row['p99_s']:.3f}s cpu={row['cpu_us_per_record']:.0f}us/rec copy={row['copy_check']} load={load[0]}")
    return row


def _wait_ready(children: list[tuple[runner.Child, Path]], timeout_s: float = 300) -> None:
    """Every container has loaded the handler (or one died: its error is raised by ``finish_child``)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if all(ready.exists() or child.proc.poll() is not None for child, ready in children):
            return
        time.sleep(0.02)
    raise TimeoutError("containers did not load the handler in time")


def summarize_lanes(raws: list[dict[str, Any]]) -> dict[str, Any]:
    """The shard's numbers from its lanes' results: rate over the wall time from the first batch's start to
    the last batch's end, CPU over all containers, batch durations pooled."""
    spans = [span for raw in raws for span in raw["spans"]]
    durations = [d for raw in raws for d in raw["durations"]]
    records = sum(raw["records"] for raw in raws)
    wall = max(end for _, end in spans) - min(start for start, _ in spans)
    first = [raw["durations"][0] for raw in raws if raw["durations"]]
    later = [d for raw in raws for d in raw["durations"][1:]]
    requests: dict[str, int] = {}
    for raw in raws:
        for batch in raw.get("requests", []):
            for k, v in batch.items():
                requests[k] = requests.get(k, 0) + v
    return {
        "records": records,
        "containers": len(raws),
        "batches": len(durations),
        "wall_s": wall,
        "records_per_s": records / wall if wall else float("nan"),
        "p50_s": statistics.median(durations),
        "p99_s": percentile(durations, 99),
        "max_s": max(durations),
        "first_batch_s": max(first),
        "p99_after_first_s": percentile(later, 99) if later else float("nan"),
        "cpu_us_per_record": 1e6 * sum(raw["cpu_seconds"] for raw in raws) / records,
        "peak_rss_mib": max(raw["peak_rss_kib"] for raw in raws) / 1024.0,
        "failed_batches": sum(raw["failed_batches"] for raw in raws),
        "requests": requests,
    }


# --- the run -------------------------------------------------------------------------------------------------


def sizes(quick: bool, records: int | None) -> dict[str, Any]:
    """Workload sizes: full = the black box's 3,000 writes over 1,000 keys (mixed) and 4,000 new items (spread)."""
    mixed = records or (1200 if quick else 3000)
    return {
        "spread": (records or (1000 if quick else 4000),) * 2,
        "mixed": (mixed, mixed // 3),
        "naive_sample": 30 if quick else 100,
    }


def _snapshot(revision: str, work: Path) -> Path:
    """``lambda_src/`` and ``cdk_replication/`` of ``revision`` under ``work`` (as ``python -m benchmarks --code``)."""
    return runner.snapshot_code(revision, work / f"code-{revision}")


def _rev(revision: str) -> str:
    import subprocess

    if revision == "worktree":
        return "worktree"
    return subprocess.run(["git", "rev-parse", "--short", revision], cwd=ROOT, capture_output=True, text=True,
                          check=True).stdout.strip()


def run_saturated(ddb: Any, work: Path, w: Workload, args: argparse.Namespace, codes: dict[str, Path | None],
                  sample: int) -> list[dict[str, Any]]:
    """Per mode: naive (shared by the two one-way modes), today, [HEAD at today's defaults], candidate."""
    rows = []
    common = dict(rtt_ms=args.rtt_ms)
    for repl_mode in ("ONE_WAY", "MULTI_ACTIVE"):
        mode = "streams-one-way" if repl_mode == "ONE_WAY" else "multi-active"
        rows.append(run_row(ddb, work, w, label="naive", mode=mode, kind="naive", settings=Settings(1, 100, 1),
                            code=codes["head"], limit=sample, **common))
    for mode in args.modes:
        rows.append(run_row(ddb, work, w, label="today", mode=mode, settings=TODAY, code=codes["today"], **common))
        if not args.quick:
            rows.append(run_row(ddb, work, w, label="code, today's defaults", mode=mode, settings=TODAY,
                                code=codes["head"], **common))
        for settings in args.candidates.get(mode) or [candidate_settings(mode)]:
            rows.append(run_row(ddb, work, w, label="candidate", mode=mode, settings=settings, code=codes["head"],
                                **common))
    return rows


def run_explain(ddb: Any, work: Path, workloads: dict[str, Workload], args: argparse.Namespace,
                code: Path | None) -> list[dict[str, Any]]:
    """Multi-active, one container (factor 1) as the black box ran it, every request counted: the spread,
    mixed and mixed-without-deletes workloads at batch sizes 100 and 1,000, 128 writers; then the mixed
    workload through the local runtime's gateway (IAM and accounts enforced in front of DynamoDB Local)."""
    from cdk_replication.local.gateway import Gateway

    rows = []
    for name in ("spread", "mixed", "mixed-nodelete"):
        for batch in (100, 1000):
            rows.append(run_row(ddb, work, workloads[name], label="explain", mode="multi-active",
                                settings=Settings(1, batch, 128), code=code, rtt_ms=args.rtt_ms, trace=True))
    with Gateway(ddb) as gateway:
        for batch in (100, 1000):
            rows.append(run_row(ddb, work, workloads["mixed"], label="explain, gateway", mode="multi-active",
                                settings=Settings(1, batch, 128), code=code, rtt_ms=args.rtt_ms, trace=True,
                                gateway=gateway))
    return rows


def _settings_list(text: str) -> dict[str, list[Settings]]:
    """``mode=factor/batch/concurrency[,...];mode=...`` -> candidate settings per mode."""
    out: dict[str, list[Settings]] = {}
    for part in filter(None, text.split(";")):
        mode, values = part.split("=")
        out[mode.strip()] = [Settings(*(int(v) for v in item.split("/"))) for item in values.split(",")]
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.saturated", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="small workloads (about 2 minutes)")
    p.add_argument("--records", type=int, help="stream records per workload (full: spread 4000, mixed 3000)")
    p.add_argument("--rtt-ms", type=float, default=100.0, help="simulated replica round trip (default 100)")
    p.add_argument("--modes", default=",".join(MODES), type=lambda t: [m for m in t.split(",") if m],
                   help="subset of " + ",".join(MODES))
    p.add_argument("--workloads", default="spread,mixed", type=lambda t: [m for m in t.split(",") if m])
    p.add_argument("--candidates", default="", type=_settings_list,
                   help="override the candidate settings: 'multi-active=5/100/128,10/100/128;kinesis-one-way=4/100/128' "
                        "(factor/batch/concurrency; default: cdk_replication/defaults.py)")
    p.add_argument("--code", default="HEAD", help="revision measured as the candidate (default HEAD), or 'worktree'")
    p.add_argument("--today", default=TODAY_COMMIT, help=f"revision of today's defaults (default {TODAY_COMMIT})")
    p.add_argument("--explain", action="store_true", help="also the black-box rows (multi-active, factor 1, traced)")
    p.add_argument("--no-saturated", action="store_true", help="skip the saturated-shard rows (with --explain)")
    p.add_argument("--output", type=Path, help="results JSON (default benchmarks/results/saturated[-quick].json)")
    p.add_argument("--write-docs", action="store_true", help="rewrite the generated part of docs/performance.md")
    p.add_argument("--from-json", type=Path, help="re-render a saved run (no measurement)")
    return p


def measure(args: argparse.Namespace, argv: list[str]) -> dict[str, Any]:
    from cdk_replication.local import DynamoDBLocal

    n = sizes(args.quick, args.records)
    results: dict[str, Any] = {
        "command": "python -m benchmarks.saturated " + " ".join(argv),
        "started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "load_start": _load(), "rtt_ms": args.rtt_ms, "quick": args.quick,
        "code": {"candidate": _rev(args.code), "today": _rev(args.today)},
        "candidates": {m: asdict(s[0]) for m, s in ((m, args.candidates.get(m) or [candidate_settings(m)])
                                                     for m in args.modes)},
    }
    _log(f"saturated shard benchmark: {json.dumps(results['code'])} sizes={n} load={results['load_start']}")
    work = Path(tempfile.mkdtemp(prefix="cdk-replication-saturated-"))
    codes = {"head": None if args.code == "worktree" else _snapshot(args.code, work),
             "today": _snapshot(args.today, work)}
    try:
        with DynamoDBLocal(jvm_options=["-Xmx2g"]) as ddb:
            _log("warming up DynamoDB Local")
            runner.run_child("benchmarks.ceiling", {"region": wl.REPLICA_REGION, "items": 2000, "payload_bytes": 200,
                                                    "kinds": ["batch", "conditional"], "threads": [64]},
                             base_env(ddb, wl.REPLICA_REGION), work)
            wanted = set(args.workloads) | ({"spread", "mixed", "mixed-nodelete"} if args.explain else set())
            workloads = {}
            for name in sorted(wanted):
                records, items = n["mixed" if name.startswith("mixed") else "spread"]
                workloads[name] = build_workload(ddb, name, records, items) if name != "mixed-nodelete" else \
                    _nodelete(ddb, records, items)
            results["workloads"] = {k: {"records": len(w.records), "items": len(w.expected),
                                        "deletes": sum(r["eventName"] == "REMOVE" for r in w.records)}
                                    for k, w in workloads.items()}
            rows: list[dict[str, Any]] = []
            if not args.no_saturated:
                for name in args.workloads:
                    rows += run_saturated(ddb, work, workloads[name], args, codes, n["naive_sample"])
            results["rows"] = rows
            if args.explain:
                results["explain"] = run_explain(ddb, work, workloads, args, codes["head"])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    results["finished"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    results["load_end"] = _load()
    return results


def _nodelete(ddb: Any, records: int, items: int) -> Workload:
    """The mixed workload without its deletes (every write a PutItem): what the deletes cost."""
    source = wl.create_table(ddb, "src-mixed-nodelete", wl.SOURCE_REGION, stream=True)
    wl.write_mixed_workload(ddb, source, records, items, delete_share=0.0)
    stream = wl.read_stream(ddb, source)
    _log(f"mixed-nodelete: {len(stream)} stream records over {items} items")
    return Workload("mixed-nodelete", source, stream, wl.kinesis_records(stream, source), wl.final_states(stream))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    from benchmarks import saturated_report as report

    if args.from_json:
        results = json.loads(args.from_json.read_text())
        output = args.from_json
    else:
        results = measure(args, argv)
        RESULTS.mkdir(parents=True, exist_ok=True)
        output = args.output or RESULTS / ("saturated-quick.json" if args.quick else "saturated.json")
        output.write_text(json.dumps(results, indent=1) + "\n")
        _log(f"results saved to {output}")
    print()
    print(report.text_report(results))
    report.write_plot(results)
    if args.write_docs:
        for path in report.write_docs(results, output):
            _log(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
