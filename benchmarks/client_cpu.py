"""Client CPU per record without any server: ``python -m benchmarks.client_cpu [--records N]``.

Every request of the replicator's (or the naive baseline's) clients is answered in-process by a botocore
``before-send`` handler with an empty success (``{}``, or ``{"UnprocessedItems": {}}`` for BatchWriteItem),
so what is measured is only this process: event parsing, planning, botocore serialization, signing,
User-Agent and parsing of the answer, the thread pool. Each variant runs in its own fresh process on the
same synthetic spread workload (records shaped like the benchmark's, in Lambda's JSON form), batches of 500,
after one warm-up batch. Variants: the naive baseline, the replicator as it is, and the replicator with the
proposed client tuning (``benchmarks/proposals/replicator-client-tuning.diff``, monkeypatched).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


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


def _events(records: int, batch: int) -> list[dict[str, Any]]:
    from cdk_replication.local.stream_records import to_json_image

    from benchmarks.workload import BASE_TIMESTAMP_MS, make_item

    out = []
    for i in range(records):
        item = make_item(i, 0, BASE_TIMESTAMP_MS + i, 200)
        out.append({
            "eventID": str(i), "eventName": "INSERT", "eventVersion": "1.1", "eventSource": "aws:dynamodb",
            "awsRegion": "us-east-1",
            "dynamodb": {"ApproximateCreationDateTime": float(int(time.time())), "Keys": {"pk": item["pk"]},
                         "NewImage": to_json_image(item), "SequenceNumber": str(10**20 + i), "SizeBytes": 500,
                         "StreamViewType": "NEW_AND_OLD_IMAGES"},
            "eventSourceARN": "arn:aws:dynamodb:us-east-1:111111111111:table/src/stream/x",
        })
    return [json.loads(json.dumps({"Records": out[s : s + batch]})) for s in range(0, records, batch)]


def child(variant: str, mode: str, records: int) -> dict[str, Any]:
    os.environ.update({
        "AWS_ACCESS_KEY_ID": "stub", "AWS_SECRET_ACCESS_KEY": "stub", "AWS_REGION": "us-east-1",
        "AWS_ENDPOINT_URL_DYNAMODB": "http://127.0.0.1:9", "REPLICATION_MODE": mode,
        "REPLICATION_SOURCE": json.dumps({"tableName": "src", "region": "us-east-1", "account": "111111111111"}),
        "REPLICATION_TARGETS": json.dumps([{"tableName": "dst", "region": "eu-west-1", "account": "111111111111"}]),
        "REPLICATION_KEY": json.dumps({"partitionKey": "pk", "sortKey": None}),
    })
    sys.path.insert(0, str(ROOT / "lambda_src"))
    from benchmarks.worker import Context, _tune_clients

    events = _events(records + 500, 500)
    if variant == "naive":
        from benchmarks.naive import NaiveReplicator

        naive = NaiveReplicator.from_env(os.environ)
        naive.client.meta.events.register("before-send", _stub)
        handler = naive.handler
    else:
        if variant == "tuned":
            _tune_clients()
        from replicator import handler as module

        factory = module.PROCESSOR.clients
        create = factory._create

        def create_stubbed(table: Any) -> Any:
            client = create(table)
            client.meta.events.register("before-send", _stub)
            return client

        factory._create = create_stubbed  # type: ignore[method-assign]
        handler = module.handler
    stdout, sys.stdout = sys.stdout, open(os.devnull, "w")  # the replicator's logs and metrics
    try:
        handler(events[0], Context())  # warm-up
        c0 = time.process_time()
        for event in events[1:]:
            handler(event, Context())
        cpu = time.process_time() - c0
    finally:
        sys.stdout = stdout
    count = sum(len(e["Records"]) for e in events[1:])
    return {"variant": variant, "mode": mode, "records": count, "cpu_us_per_record": 1e6 * cpu / count}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.client_cpu", description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=5000)
    parser.add_argument("--child", nargs=2, metavar=("VARIANT", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], args.child[1], args.records)))
        return
    print(f"load average {[round(x, 2) for x in os.getloadavg()]}")
    print("| mode | client | CPU us/record |\n|---|---|---|")
    for mode in ("ONE_WAY", "MULTI_ACTIVE"):
        for variant in ("naive", "current", "tuned"):
            out = subprocess.run(
                [sys.executable, "-m", "benchmarks.client_cpu", "--records", str(args.records), "--child", variant, mode],
                cwd=ROOT, capture_output=True, text=True, check=True,
                env={**{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "REPLICATION_"))},
                     "PYTHONPATH": str(ROOT)},
            ).stdout
            r = json.loads(out.strip().splitlines()[-1])
            print(f"| {mode} | {'naive baseline' if variant == 'naive' else 'replicator, ' + variant} | "
                  f"{r['cpu_us_per_record']:,.0f} |")
    print(f"load average {[round(x, 2) for x in os.getloadavg()]}")


if __name__ == "__main__":
    main()
