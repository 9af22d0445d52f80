"""``python -m benchmarks.lag``: end-to-end replication lag in the local runtime at a steady write rate.

For each mode (one-way, multi-active; three regions, see benchmarks/lag_app.py) the app is synthesized and
deployed on DynamoDB Local with the local runtime (event source mapping emulation with Lambda's polling, the
replicator in its own container process, the IAM gateway). A writer in a separate process (so that its CPU does not
compete with the mapping's for one interpreter) writes the Employee workload (inserts, updates, deletes) to the
us-west-2 table at a steady, open-loop rate; the replicator containers add a simulated round trip to every request
to another region (benchmarks/lag_rtt_shim.py). The lag of each write is from just before it was sent until the
invocation that carried its stream record returned (visible in every other region), split into poll wait, batch
assembly and writing (:mod:`cdk_replication.local.lag`).

``--experiment read-to-batch-size`` also runs each mode with the local mapping as it was before it stopped
reading at the tip of the shard: it read on until ``BatchSize`` records were buffered or a read came back empty,
which under a steady stream held a batch's first record for up to ``BatchSize / rate`` seconds (Lambda, with no
batching window, invokes with what a poll read). The rows of one run are interleaved (today's mapping, then the
old one, per mode).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from cdk_replication.local import workload
from cdk_replication.local.demo import Replication, find_replications
from cdk_replication.local.deploy import LocalDeployment, deploy
from cdk_replication.local.dynamodb_local import DynamoDBLocal, credentials_for_account
from cdk_replication.local.event_source_mapping import MappingSettings
from cdk_replication.local.lag import (DEFAULT_RATE, PARTS, LagReport, LagTracker, Percentiles, SteadyWriter,
                                       WriteRate, key_text)
from cdk_replication.local.synth import synthesize

ROOT = Path(__file__).resolve().parent.parent
APP = Path(__file__).resolve().parent / "lag_app.py"
MODES = {"one-way": "ONE_WAY", "multi-active": "MULTI_ACTIVE"}
SOURCE_REGION = "us-west-2"
#: Seconds of writing per mode: full run and ``--quick``.
FULL_SECONDS, QUICK_SECONDS = 60.0, 12.0
#: Give up waiting for the replication of the last writes after this long without progress, in seconds.
STALL_S = 60.0
#: ``read-to-batch-size``: the local mapping's reads as they were before it stopped at the tip of the shard;
#: ``writer-in-process``: the writer's threads in the process that runs the mappings and the gateway (as the demo
#: does) instead of a process of its own.
EXPERIMENTS = ("read-to-batch-size", "writer-in-process")


@dataclasses.dataclass
class Row:
    """One measured run: a mode with or without an experiment."""

    mode: str
    experiment: str
    load_1m: float
    rate: WriteRate
    report: LagReport
    invocations: int
    records: int
    cold_starts: int
    unmatched: tuple[int, int]
    #: Duration of the first invocation (its clients are created then) and p50 of the others, in seconds.
    first_batch_s: float = 0.0
    other_batches_p50_s: float = 0.0
    #: Lag p99 of the warm-up writes (not in the run's figures): the cold first invocation.
    warm_up_s: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "experiment": self.experiment, "load_1m": self.load_1m,
                "rate": dataclasses.asdict(self.rate) | {"achieved": self.rate.achieved},
                "lag": dataclasses.asdict(self.report), "invocations": self.invocations, "records": self.records,
                "mean_batch": self.records / max(1, self.invocations), "cold_starts": self.cold_starts,
                "unmatched": list(self.unmatched)}


# --- the writer process ------------------------------------------------------------------------------------


def _writer_main(spec_file: str) -> None:
    """The writer process: write the workload at the spec's rate, then save the send times and the rate."""
    spec = json.loads(Path(spec_file).read_text())
    Path(spec["result_file"]).write_text(json.dumps(write_workload(spec)))


