"""``python -m cdk_replication.local.demo`` (``make demo``): replicate a workload on DynamoDB Local and verify.

Synthesizes the example app, deploys it onto DynamoDB Local (no AWS account or credentials), writes a
workload of Employee items to each replicated source table while the replicator runs behind Lambda's event
source mapping emulation, shows the replica catching up, and compares source and replicas item by item.
Then (unless ``--no-poison``) it writes one item the replica cannot accept and shows it land in the
replicator's on-failure destination (see :mod:`cdk_replication.local.demo_poison`).
Exit code 0 when every replica is identical to its source (except the poison item, which must be missing from
the replica and held in the failure destination), 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from cdk_replication._lambda.replicator import contract
from cdk_replication.local.compare import DEFAULT_METADATA_PREFIX, TableComparison, compare_tables
from cdk_replication.local.demo_poison import PoisonOutcome, run_poison
from cdk_replication.local.deploy import LocalDeployment, LocalTable, deploy
from cdk_replication.local.dynamodb_local import DynamoDBLocal, DynamoDBLocalError
from cdk_replication.local.event_source_mapping import StreamEventSourceMapping
from cdk_replication.local.intrinsics import TemplateError
from cdk_replication.local.lag import DEFAULT_RATE, PARTS, LagTracker, SteadyWriter, WriteRate, key_text
from cdk_replication.local.lambda_runtime import FunctionInitError, LocalFunction
from cdk_replication.local.synth import SynthError, synthesize
from cdk_replication.local import workload

#: Items inserted by default (plus about half as many updates and deletes).
DEFAULT_ITEMS = 2000
#: Concurrent writer threads of the workload; one key is always written by the same thread, in order. They share
#: one open-loop schedule of ``--rate`` writes/s, so a slow write does not slow the others down.
DEFAULT_WRITERS = 16
#: The demo gives up when replication makes no progress for this long, in seconds.
STALL_TIMEOUT_S = 60.0
#: Progress line refresh period on a terminal, in seconds.
REFRESH_S = 0.1
#: Without a terminal, one progress line every this many seconds.
PLAIN_PROGRESS_EVERY_S = 5.0

_SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"


class Console:
    """Aligned step lines, a live progress line on a terminal, colour unless disabled."""

    def __init__(self, out: TextIO, color: bool) -> None:
        self.out = out
        self.tty = out.isatty()
        self.color = color and self.tty
        self._live = False

    def _paint(self, text: str, code: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.color else text

    def green(self, text: str) -> str:
        return self._paint(text, "32")

    def red(self, text: str) -> str:
        return self._paint(text, "31")

    def dim(self, text: str) -> str:
        return self._paint(text, "2")

    def bold(self, text: str) -> str:
        return self._paint(text, "1")

    def print(self, text: str = "") -> None:
        self.clear_live()
        print(text, file=self.out, flush=True)

    def step(self, label: str, detail: str, seconds: float | None = None, ok: bool = True) -> None:
        mark = self.green("✓") if ok else self.red("✗")
        timing = f"{seconds:6.1f} s" if seconds is not None else ""
        self.print(f"  {mark} {label:<13}{detail:<66}{self.dim(timing)}")

    def live(self, text: str) -> None:
        if self.tty:
            self.out.write(f"\r\x1b[K{text}")
            self.out.flush()
            self._live = True

    def clear_live(self) -> None:
        if self._live:
            self.out.write("\r\x1b[K")
            self.out.flush()
            self._live = False


@dataclass
class Replication:
    """One replicator found in the deployment: its source table, targets and mapping."""

    function: LocalFunction
    mapping: StreamEventSourceMapping
    source: LocalTable
    targets: list[LocalTable]
    metadata_prefix: str


def find_replications(deployment: LocalDeployment) -> list[Replication]:
    """Every replicator of the deployment, from the environment its construct wrote (see
    docs/architecture.md, "Replicator contract")."""
    found = []
    for fn in deployment.functions:
        if contract.SOURCE not in fn.environment:
            continue
        source = json.loads(fn.environment[contract.SOURCE])
        targets = json.loads(fn.environment.get(contract.TARGETS, "[]"))
        found.append(
            Replication(
                function=fn,
                mapping=deployment.mapping_for(fn),
                source=deployment.table(source["tableName"], source["region"], source["account"]),
                targets=[deployment.table(t["tableName"], t["region"], t["account"]) for t in targets],
                metadata_prefix=fn.environment.get(contract.METADATA_PREFIX, DEFAULT_METADATA_PREFIX),
            )
        )
    if not found:
        raise TemplateError(f"the app has no replicator: no function's environment sets {contract.SOURCE}")
    return found


def _where(table: LocalTable) -> str:
    return f"{table.name} ({table.region}, {table.account})"


def _fmt_lag(tracker: LagTracker) -> str:
    lag = tracker.report().lag
    return f"lag p50 {lag.p50:5.2f} s  p99 {lag.p99:5.2f} s"


def run(args: argparse.Namespace, ui: Console) -> int:
    """The demo proper; returns the exit code."""
    started = time.monotonic()
    ui.print(ui.bold("cdk-replication demo") + ui.dim(" · replication on DynamoDB Local, no AWS account needed"))
    ui.print()
    with tempfile.TemporaryDirectory(prefix="cdk-replication-demo-") as tmp:
        # Node (synthesis) and Java (DynamoDB Local) both take seconds to start: do both at once.
        ddb = DynamoDBLocal()
        ddb_started: list[float] = []
        ddb_error: list[BaseException] = []

        def start_ddb() -> None:
            t0 = time.monotonic()
            try:
                ddb.start()
                ddb_started.append(time.monotonic() - t0)
            except BaseException as exc:  # noqa: BLE001 - re-raised in the main thread
                ddb_error.append(exc)

        starter = threading.Thread(target=start_ddb, name="start-dynamodb-local", daemon=True)
        starter.start()
        failures_dir = Path(args.failures_dir or tempfile.mkdtemp(prefix="cdk-replication-demo-failures-"))
        try:
            t = time.monotonic()
            out = synthesize(args.app, Path(tmp) / "cdk.out", context=dict(args.context))
            stacks = sum(1 for _ in out.glob("**/*.template.json"))
            ui.step("Synthesized", f"{Path(args.app).name} -> {_plural(stacks, 'stack')}", time.monotonic() - t)
            starter.join()
            if ddb_error:
                raise ddb_error[0]
            ui.step("Started", f"DynamoDB Local on {ddb.endpoint_url}", ddb_started[0])
            t = time.monotonic()
            with deploy(out, ddb, bucket_root=failures_dir) as deployment:
                replications = find_replications(deployment)
                for rep in replications:
                    rep.function.start()  # a broken replicator fails here, with its init error
                kinesis = (f"{_plural(len(deployment.bridges), 'Kinesis data stream')} (local Kinesis), "
                           if deployment.bridges else "")
                ui.step("Deployed", f"{_plural(len(deployment.tables), 'table')}, {kinesis}"
                        f"{_plural(len(deployment.functions), 'function')}, "
                        f"{_plural(len(deployment.mappings), 'stream mapping')}, "
                        f"{_destinations(deployment)}", time.monotonic() - t)
                for rep in replications:
                    for target in rep.targets:
                        ui.print(ui.dim(f"      {_where(rep.source)}  →  {_where(target)}"))
                return _replicate_and_verify(args, ui, deployment, replications, started)
        finally:
            starter.join()
            ddb.stop()
            if not args.failures_dir and not any(p.is_file() for p in failures_dir.rglob("*")):
                shutil.rmtree(failures_dir, ignore_errors=True)  # nothing failed: leave no empty folder behind


def _destinations(deployment: LocalDeployment) -> str:
    """The on-failure destinations deployed: failure buckets (S3) and queues (SQS/SNS)."""
    parts = [_plural(len(deployment.buckets), "failure bucket")] if deployment.buckets else []
    if deployment.queues or not parts:
        parts.append(_plural(len(deployment.queues), "queue"))
    return ", ".join(parts)


def _plural(n: int, noun: str) -> str:
    return f"{n:,} {noun}" + ("" if n == 1 else "s")


def _replicate_and_verify(args: argparse.Namespace, ui: Console, deployment: LocalDeployment,
                          replications: list[Replication], started: float) -> int:
    """Write the workload to the first replicator's source, wait for it to replicate, compare every replica
    with its source and print the verdict. ``started`` is the demo's ``time.monotonic()`` start; returns the
    exit code (0 PASS, 1 FAIL). Re-raises the first error of a writer or of a mapping's background thread."""
    # The demo writes to the first replicator's source; in a multi-active app it replicates to all others
    # (whose own mappings then see the replicated writes, which are not workload records).
    main = replications[0]
    tracker = LagTracker(main.metadata_prefix)
    main.mapping.add_timing_listener(tracker.on_timings)
    key_names, ops = _workload_for(args, main.source)
    deployment.start()
    t = time.monotonic()
    writers = _start_writers(main.source, ops, args, tracker)
    writes_took, elapsed = _wait_for_replication(ui, deployment, tracker, writers, t)
    ui.clear_live()
    if writers.errors:
        raise writers.errors[0]
    deployment.stop()
    if tracker.replicated >= writers.expected:
        # Let every other mapping (multi-active echoes) settle before comparing.
        deployment.run_until_idle(timeout_s=STALL_TIMEOUT_S)
    ok_repl = tracker.replicated >= writers.expected
    _report_throughput(ui, ops, tracker, writers.rate(), writes_took, elapsed, ok_repl)
    failures, total_items = _compare_replicas(ui, main, key_names)
    failures += _delivery_failures(replications)
    if not ok_repl:
        failures.insert(0, f"only {tracker.replicated:,} of {writers.expected:,} stream records were replicated "
                           f"(no progress for {STALL_TIMEOUT_S:.0f} s)")
    poison = None
    if not failures and not args.no_poison and main.targets:
        poison = run_poison(ui, deployment, main, key_names, _tombstone(main))
        failures += poison.problems
    return _verdict(args, ui, deployment, replications, failures, total_items, writers.expected, started, poison)


