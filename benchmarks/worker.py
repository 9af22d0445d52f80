"""One measured run in a fresh process: ``python -m benchmarks.worker <spec.json>``.

The process stands for one Lambda container of one shard: its environment is the function's (REPLICATION_*
variables, DynamoDB Local endpoint and credentials), it imports the handler as Lambda does, then calls it
once per line of the events file, one batch at a time. Before the first call, the simulated round trip is
hooked onto every client the replicator creates for another region (the replicas), so every replica request
pays it; the source region's own client (multi-active writes back to its own table) does not.

Measured per batch: wall time of the handler call (``time.perf_counter``) and CPU time of this process
(``time.process_time``, all threads; DynamoDB Local is another process). At the end: peak RSS
(``VmHWM``, see :func:`_rss_kib`). The JSON decoding of each event (Lambda's runtime does it before calling the handler) is
outside both. The replicator's own stdout (JSON logs, EMF metrics) goes where the parent sent stdout.

Optional in the spec: ``ready_file``/``go_file`` (the process writes the first once the handler is loaded,
then waits for the second to exist: parallel lanes of one shard start together, their imports not timed),
and ``trace`` (count every request of the replicator's clients, per batch: to another region or to its
own, and how many failed their condition; botocore's ``after-call`` event, so best effort).

``kind`` is ``replicator`` (lambda_src/replicator), ``naive`` (benchmarks/naive.py) or ``memory`` (one event
file, peak RSS only).
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


class Context:
    """The parts of Lambda's context object the replicator uses; a 60 s function timeout."""

    def __init__(self, timeout_ms: int = 60_000) -> None:
        self._end = time.monotonic() + timeout_ms / 1000.0
        self.aws_request_id = str(uuid.uuid4())
        self.function_name = "replicator-benchmark"

    def get_remaining_time_in_millis(self) -> int:
        return int((self._end - time.monotonic()) * 1000)


def _rss_kib() -> int:
    """Peak resident set size of this process so far, in KiB: ``VmHWM`` of /proc/self/status.

    Not ``getrusage().ru_maxrss``: Linux carries that over from the parent across fork and exec, so a child of
    a large benchmark process would report the parent's size.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _tune_clients() -> None:
    """Experiment ``tuning: client`` (the change proposed in docs/performance.md, tried here without editing
    lambda_src): the replicator's botocore clients skip client-side parameter validation and use a
    User-Agent string built once instead of twice per request."""
    from botocore.config import Config as BotoConfig
    from botocore.useragent import UserAgentString

    import replicator.clients as clients

    user_agent = UserAgentString.from_environment().to_string() + " lib/cdk-replication"
    original = clients.client_config

    def client_config(max_concurrency: int) -> Any:
        return original(max_concurrency).merge(BotoConfig(parameter_validation=False, user_agent=user_agent))

    clients.client_config = client_config  # type: ignore[assignment]


class RequestCounter:
    """Requests sent by the replicator's clients, by where they went and how they ended (thread-safe)."""

    KEYS = ("remote", "remote_condition_failed", "local", "local_condition_failed")

    def __init__(self) -> None:
        import threading

        self._lock = threading.Lock()
        self.counts = dict.fromkeys(self.KEYS, 0)

    def attach(self, client: Any, remote: bool) -> None:
        where = "remote" if remote else "local"

        def after_call(parsed: Any = None, **_: Any) -> None:
            failed = isinstance(parsed, dict) and parsed.get("Error", {}).get("Code") == "ConditionalCheckFailedException"
            with self._lock:
                self.counts[where] += 1
                if failed:
                    self.counts[where + "_condition_failed"] += 1

        client.meta.events.register("after-call", after_call, unique_id=f"bench-count-{where}")

    def take(self) -> dict[str, int]:
        with self._lock:
            out, self.counts = self.counts, dict.fromkeys(self.KEYS, 0)
        return out