def write_workload(spec: dict[str, Any]) -> dict[str, Any]:
    """Write the spec's workload at its rate (open loop); returns the send times, the rate and any errors."""
    import boto3
    from botocore.config import Config

    creds = credentials_for_account(spec["account"])
    client = boto3.session.Session().client(
        "dynamodb", region_name=spec["region"], endpoint_url=spec["endpoint"],
        aws_access_key_id=creds.access_key_id, aws_secret_access_key=creds.secret_access_key,
        config=Config(retries={"max_attempts": 3, "mode": "standard"}, max_pool_connections=spec["threads"] + 4))
    ops = _ops(spec["writes"], spec["seed"])
    writer = SteadyWriter(ops, lambda op: workload.apply(client, spec["table"], op), lambda op: key_text(op.key),
                          rate=spec["rate"], threads=spec["threads"]).start()
    rate = writer.join()
    return {"sends": writer.sends, "rate": dataclasses.asdict(rate), "errors": [repr(e) for e in writer.errors]}


def _ops(writes: int, seed: int) -> list[workload.Operation]:
    """``writes`` operations of the Employee workload (about 1.6 writes per item: inserts, updates, deletes)."""
    return workload.generate(max(1, int(writes / 1.5)), seed=seed)[:writes]


def _run_writer(tmp: Path, ddb: DynamoDBLocal, args: argparse.Namespace, writes: int,
                in_process: bool) -> dict[str, Any]:
    """Write the workload from a separate process (or, ``in_process``, from threads of this one, as the demo
    does); returns :func:`write_workload`'s result."""
    spec = {"account": "111111111111", "region": SOURCE_REGION, "endpoint": ddb.endpoint_url, "table": "Employee",
            "writes": writes, "seed": args.seed, "rate": args.rate, "threads": args.writers,
            "result_file": str(tmp / "writer-result.json")}
    if in_process:
        return write_workload(spec)
    (tmp / "writer-spec.json").write_text(json.dumps(spec))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    code = subprocess.call([sys.executable, "-m", "benchmarks.lag", "--writer-spec", str(tmp / "writer-spec.json")],
                           cwd=ROOT, env=env)
    if code != 0:
        raise RuntimeError(f"the writer process failed with exit code {code}")
    return json.loads((tmp / "writer-result.json").read_text())


# --- the replicator containers ------------------------------------------------------------------------------


def add_round_trip_to(rep: Replication, tmp: Path, rtt_ms: float) -> None:
    """Run ``rep``'s function from a copy of its code with benchmarks/lag_rtt_shim.py as handler, so its
    requests to other regions take ``rtt_ms`` longer (lambda_src is not changed)."""
    fn = rep.function
    code = tmp / f"code-{fn.name}"
    shutil.copytree(fn.code_dir, code)
    shutil.copy(Path(__file__).with_name("lag_rtt_shim.py"), code / "lag_rtt_shim.py")
    shutil.copy(Path(__file__).with_name("rtt.py"), code / "_bench_rtt.py")
    current = fn.configuration()
    env = {**current.environment, "CDK_REPLICATION_BENCH_RTT_MS": str(rtt_ms)}
    fn.update_configuration(dataclasses.replace(current, code_dir=code, handler="lag_rtt_shim.handler",
                                                environment=env))


def _read_to_batch_size(mapping: Any) -> bool:
    """Experiment ``read-to-batch-size``: the local mapping's ``_fill`` as it was before it stopped at the tip of
    the shard, i.e. read again as long as reads return records, until every lane could fill a batch. Done by
    wrapping ``_fill``; returns False if the mapping has none to wrap."""
    fill = getattr(mapping, "_fill", None)
    if fill is None:
        return False

    def read_on(shard: Any) -> None:
        while True:
            before = shard.buffered
            fill(shard)
            if shard.buffered == before or shard.iterator is None:
                return
            if shard.buffered >= mapping.settings.batch_size * max(1, len(shard.lanes)):
                return

    mapping._fill = read_on
    return True


# --- one run -----------------------------------------------------------------------------------------------