def _workload_for(args: argparse.Namespace, source: LocalTable) -> tuple[tuple[str, ...], list[workload.Operation]]:
    """The source's key attribute names and ``args.items`` generated writes (seeded by ``args.seed``) whose
    keys have the source's real key types."""
    key_names = tuple(k["AttributeName"] for k in source.key_schema)
    types = {d["AttributeName"]: d["AttributeType"] for d in
             source.client().describe_table(TableName=source.name)["Table"]["AttributeDefinitions"]}
    ops = workload.generate(args.items, seed=args.seed, key_names=key_names,
                            key_types=tuple(types[n] for n in key_names))
    return key_names, ops


def _start_writers(source: LocalTable, ops: list[workload.Operation], args: argparse.Namespace,
                   tracker: LagTracker) -> SteadyWriter:
    """Start ``args.writers`` daemon threads that write ``ops`` to ``source`` at a steady ``args.rate`` writes/s
    (open loop), each key always by the same thread so its writes stay in order."""
    client = source.client()
    return SteadyWriter(ops, lambda op: workload.apply(client, source.name, op), lambda op: key_text(op.key),
                        rate=args.rate, threads=args.writers, on_sent=tracker.sent).start()


def _wait_for_replication(ui: Console, deployment: LocalDeployment, tracker: LagTracker, writers: SteadyWriter,
                          t: float) -> tuple[float | None, float]:
    """Show progress every ``REFRESH_S`` until every write is replicated, an error appears (added to
    ``writers.errors``) or nothing is replicated for ``STALL_TIMEOUT_S``. ``t`` is the ``time.monotonic()``
    the writes started; returns (seconds the writes took, or None if they never finished; seconds waited)."""
    last_progress, last_seen, last_plain, spin = time.monotonic(), -1, time.monotonic(), 0
    writes_took: float | None = None
    while True:
        done_writing = writers.done
        if done_writing and writes_took is None:
            writes_took = time.monotonic() - t
        replicated = tracker.replicated
        now = time.monotonic()
        if replicated != last_seen:
            last_progress, last_seen = now, replicated
        line = _progress_line(_SPINNER[spin % len(_SPINNER)], writers, tracker, replicated, now - t)
        spin += 1
        ui.live(line)
        if not ui.tty and now - last_plain >= PLAIN_PROGRESS_EVERY_S:
            ui.print(line.replace(_SPINNER[(spin - 1) % len(_SPINNER)], "·"))
            last_plain = now
        broken = next((m.background_error for m in deployment.mappings if m.background_error), None)
        if broken is not None:
            writers.errors.append(broken)
        if writers.errors or (done_writing and replicated >= writers.expected) \
                or now - last_progress > STALL_TIMEOUT_S:
            break
        time.sleep(REFRESH_S)
    return writes_took, time.monotonic() - t


