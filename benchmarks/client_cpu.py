"""Replicator CPU per record, a commit's code against the working tree's in one run:
``python -m benchmarks.client_cpu [--code REV] [--server stub|ddb-local] [--repeats N] [--records N]``.

Each measurement is a fresh process that imports the handler from one snapshot of ``lambda_src/`` (``--code``:
a git revision extracted with ``git archive``, as ``benchmarks/runner.py``'s ``--code`` does; ``worktree``:
this checkout) and calls it batch by batch (100 records, after one warm-up batch that is not counted), timing
``time.process_time`` around the calls: every thread of the process, nothing of the server's. Baseline and
candidate alternate within each repeat, so both see the same machine; the load average is printed before
and after. The median of the repeats is reported.

Workloads (synthetic records in Lambda's JSON form, ~200-byte items as benchmarks/workload.py makes them):

* ``ma-spread``: multi-active, one write per item (INSERT), one replica region;
* ``ma-blackbox``: multi-active, the issue 17 black-box workload: 3,000 application writes over 1,000 items
  that exist in the source (MODIFY with old images), 10% deletes (REMOVE: a tombstone to the replica and one
  to the source table), increasing ``updatedAt``, a fresh replica table;
* ``kinesis-spread``: one-way fed by a Kinesis data stream (conditional writes), one write per item.

Servers: ``stub`` answers every request in-process with an empty success (botocore's ``before-send``), so
only the client side is measured and every conditional write succeeds; ``ddb-local`` sends the requests to a
DynamoDB Local started here, with fresh tables for every measurement, so failed conditions (a tombstone onto
the replica's copy of the deleted item) cost what they cost.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
WORKLOADS = ("ma-spread", "ma-blackbox", "kinesis-spread")
BATCH = 100
SOURCE = {"tableName": "src", "region": "us-east-1", "account": "111111111111"}
TARGET = {"tableName": "dst", "region": "eu-west-1", "account": "111111111111"}


def _stub(request: Any, **_: Any) -> Any:
    from botocore.awsrequest import AWSResponse

    class Raw:
        def __init__(self, body: bytes) -> None:
            self._body = body

        def stream(self, **_: Any) -> Any:
            yield self._body

    body = b'{"UnprocessedItems":{}}' if b"RequestItems" in (request.body or b"") else b"{}"
    return AWSResponse(request.url, 200, {"x-amzn-requestid": "stub", "content-type": "application/x-amz-json-1.0"},
                       Raw(body))


def _record(i: int, name: str, key: dict[str, Any], new: Any, old: Any) -> dict[str, Any]:
    from cdk_replication.local.stream_records import to_json_image

    body: dict[str, Any] = {"ApproximateCreationDateTime": float(int(time.time())), "Keys": to_json_image(key),
                            "SequenceNumber": str(10**20 + i), "SizeBytes": 500, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    if new is not None:
        body["NewImage"] = to_json_image(new)
    if old is not None:
        body["OldImage"] = to_json_image(old)
    return {"eventID": str(i), "eventName": name, "eventVersion": "1.1", "eventSource": "aws:dynamodb",
            "awsRegion": SOURCE["region"], "dynamodb": body,
            "eventSourceARN": f"arn:aws:dynamodb:us-east-1:111111111111:table/{SOURCE['tableName']}/stream/x"}


def _spread(records: int, first: int = 0) -> list[dict[str, Any]]:
    """One INSERT each of items ``first``, ``first + 1``, ..."""
    from benchmarks.workload import BASE_TIMESTAMP_MS, make_item

    out = []
    for i in range(first, first + records):
        item = make_item(i, 0, BASE_TIMESTAMP_MS + i, 200)
        out.append(_record(i, "INSERT", {"pk": item["pk"]}, item, None))
    return out


def _blackbox(writes: int = 3000, items: int = 1000, deletes: float = 0.1, seed: int = 17) -> list[dict[str, Any]]:
    """Application writes over items that all exist before the first record (their INSERTs are not part of
    the stream), a share of them deletes; a delete of an absent item is skipped, a write to one is an INSERT."""
    from benchmarks.workload import BASE_TIMESTAMP_MS, make_item

    rng = random.Random(seed)
    current: dict[int, Any] = {i: make_item(i, 0, BASE_TIMESTAMP_MS - items + i, 200) for i in range(items)}
    out: list[dict[str, Any]] = []
    version = 1
    while len(out) < writes:
        index = rng.randrange(items)
        old = current.get(index)
        if rng.random() < deletes:
            if old is None:
                continue
            out.append(_record(len(out), "REMOVE", {"pk": old["pk"]}, None, old))
            current[index] = None
            continue
        new = make_item(index, version, BASE_TIMESTAMP_MS + len(out), 200)
        version += 1
        out.append(_record(len(out), "MODIFY" if old else "INSERT", {"pk": new["pk"]}, new, old))
        current[index] = new
    return out


def _events(workload: str, records: int) -> list[dict[str, Any]]:
    """Batches of the workload, the first one (warm-up) extra."""
    warm_up = _spread(BATCH, first=10**6)  # items of their own: clients, connections, imports
    raw = warm_up + (_blackbox() if workload == "ma-blackbox" else _spread(records))
    if workload == "kinesis-spread":
        from benchmarks.workload import TableSpec, kinesis_records

        raw = kinesis_records(raw, TableSpec(SOURCE["tableName"], SOURCE["region"], SOURCE["account"]))
    return [json.loads(json.dumps({"Records": raw[s : s + BATCH]})) for s in range(0, len(raw), BATCH)]


def _environment(workload: str, endpoint: str | None) -> dict[str, str]:
    from cdk_replication.local import credentials_for_account

    env = {
        **credentials_for_account(SOURCE["account"]).as_env(),
        "AWS_REGION": SOURCE["region"], "AWS_DEFAULT_REGION": SOURCE["region"],
        "AWS_ENDPOINT_URL_DYNAMODB": endpoint or "http://127.0.0.1:9",
        "REPLICATION_MODE": "ONE_WAY" if workload.startswith("kinesis") else "MULTI_ACTIVE",
        "REPLICATION_SOURCE": json.dumps(SOURCE), "REPLICATION_TARGETS": json.dumps([TARGET]),
        "REPLICATION_KEY": json.dumps({"partitionKey": "pk", "sortKey": None}),
    }
    if workload.startswith("kinesis"):
        env["REPLICATION_CHANGE_SOURCE"] = "KINESIS"
    return env


def child(code_dir: str, workload: str, records: int, stub: bool) -> dict[str, Any]:
    """One measurement in this (fresh) process: the handler of ``code_dir``/lambda_src over the workload."""
    sys.path.insert(0, str(Path(code_dir) / "lambda_src"))
    from benchmarks.worker import Context

    events = _events(workload, records)
    from replicator import handler as module

    if stub:
        factory = module.PROCESSOR.clients
        create = factory._create

        def create_stubbed(table: Any) -> Any:
            client = create(table)
            client.meta.events.register("before-send", _stub)
            return client

        factory._create = create_stubbed  # type: ignore[method-assign]
    stdout, sys.stdout = sys.stdout, open(os.devnull, "w")  # the replicator's logs and metrics
    failed = 0
    try:
        module.handler(events[0], Context())  # warm-up: clients, connections, imports
        c0 = time.process_time()
        for event in events[1:]:
            failed += len(module.handler(event, Context())["batchItemFailures"])
        cpu = time.process_time() - c0
    finally:
        sys.stdout = stdout
    count = sum(len(e["Records"]) for e in events[1:])
    return {"records": count, "cpu_us_per_record": 1e6 * cpu / count, "failed": failed}


def _snapshot(revision: str, work: Path) -> Path:
    """``lambda_src/`` and ``cdk_replication/`` of ``revision`` under ``work`` (as benchmarks/cli.py does)."""
    from benchmarks.runner import snapshot_code

    return snapshot_code(revision, work / revision)


def _fresh_tables(ddb: Any) -> None:
    """Empty source and replica tables (DynamoDB Local keeps one database per account and region)."""
    for ref in (SOURCE, TARGET):
        client = ddb.client(region=ref["region"], account=ref["account"])
        try:
            client.delete_table(TableName=ref["tableName"])
        except client.exceptions.ResourceNotFoundException:
            pass
        client.create_table(TableName=ref["tableName"], BillingMode="PAY_PER_REQUEST",
                            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}])


def _measure(code_dir: Path, workload: str, args: argparse.Namespace, ddb: Any) -> dict[str, Any]:
    if ddb is not None:
        _fresh_tables(ddb)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "REPLICATION_"))}
    env.update(_environment(workload, ddb.endpoint_url if ddb is not None else None))
    env["PYTHONPATH"] = f"{code_dir}:{ROOT}"
    command = [sys.executable, "-m", "benchmarks.client_cpu", "--records", str(args.records),
               "--child", str(code_dir), workload, args.server]
    out = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _run(args: argparse.Namespace, ddb: Any) -> None:
    with tempfile.TemporaryDirectory() as work:
        codes = {args.code: _snapshot(args.code, Path(work)), "worktree": ROOT}
        results: dict[tuple[str, str], list[float]] = {}
        print(f"load average before {_load()}", flush=True)
        for repeat in range(args.repeats):
            for workload in args.workloads.split(","):
                for name, code_dir in codes.items():
                    r = _measure(code_dir, workload, args, ddb)
                    results.setdefault((workload, name), []).append(r["cpu_us_per_record"])
                    print(f"  repeat {repeat} {workload} {name}: {r['cpu_us_per_record']:,.0f} us/record "
                          f"({r['records']} records, {r['failed']} failed) load {_load()}", flush=True)
        print(f"load average after {_load()}")
        print(f"\n| workload ({args.server}) | {args.code} us/record | worktree us/record | worktree/{args.code} |")
        print("|---|---|---|---|")
        for workload in args.workloads.split(","):
            base = statistics.median(results[(workload, args.code)])
            head = statistics.median(results[(workload, "worktree")])
            print(f"| {workload} | {base:,.0f} | {head:,.0f} | {head / base:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.client_cpu", description=__doc__.split("\n\n")[0])
    parser.add_argument("--code", default="5795623", help="git revision measured against the working tree")
    parser.add_argument("--server", choices=("stub", "ddb-local"), default="ddb-local")
    parser.add_argument("--workloads", default=",".join(WORKLOADS))
    parser.add_argument("--records", type=int, default=3000, help="records per spread measurement")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--child", nargs=3, metavar=("CODE_DIR", "WORKLOAD", "SERVER"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], args.child[1], args.records, args.child[2] == "stub")))
        return
    if args.server == "stub":
        _run(args, None)
        return
    from cdk_replication.local import DynamoDBLocal

    with DynamoDBLocal() as ddb:
        _run(args, ddb)


if __name__ == "__main__":
    main()