def _load_handler(spec: dict[str, Any], counter: RequestCounter | None = None) -> Any:
    """Import ``replicator.handler`` as Lambda does and hook the round trip onto replica clients."""
    sys.path.insert(0, str(Path(os.environ.get("BENCH_CODE_DIR", ROOT)) / "lambda_src"))
    from benchmarks.rtt import add_round_trip

    if spec.get("tuning") == "client":
        _tune_clients()
    from replicator import handler as module

    processor = module.PROCESSOR
    source_region = processor.config.source.region
    factory = processor.clients
    create = factory._create  # the factory's own method, called once per (region, account, role)

    def create_with_rtt(table: Any) -> Any:
        client = create(table)
        if table.region != source_region:
            add_round_trip(client, spec["rtt_ms"])
        if counter is not None:
            counter.attach(client, remote=table.region != source_region)
        return client

    factory._create = create_with_rtt  # type: ignore[method-assign]
    # Create the clients now, as the naive baseline creates its client at import: both are then measured
    # from warm clients (a container creates them once; the first batch still opens the connections).
    for table in (*processor.config.targets, processor.config.source):
        factory.for_table(table)
    return module.handler


def _load_naive(spec: dict[str, Any]) -> Any:
    from benchmarks.naive import NaiveReplicator
    from benchmarks.rtt import add_round_trip

    naive = NaiveReplicator.from_env(os.environ)
    add_round_trip(naive.client, spec["rtt_ms"])
    return naive.handler


def run(spec: dict[str, Any]) -> dict[str, Any]:
    os.environ.update(spec["env"])
    rss_start = _rss_kib()
    counter = RequestCounter() if spec.get("trace") else None
    handler = _load_handler(spec, counter) if spec["kind"] in ("replicator", "memory") else _load_naive(spec)
    rss_imported = _rss_kib()

    if spec["kind"] == "memory":
        raw = Path(spec["events_file"]).read_bytes()  # Lambda's runtime receives the payload as bytes
        event = json.loads(raw)
        del raw
        started = time.perf_counter()
        response = handler(event, Context())
        return {
            "records": len(event["Records"]),
            "payload_bytes": os.path.getsize(spec["events_file"]),
            "seconds": time.perf_counter() - started,
            "failed": len(response["batchItemFailures"]),
            "rss_start_kib": rss_start,
            "rss_imported_kib": rss_imported,
            "peak_rss_kib": _rss_kib(),
        }

    durations: list[float] = []
    spans: list[tuple[float, float]] = []
    requests: list[dict[str, int]] = []
    cpu = 0.0
    records = 0
    failed_batches = 0
    with open(spec["events_file"]) as lines:
        # Lanes (``ready_file``) decode every event before the start signal, so a lane's wall time holds only
        # handler calls, as the sum of durations does for one container (Lambda's runtime decodes the event
        # before the handler's clock starts).
        events = [json.loads(line) for line in lines] if spec.get("ready_file") else lines
        _wait_for_go(spec)
        for line in events:
            event = json.loads(line) if isinstance(line, str) else line
            context = Context()
            c0 = time.process_time()
            w0 = time.time()
            t0 = time.perf_counter()
            response = handler(event, context)
            t1 = time.perf_counter()
            c1 = time.process_time()
            durations.append(t1 - t0)
            spans.append((w0, w0 + (t1 - t0)))
            if counter is not None:
                requests.append(counter.take())
            cpu += c1 - c0
            records += len(event["Records"])
            if response and response.get("batchItemFailures"):
                failed_batches += 1
    return {
        "records": records,
        "batches": len(durations),
        "durations": durations,
        "spans": spans,
        "requests": requests,
        "cpu_seconds": cpu,
        "failed_batches": failed_batches,
        "rss_imported_kib": rss_imported,
        "peak_rss_kib": _rss_kib(),
    }


def _wait_for_go(spec: dict[str, Any]) -> None:
    """With ``ready_file``/``go_file``: say the handler is loaded, then wait until the parent says go."""
    if not spec.get("ready_file"):
        return
    Path(spec["ready_file"]).write_text("ready")
    go = Path(spec["go_file"])
    while not go.exists():
        time.sleep(0.002)


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text())
    result = run(spec)
    Path(spec["result_file"]).write_text(json.dumps(result))


if __name__ == "__main__":
    main()