def _progress_line(spinner: str, writers: SteadyWriter, tracker: LagTracker, replicated: int, seconds: float) -> str:
    """The live progress line: writes made, records replicated, rate over ``seconds`` and lag."""
    rate = replicated / max(seconds, 1e-6)
    return (f"  {spinner} Replicating  written {writers.counter[0]:>6,}/{writers.expected:,}  "
            f"replicated {replicated:>6,}  {rate:5,.0f} rec/s  {_fmt_lag(tracker)}")


def _report_throughput(ui: Console, ops: list[workload.Operation], tracker: LagTracker, rate: WriteRate,
                       writes_took: float | None, elapsed: float, ok: bool) -> None:
    """The "Wrote" and "Replicated" stages: the workload's mix and write rate, then records, rate, lag
    percentiles and where the lag went (poll wait, batch assembly, writing; see :mod:`.lag`)."""
    kinds = {k: sum(1 for o in ops if o.kind == k) for k in ("put", "update", "delete")}
    ui.step("Wrote", f"{len(ops):,} writes: {kinds['put']:,} inserts, {kinds['update']:,} updates, "
            f"{kinds['delete']:,} deletes · {rate.achieved:,.0f}/s", writes_took)
    if not rate.kept:
        ui.print(ui.dim(f"      {rate.summary()}"))
    report = tracker.report()
    lag = report.lag
    ui.step("Replicated", f"{tracker.replicated:,} records · {tracker.replicated / elapsed:,.0f} rec/s · "
            f"lag p50 {lag.p50:.2f} s, p99 {lag.p99:.2f} s, max {lag.max:.2f} s", elapsed, ok=ok)
    parts = " · ".join(f"{name} {p.p50:.2f}/{p.p99:.2f}" for name, p in zip(PARTS, report.parts))
    ui.print(ui.dim(f"      lag split p50/p99: {parts} s"))