def run_mode(mode: str, experiment: str, out: Path, ddb: DynamoDBLocal, args: argparse.Namespace) -> Row:
    """Deploy ``out`` on ``ddb``, write ``args.rate`` writes/s for ``args.seconds`` and measure the lag."""
    def override(settings: MappingSettings) -> MappingSettings:
        changes: dict[str, Any] = {}
        if args.batch_size:
            changes["batch_size"] = args.batch_size
        if args.window is not None:
            changes["maximum_batching_window_s"] = args.window
        return dataclasses.replace(settings, **changes)

    with tempfile.TemporaryDirectory(prefix="lag-bench-") as tmp_text, \
            deploy(out, ddb, settings_override=override) as deployment:
        tmp = Path(tmp_text)
        replications = find_replications(deployment)
        for rep in replications:
            add_round_trip_to(rep, tmp, args.rtt_ms)
            rep.function.start()  # a warm container; its clients are made at the first batch, as on Lambda
        main = next(r for r in replications if r.source.region == SOURCE_REGION)
        if experiment == "read-to-batch-size" and not _read_to_batch_size(main.mapping):
            print(f"  experiment {experiment} does not apply to this mapping; measuring it unchanged", flush=True)
        tracker = LagTracker(main.metadata_prefix)
        sink = [LagTracker(main.metadata_prefix)]  # the warm-up's until it is replicated, then the run's
        main.mapping.add_timing_listener(lambda timings: sink[0].on_timings(timings))
        writes = int(args.rate * args.seconds)
        deployment.start()
        try:
            warm_up_s = _warm_up(main, sink[0], args.warm_up)
            sink[0] = tracker
            load, before = os.getloadavg()[0], dataclasses.replace(main.mapping.stats)
            result = _write_and_wait(tmp, ddb, args, writes, tracker, experiment == "writer-in-process")
        finally:
            deployment.stop()
            _drop_tables(deployment)
        first, others = _batch_durations(tracker)
        stats = main.mapping.stats
        return Row(mode, experiment, load, WriteRate(**result["rate"]), tracker.report(),
                   stats.invocations - before.invocations, stats.records_processed - before.records_processed,
                   sum(r.function.stats.cold_starts for r in replications), tracker.unmatched(), first, others,
                   warm_up_s)


def _warm_up(main: Replication, tracker: LagTracker, writes: int) -> float:
    """Write ``writes`` items (keys the workload never uses) and wait until they are replicated, so the run
    measures warm containers with their clients made, as a busy table's replicator has; returns the seconds the
    warm-up's lag p99 was (the cold first invocation: its clients are created then)."""
    client = main.source.client()
    for i in range(writes):
        key = {"Id": {"N": str(10**9 + i)}}
        tracker.sent(key, time.time())
        client.put_item(TableName=main.source.name, Item={**key, "warmUp": {"BOOL": True},
                                                           "updatedAt": {"N": str(int(time.time() * 1000))}})
    deadline = time.monotonic() + STALL_S
    while tracker.unmatched()[0] and time.monotonic() < deadline:
        time.sleep(0.05)
    return tracker.report().lag.p99


def _batch_durations(tracker: LagTracker) -> tuple[float, float]:
    """(the first invocation's duration, p50 of the others), in seconds, from the matched samples."""
    batches = sorted({(s.invoked_at, s.finished_at) for s in tracker.samples()})
    if not batches:
        return 0.0, 0.0
    return batches[0][1] - batches[0][0], Percentiles.of(end - start for start, end in batches[1:]).p50


def _drop_tables(deployment: LocalDeployment) -> None:
    """Delete the run's tables: the next run deploys the same names and must start from empty streams."""
    for table in deployment.tables:
        table.client().delete_table(TableName=table.name)


def _write_and_wait(tmp: Path, ddb: DynamoDBLocal, args: argparse.Namespace, writes: int,
                    tracker: LagTracker, in_process: bool) -> dict[str, Any]:
    """Run the writer process, feed its send times to ``tracker`` and wait until every write is matched (or
    nothing was replicated for :data:`STALL_S`); returns the writer's result."""
    result = _run_writer(tmp, ddb, args, writes, in_process)
    if result["errors"]:
        raise RuntimeError(f"the writer failed: {result['errors'][0]}")
    for text, at in result["sends"]:
        tracker.sent(text, at)
    last, since = -1, time.monotonic()
    while tracker.unmatched()[0] and time.monotonic() - since < STALL_S:
        if tracker.replicated != last:
            last, since = tracker.replicated, time.monotonic()
        time.sleep(0.2)
    return result


# --- output ------------------------------------------------------------------------------------------------


