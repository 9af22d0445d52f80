"""Experiment: Kinesis-fed ONE_WAY writes as TransactWriteItems instead of one conditional PutItem per item.

``python -m benchmarks.proposals.kinesis_transactions [--items 4000] [--batch 1000] [--rtt-ms 0,100]
[--chunks 25,50,100] [--superseded 0,0.1,1] [--writers 128] [--repeat 1] [--output FILE.json]``

Self-contained (does not touch ``lambda_src/``): one DynamoDB Local (2 GiB heap, as ``python -m benchmarks``)
stands for the replica region. For each variant the same N items are replicated into a fresh table, in
consecutive batches of ``--batch`` items (a Kinesis mapping's batch: the next batch starts when the previous
one is written), with a thread pool of ``--writers`` threads shared by the whole run:

* ``put``: one conditional PutItem per item, the request the replicator sends with
  ``REPLICATION_CHANGE_SOURCE=KINESIS`` (``ordered_one_way.py`` + ``conditional_writer.conditional_put``):
  condition ``attribute_not_exists(#t) OR #t < :t OR (#t = :t AND #s = :p)`` on ``_rep_changedAt`` /
  ``_rep_state``, ``ReturnValuesOnConditionCheckFailure=ALL_OLD``; ConditionalCheckFailed = superseded.
* ``tx<C>``: the batch cut into chunks of C items, one TransactWriteItems of C Puts with the same condition
  per chunk, all chunks of a batch at once. On TransactionCanceledException the CancellationReasons (one per
  Put, in order) say which Puts failed their condition: those items are superseded and dropped, the rest is
  sent again as a new transaction (repeated until nothing is left).

Items are the benchmark's ~350-byte application items (``benchmarks.workload.make_item``) stamped as the
replicator stamps them (``_rep_changedAt`` = change time in microseconds, ``_rep_state`` = a 22-character
digest). ``--superseded F`` seeds a fraction F of the items (every 1/F-th, spread evenly) into the table
before the clock starts with a change time one second *newer*, as when a late or duplicate Kinesis record
arrives after a newer change was written: the replicated write of such an item must be refused. ``1`` (every
item) stands for a batch Lambda delivers again after it was applied (a retry after a partial failure).

Round trip: ``benchmarks.rtt.add_round_trip`` (a botocore ``before-send`` hook that sleeps) on the measured
client. The client's configuration is the replicator's (``replicator.clients.client_config``): one pooled
connection per writer, no parameter validation, a fixed User-Agent. Connections are opened before the clock.

Measures, per variant, in this one process: records/s = N / wall time of all batches; client CPU per record =
``time.process_time()`` (all threads of this process) over the batches / N; DynamoDB Local CPU per record
(user+system time of the Java process, from /proc, informational: it is the emulator's cost, not AWS's);
requests sent; transactions cancelled; items re-sent. Request building is inside the clock; building the
item images is not (the replicator's planning, identical for both, is not what is compared).

Copy check after each variant (client without round trip): a Scan must return exactly the N keys; every
non-seeded item must hold exactly the replicated image (every attribute) and every seeded item must still
hold its newer seeded image (its change time and marker); and the writer's own count of superseded items
must equal the number seeded.

Every variant of a round trip is measured ``--repeat`` times, the variants interleaved, and each row's ratio
is taken against the ``put`` row of the same round trip, superseded fraction and repetition.
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from benchmarks.rtt import add_round_trip
from benchmarks.workload import ACCOUNT, REPLICA_REGION, make_item
from cdk_replication.local import DynamoDBLocal, credentials_for_account

CHANGED_AT = "_rep_changedAt"
STATE = "_rep_state"
SEEDED = "seeded"
CONDITION = "attribute_not_exists(#t) OR #t < :t OR (#t = :t AND #s = :p)"
NAMES = {"#t": CHANGED_AT, "#s": STATE}
BASE_CHANGE_US = 1_790_000_000_000_000
RETRYABLE = {
    "ThrottlingException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "InternalServerError",
    "ServiceUnavailable",
    "TransactionInProgressException",
}


def _config(writers: int) -> Config:
    # As replicator.clients.client_config (botocore retries off: the writer retries itself).
    return Config(
        max_pool_connections=writers,
        retries={"mode": "standard", "total_max_attempts": 1},
        tcp_keepalive=True,
        connect_timeout=5,
        read_timeout=20,
        parameter_validation=False,
        user_agent="Boto3 lib/cdk-replication proposals/kinesis-transactions",
    )


def _client(ddb: DynamoDBLocal, writers: int) -> Any:
    creds = credentials_for_account(ACCOUNT)
    return boto3.session.Session().client(
        "dynamodb",
        region_name=REPLICA_REGION,
        endpoint_url=ddb.endpoint_url,
        aws_access_key_id=creds.access_key_id,
        aws_secret_access_key=creds.secret_access_key,
        config=_config(writers),
    )


def _java_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _items(n: int, payload_bytes: int) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        item = make_item(i, 1, 1_790_000_000_000 + i, payload_bytes)
        item[CHANGED_AT] = {"N": str(BASE_CHANGE_US + i)}
        item[STATE] = {"S": f"{i:022d}"}
        out.append(item)
    return out


def _seeded_indexes(n: int, fraction: float) -> set[int]:
    if fraction <= 0:
        return set()
    count = round(n * fraction)
    return {int(k * n / count) for k in range(count)}


def _seed_item(item: dict[str, Any]) -> dict[str, Any]:
    newer = dict(item)
    newer[CHANGED_AT] = {"N": str(int(item[CHANGED_AT]["N"]) + 1_000_000)}
    newer[STATE] = {"S": "n" * 22}
    newer[SEEDED] = {"BOOL": True}
    return newer


class Counters:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests = 0
        self.written = 0
        self.superseded = 0
        self.cancelled = 0
        self.resent = 0
        self.conflicts = 0
        self.retries = 0
        self.failed = 0

    def add(self, **kw: int) -> None:
        with self.lock:
            for k, v in kw.items():
                setattr(self, k, getattr(self, k) + v)


def _code(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return type(exc).__name__


def _put(client: Any, table: str, item: dict[str, Any], c: Counters) -> None:
    kwargs = {
        "TableName": table,
        "Item": item,
        "ConditionExpression": CONDITION,
        "ExpressionAttributeNames": NAMES,
        "ExpressionAttributeValues": {":t": item[CHANGED_AT], ":p": {"S": "-"}},
        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
    }
    for attempt in range(8):
        c.add(requests=1)
        try:
            client.put_item(**kwargs)
            c.add(written=1)
            return
        except (ClientError, BotoCoreError) as exc:
            code = _code(exc)
            if code == "ConditionalCheckFailedException":
                c.add(superseded=1)
                return
            if code not in RETRYABLE and not isinstance(exc, BotoCoreError):
                raise
            c.add(retries=1)
            time.sleep(0.01 * 2**attempt)
    c.add(failed=1)


def _reasons(exc: ClientError, count: int) -> list[str]:
    reasons = exc.response.get("CancellationReasons")
    if reasons:
        return [r.get("Code", "None") for r in reasons]
    # Fallback: the message lists the reasons, "... [None, ConditionalCheckFailed, ...]".
    message = exc.response.get("Error", {}).get("Message", "")
    inner = message[message.rfind("[") + 1 : message.rfind("]")]
    codes = [s.strip() for s in inner.split(",")]
    if len(codes) != count:
        raise RuntimeError(f"cannot read cancellation reasons from {message!r}") from exc
    return codes


def _transact(client: Any, table: str, chunk: list[dict[str, Any]], c: Counters) -> None:
    pending = chunk
    attempt = 0
    while pending:
        ops = [
            {
                "Put": {
                    "TableName": table,
                    "Item": item,
                    "ConditionExpression": CONDITION,
                    "ExpressionAttributeNames": NAMES,
                    "ExpressionAttributeValues": {":t": item[CHANGED_AT], ":p": {"S": "-"}},
                }
            }
            for item in pending
        ]
        c.add(requests=1)
        try:
            client.transact_write_items(TransactItems=ops)
            c.add(written=len(pending))
            return
        except (ClientError, BotoCoreError) as exc:
            code = _code(exc)
            if code == "TransactionCanceledException":
                assert isinstance(exc, ClientError)
                codes = _reasons(exc, len(pending))
                keep = [it for it, r in zip(pending, codes) if r != "ConditionalCheckFailed"]
                dropped = len(pending) - len(keep)
                conflicts = sum(1 for r in codes if r == "TransactionConflict")
                c.add(cancelled=1, superseded=dropped, resent=len(keep), conflicts=conflicts)
                if dropped == 0:  # nothing superseded: a conflict or throttle, back off before re-sending
                    if attempt >= 8:
                        c.add(failed=len(keep))
                        return
                    time.sleep(0.01 * 2**attempt)
                    attempt += 1
                pending = keep
                continue
            if code not in RETRYABLE and not isinstance(exc, BotoCoreError):
                raise
            if attempt >= 8:
                c.add(failed=len(pending))
                return
            c.add(retries=1)
            time.sleep(0.01 * 2**attempt)
            attempt += 1


def _create_table(client: Any, name: str) -> None:
    client.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )


def _scan(client: Any, table: str) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    kwargs: dict[str, Any] = {"TableName": table}
    while True:
        page = client.scan(**kwargs)
        for it in page["Items"]:
            out[it["pk"]["S"]] = it
        if "LastEvaluatedKey" not in page:
            return out
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _norm(item: dict[str, Any]) -> str:
    def canon(v: Any) -> Any:
        if isinstance(v, dict):
            if set(v) == {"SS"}:
                return {"SS": sorted(v["SS"])}
            return {k: canon(x) for k, x in sorted(v.items())}
        return v

    return json.dumps(canon(item), sort_keys=True)


def run_variant(
    ddb: DynamoDBLocal,
    admin: Any,
    variant: str,
    items: list[dict[str, Any]],
    batch: int,
    writers: int,
    rtt_ms: float,
    superseded: float,
    tag: str,
) -> dict[str, Any]:
    table = f"kt-{variant}-{int(rtt_ms)}-{int(superseded * 100)}-{tag}"
    _create_table(admin, table)
    seeded = _seeded_indexes(len(items), superseded)
    with ThreadPoolExecutor(16) as seeder:
        list(seeder.map(lambda i: admin.put_item(TableName=table, Item=_seed_item(items[i])), sorted(seeded)))
    client = _client(ddb, writers)
    add_round_trip(client, rtt_ms)
    c = Counters()
    with ThreadPoolExecutor(writers) as pool:
        # Open every pooled connection before the clock (a warm Lambda container keeps them).
        wait([pool.submit(client.get_item, TableName=table, Key={"pk": {"S": "warm"}}) for _ in range(writers)])
        chunk = int(variant[2:]) if variant.startswith("tx") else 0
        load = round(os.getloadavg()[0], 2)
        java0 = _java_cpu_s(ddb._proc.pid)  # noqa: SLF001 - the JVM's pid, for its CPU time
        cpu0 = time.process_time()
        t0 = time.perf_counter()
        for start in range(0, len(items), batch):
            part = items[start : start + batch]
            if chunk:
                futures = [pool.submit(_transact, client, table, part[s : s + chunk], c) for s in range(0, len(part), chunk)]
            else:
                futures = [pool.submit(_put, client, table, it, c) for it in part]
            for f in futures:
                f.result()
        seconds = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
        java = _java_cpu_s(ddb._proc.pid) - java0  # noqa: SLF001
    # Copy check.
    stored = _scan(admin, table)
    problems = []
    if len(stored) != len(items):
        problems.append(f"{len(stored)} items, expected {len(items)}")
    for i, item in enumerate(items):
        got = stored.get(item["pk"]["S"])
        want = _seed_item(item) if i in seeded else item
        if got is None or _norm(got) != _norm(want):
            problems.append(f"{item['pk']['S']}: wrong or missing")
            if len(problems) > 5:
                break
    if c.superseded != len(seeded):
        problems.append(f"{c.superseded} superseded counted, {len(seeded)} seeded")
    if c.failed:
        problems.append(f"{c.failed} items failed")
    admin.delete_table(TableName=table)
    n = len(items)
    return {
        "variant": variant,
        "rtt_ms": rtt_ms,
        "superseded_fraction": superseded,
        "tag": tag,
        "items": n,
        "batch": batch,
        "writers": writers,
        "seconds": seconds,
        "records_per_s": n / seconds,
        "client_cpu_us_per_record": cpu / n * 1e6,
        "ddb_local_cpu_us_per_record": java / n * 1e6,
        "requests": c.requests,
        "written": c.written,
        "superseded": c.superseded,
        "seeded": len(seeded),
        "cancelled": c.cancelled,
        "resent_items": c.resent,
        "transaction_conflicts": c.conflicts,
        "retries": c.retries,
        "copy_check": "ok" if not problems else "; ".join(problems),
        "load_1m": load,
    }


def capacity_probe(admin: Any) -> dict[str, Any]:
    """What DynamoDB Local reports as ConsumedCapacity (ReturnConsumedCapacity=TOTAL) for one conditional put,
    a 10-Put transaction, and a 10-Put transaction cancelled by one failed condition. Informational only."""
    table = "kt-capacity-probe"
    _create_table(admin, table)
    items = _items(20, 200)
    out: dict[str, Any] = {}
    r = admin.put_item(TableName=table, Item=items[0], ConditionExpression=CONDITION, ExpressionAttributeNames=NAMES,
                       ExpressionAttributeValues={":t": items[0][CHANGED_AT], ":p": {"S": "-"}},
                       ReturnConsumedCapacity="TOTAL")
    out["put_item_1"] = r.get("ConsumedCapacity")
    ops = [{"Put": {"TableName": table, "Item": it, "ConditionExpression": CONDITION, "ExpressionAttributeNames": NAMES,
                    "ExpressionAttributeValues": {":t": it[CHANGED_AT], ":p": {"S": "-"}}}} for it in items[1:11]]
    r = admin.transact_write_items(TransactItems=ops, ReturnConsumedCapacity="TOTAL")
    out["transact_10"] = r.get("ConsumedCapacity")
    admin.put_item(TableName=table, Item=_seed_item(items[12]))
    ops = [{"Put": {"TableName": table, "Item": it, "ConditionExpression": CONDITION, "ExpressionAttributeNames": NAMES,
                    "ExpressionAttributeValues": {":t": it[CHANGED_AT], ":p": {"S": "-"}}}} for it in items[11:20]]
    try:
        admin.transact_write_items(TransactItems=ops, ReturnConsumedCapacity="TOTAL")
        out["transact_9_cancelled"] = "not cancelled?"
    except ClientError as exc:
        out["transact_9_cancelled"] = {
            "ConsumedCapacity": exc.response.get("ConsumedCapacity"),
            "CancellationReasons_in_response": "CancellationReasons" in exc.response,
            "codes": _reasons(exc, len(ops)),
        }
    admin.delete_table(TableName=table)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--items", type=int, default=4000)
    p.add_argument("--batch", type=int, default=1000)
    p.add_argument("--writers", type=int, default=128)
    p.add_argument("--rtt-ms", default="0,100")
    p.add_argument("--chunks", default="25,50,100")
    p.add_argument("--superseded", default="0,0.1,1")
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--payload-bytes", type=int, default=200)
    p.add_argument("--output", default="benchmarks/proposals/kinesis-transactions.json")
    args = p.parse_args()
    rtts = [float(x) for x in args.rtt_ms.split(",")]
    variants = ["put"] + [f"tx{int(x)}" for x in args.chunks.split(",") if x]
    fractions = [float(x) for x in args.superseded.split(",")]
    items = _items(args.items, args.payload_bytes)
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    rows: list[dict[str, Any]] = []
    with DynamoDBLocal(jvm_options=["-Xmx2g"]) as ddb:
        admin = _client(ddb, 16)
        # Warm DynamoDB Local's JIT and this process's botocore (loaders, models) outside any measurement.
        for v in variants:
            run_variant(ddb, admin, v, items[:1000], args.batch, args.writers, 0, 0.1, "warmup")
        probe = capacity_probe(admin)
        print("capacity probe (DynamoDB Local):", json.dumps(probe))
        for rtt in rtts:
            for frac in fractions:
                for rep in range(args.repeat):
                    order = variants if rep % 2 == 0 else [variants[0]] + variants[:0:-1]
                    for v in order:
                        row = run_variant(ddb, admin, v, items, args.batch, args.writers, rtt, frac, f"r{rep}")
                        rows.append(row)
                        print(
                            f"rtt={rtt:>5.0f} ms superseded={frac:.0%} rep={rep} {v:>5}: "
                            f"{row['records_per_s']:8.0f} rec/s  client CPU {row['client_cpu_us_per_record']:6.0f} us/rec  "
                            f"ddb-local CPU {row['ddb_local_cpu_us_per_record']:6.0f} us/rec  requests {row['requests']:5d}  "
                            f"cancelled {row['cancelled']:3d}  re-sent {row['resent_items']:5d}  superseded {row['superseded']:4d}  "
                            f"check {row['copy_check']}  load {row['load_1m']}",
                            flush=True,
                        )
    for row in rows:
        base = next(
            r for r in rows
            if r["variant"] == "put" and r["rtt_ms"] == row["rtt_ms"]
            and r["superseded_fraction"] == row["superseded_fraction"] and r["tag"] == row["tag"]
        )
        row["rate_vs_put"] = row["records_per_s"] / base["records_per_s"]
        row["client_cpu_vs_put"] = row["client_cpu_us_per_record"] / base["client_cpu_us_per_record"]
    result = {
        "started": started,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "args": vars(args),
        "cpus": os.cpu_count(),
        "capacity_probe": probe,
        "rows": rows,
    }
    Path(args.output).write_text(json.dumps(result, indent=1))
    print(f"\n| RTT | superseded | variant | records/s | vs put | client CPU us/rec | vs put | DDB Local CPU us/rec | requests | cancelled | re-sent | check |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['rtt_ms']:.0f} ms | {r['superseded_fraction']:.0%} | {r['variant']} ({r['tag']}) | {r['records_per_s']:,.0f} | "
            f"{r['rate_vs_put']:.2f}x | {r['client_cpu_us_per_record']:,.0f} | {r['client_cpu_vs_put']:.2f}x | "
            f"{r['ddb_local_cpu_us_per_record']:,.0f} | {r['requests']:,} | {r['cancelled']} | {r['resent_items']:,} | {r['copy_check']} |"
        )
    print(f"\nraw: {args.output}")


if __name__ == "__main__":
    main()