def _compare_replicas(ui: Console, rep: Replication, key_names: tuple[str, ...]) -> tuple[list[str], int]:
    """A "Compared" stage per target of ``rep`` (metadata ignored, tombstones counted as absent where the mode
    keeps them); returns (one failure text per differing target, the source's item count)."""
    t = time.monotonic()
    failures: list[str] = []
    total_items = 0
    tombstone = _tombstone(rep)
    for target in rep.targets:
        result = compare_tables(rep.source.client(), rep.source.name, target.client(), target.name,
                                list(key_names), rep.metadata_prefix, tombstone_attribute=tombstone)
        total_items = result.source_items
        ui.step("Compared", f"{target.name} ({target.region}): {result.matching:,}/{result.source_items:,} "
                f"identical, {len(result.missing)} missing, {len(result.different)} differ, "
                f"{len(result.unexpected)} extra", time.monotonic() - t, ok=result.equal)
        if not result.equal:
            failures.append(_describe(target, result))
    return failures, total_items


def _tombstone(rep: Replication) -> str | None:
    """The tombstone attribute of ``rep``'s targets: multi-active copies and replicas fed by Kinesis keep
    deletes as tombstones; ``None`` otherwise."""
    env = rep.function.environment
    if env.get(contract.MODE) == "MULTI_ACTIVE" or env.get(contract.CHANGE_SOURCE) == "KINESIS":
        return f"{rep.metadata_prefix}deleted"
    return None


def _delivery_failures(replications: list[Replication]) -> list[str]:
    """One text per replicator whose failure destination holds batches, and per replicator whose invocations
    failed."""
    failures: list[str] = []
    for rep in replications:
        destination = rep.mapping.destination
        held = len(destination.failure_records()) if destination is not None else 0
        if held:
            failures.append(f"{held} batch(es) sent to the failure destination {destination.arn}")
        if rep.mapping.stats.function_errors:
            failures.append(f"{rep.mapping.stats.function_errors} failed invocation(s) of {rep.function.name} "
                            f"(last: {rep.mapping.stats.last_error})")
    return failures


def _verdict(args: argparse.Namespace, ui: Console, deployment: LocalDeployment, replications: list[Replication],
             failures: list[str], total_items: int, expected: int, started: float,
             poison: PoisonOutcome | None = None) -> int:
    """Print PASS (and keep running if ``args.keep_running``) or FAIL with each failure and the last error
    log lines; returns the exit code."""
    ui.print()
    total = time.monotonic() - started
    if failures:
        ui.print(f"  {ui.red(ui.bold('FAIL'))}  " + failures[0])
        for extra in failures[1:]:
            ui.print(f"        {extra}")
        logs = [line for rep in replications for line in rep.function.logs() if '"ERROR"' in line or "Error" in line]
        for line in logs[-3:]:
            ui.print(ui.dim(f"        log: {line[:160]}"))
        ui.print(ui.dim(f"        ({total:.1f} s)"))
        return 1
    ui.print(f"  {ui.green(ui.bold('PASS'))}  every replica is identical to its source: {total_items:,} items, "
             f"{expected:,} changes replicated {ui.dim(f'({total:.1f} s)')}")
    if poison is not None:
        ui.print(f"        except the poison item {poison.key_text}, as expected: the replica refused it and it "
                 f"is held in the failure destination ({poison.stored_at})")
    if args.keep_running:
        _keep_running(ui, deployment, replications)
    return 0