def table(rows: list[Row]) -> str:
    """The rows as a plain-text table (seconds)."""
    head = (f"{'mode':<13}{'experiment':<18}{'load':>5}{'writes/s':>9}{'lag p50':>8}{'p99':>6}{'max':>6}  "
            + "  ".join(f"{name + ' p50/p99':>22}" for name in PARTS) + f"{'p99 tail split':>22}{'batch':>7}{'1st/other inv':>15}{'warm-up':>9}")
    lines = [head]
    for r in rows:
        parts = "  ".join(f"{p.p50:>14.2f} /{p.p99:>5.2f}" for p in r.report.parts)
        tail = "/".join(f"{x:.2f}" for x in r.report.tail)
        lines.append(f"{r.mode:<13}{r.experiment or '-':<18}{r.load_1m:>5.1f}{r.rate.achieved:>9.0f}"
                     f"{r.report.lag.p50:>8.2f}{r.report.lag.p99:>6.2f}{r.report.lag.max:>6.2f}  {parts}"
                     f"{tail:>22}{r.records / max(1, r.invocations):>7.0f}"
                     f"{r.first_batch_s:>9.2f}/{r.other_batches_p50_s:.2f}{r.warm_up_s:>9.2f}")
    return "\n".join(lines)


def _notes(rows: list[Row]) -> list[str]:
    notes = []
    for r in rows:
        label = f"{r.mode}{' + ' + r.experiment if r.experiment else ''}"
        if not r.rate.kept:
            notes.append(f"{label}: {r.rate.summary()}")
        if r.unmatched != (0, 0):
            notes.append(f"{label}: {r.unmatched[0]} writes never replicated, {r.unmatched[1]} records unmatched")
    return notes


# --- main --------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.lag", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_SECONDS:.0f} s of writing per mode "
                        f"instead of {FULL_SECONDS:.0f} (about a minute in all on an idle machine)")
    parser.add_argument("--modes", default=",".join(MODES), help="comma-separated: one-way,multi-active")
    parser.add_argument("--rate", type=float, default=DEFAULT_RATE, help="writes/s (default 500)")
    parser.add_argument("--seconds", type=float, help="seconds of writing per mode (default 60, --quick 12)")
    parser.add_argument("--rtt-ms", type=float, default=100.0, help="simulated round trip to another region "
                        "(default 100)")
    parser.add_argument("--writers", type=int, default=16, help="writer threads sharing the rate (default 16)")
    parser.add_argument("--batch-size", type=int, help="override the mappings' BatchSize (default: the app's)")
    parser.add_argument("--window", type=float, help="override MaximumBatchingWindowInSeconds (default: the app's)")
    parser.add_argument("--experiment", action="append", choices=EXPERIMENTS, default=[],
                        help="also run each mode with this proposed change (repeatable)")
    parser.add_argument("--seed", type=int, default=7, help="workload seed (default 7)")
    parser.add_argument("--warm-up", type=int, default=20, help="writes replicated before the measured run, not "
                        "counted: the first invocation creates the replicator's clients (default 20; 0: none)")
    parser.add_argument("--output", help="save the rows as JSON here")
    parser.add_argument("--writer-spec", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.seconds = args.seconds or (QUICK_SECONDS if args.quick else FULL_SECONDS)
    unknown = set(args.modes.split(",")) - set(MODES)
    if unknown:
        parser.error(f"unknown mode(s) {', '.join(sorted(unknown))}; use {', '.join(MODES)}")
    return args


def _synthesize_all(modes: list[str], root: Path) -> dict[str, Path]:
    """Synthesize every mode's app at once (Node takes seconds each)."""
    outs: dict[str, Path] = {}
    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])

    def synth(mode: str) -> None:
        outs[mode] = synthesize(APP, root / f"cdk.out-{mode}", context={"mode": MODES[mode]})

    threads = [threading.Thread(target=synth, args=(m,)) for m in modes]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    missing = [m for m in modes if m not in outs]
    if missing:
        raise RuntimeError(f"synthesis failed for {', '.join(missing)}")
    return outs


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.writer_spec:
        _writer_main(args.writer_spec)
        return 0
    modes = args.modes.split(",")
    print(f"lag at {args.rate:.0f} writes/s for {args.seconds:.0f} s per mode, {args.rtt_ms:.0f} ms round trip; "
          f"load {os.getloadavg()[0]:.1f}", flush=True)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="lag-bench-") as tmp, DynamoDBLocal() as ddb:
        outs = _synthesize_all(modes, Path(tmp))
        for mode in modes:
            for experiment in ["", *args.experiment]:
                rows.append(run_mode(mode, experiment, outs[mode], ddb, args))
                print(table(rows[-1:]).splitlines()[-1], flush=True)
    print()
    print(table(rows))
    for note in _notes(rows):
        print(f"note: {note}")
    if args.output:
        Path(args.output).write_text(json.dumps([r.as_dict() for r in rows], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