def _describe(target: LocalTable, result: TableComparison) -> str:
    samples = (result.missing[:3] + list(result.different)[:3] + result.unexpected[:3])[:5]
    return f"{_where(target)} differs from its source, e.g. keys {', '.join(samples)}"


def _keep_running(ui: Console, deployment: LocalDeployment, replications: list[Replication]) -> None:
    source = replications[0].source
    creds = f"AWS_ACCESS_KEY_ID=LOCAL{source.account} AWS_SECRET_ACCESS_KEY=local"
    ui.print()
    ui.print("  Replication keeps running; write to the source and watch the replica, e.g.:")
    ui.print(ui.dim(f"    {creds} aws dynamodb put-item --endpoint-url {deployment.ddb.endpoint_url} "
                    f"--region {source.region} --table-name {source.name} --item '{{...}}'"))
    ui.print("  Press Ctrl-C to stop.")
    deployment.start()
    try:
        while True:
            time.sleep(1)
    finally:
        deployment.stop()


def _context_pair(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"context must be key=value, got {text!r}")
    return key, value


def _default_app() -> str:
    here = Path.cwd() / "app.py"
    if here.is_file():
        return str(here)
    return str(Path(__file__).resolve().parents[2] / "app.py")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m cdk_replication.local.demo",
        description="Replicate a workload on DynamoDB Local (no AWS account needed) and verify the copy.",
    )
    parser.add_argument("--items", type=int, default=DEFAULT_ITEMS,
                        help=f"items to insert; about half as many updates and deletes follow (default {DEFAULT_ITEMS})")
    parser.add_argument("--seed", type=int, default=7, help="random seed of the workload (default 7)")
    parser.add_argument("--writers", type=int, default=DEFAULT_WRITERS,
                        help=f"concurrent writer threads (default {DEFAULT_WRITERS})")
    parser.add_argument("--rate", type=float, default=DEFAULT_RATE,
                        help=f"steady write rate, writes/s: the lag is measured at this load (default {DEFAULT_RATE:.0f})")
    parser.add_argument("--app", default=_default_app(), help="the CDK app to synthesize (default: app.py)")
    parser.add_argument("-c", "--context", action="append", type=_context_pair, default=[], metavar="KEY=VALUE",
                        help="CDK context for the app, e.g. -c replicaAccount=222222222222 (repeatable)")
    parser.add_argument("--no-poison", action="store_true",
                        help="skip the poison record (by default one item the replica refuses goes to the failure "
                             "destination after the workload)")
    parser.add_argument("--failures-dir", metavar="DIR",
                        help="folder for the local S3 buckets (failure objects), kept after the demo (default: a "
                             "temporary folder, kept only when a failure object was written)")
    parser.add_argument("--keep-running", action="store_true",
                        help="after the verdict, keep replicating until Ctrl-C")
    parser.add_argument("--no-color", action="store_true", help="plain output (also: NO_COLOR=1)")
    args = parser.parse_args(argv)
    if args.items < 1 or args.writers < 1 or args.rate <= 0:
        parser.error("--items and --writers must be at least 1, --rate above 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    ui = Console(sys.stdout, color=not args.no_color and "NO_COLOR" not in os.environ)
    expected: tuple[type[BaseException], ...] = (SynthError, TemplateError, DynamoDBLocalError, FunctionInitError,
                                                 FileNotFoundError, TimeoutError, KeyError)
    try:
        return run(args, ui)
    except KeyboardInterrupt:
        ui.print(ui.dim("  interrupted"))
        return 130
    except expected as exc:
        ui.print()
        ui.print(f"  {ui.red(ui.bold('ERROR'))} {exc}")
        return 1
    except Exception as exc:  # noqa: BLE001 - a person runs this: one line, not a traceback
        ui.print()
        if os.environ.get("CDK_REPLICATION_DEBUG"):
            raise
        ui.print(f"  {ui.red(ui.bold('ERROR'))} {type(exc).__name__}: {exc}")
        ui.print(ui.dim("        (set CDK_REPLICATION_DEBUG=1 for the traceback)"))
        return 1


if __name__ == "__main__":
    sys.exit(main())
