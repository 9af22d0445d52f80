"""One backfill run in a fresh process: ``python -m benchmarks.backfill_worker <spec.json>``.

``kind``:

* ``cli``: ``cdk-replication backfill`` through its Python entry point (``cdk_replication.cli.main.main``,
  exactly what the console script calls) with ``--json``. The simulated round trip is hooked onto the
  *target* table's client after the command has opened the tables and before it writes: the command runs in
  the source's region and writes across the link. Scans of the source pay no round trip.
* ``naive``: the tutorials' copy: ``Table.scan`` pages (TypeDeserializer) and one ``Table.put_item``
  (TypeSerializer) per item, one after the other, stopped after ``limit`` items (a sample: a naive copy of
  100,000 items across a 100 ms link takes about three hours).
"""

from __future__ import annotations

import io
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.rtt import add_round_trip


def run_cli(spec: dict[str, Any]) -> dict[str, Any]:
    from cdk_replication.cli import commands
    from cdk_replication.cli.main import main

    open_pair = commands.open_pair

    def open_pair_with_rtt(args: Any, pool: int) -> Any:
        source, target = open_pair(args, pool)
        add_round_trip(target.client, spec["rtt_ms"])
        return source, target

    commands.open_pair = open_pair_with_rtt  # type: ignore[assignment]
    argv = [
        "backfill",
        f"{spec['source_region']}:{spec['source']}",
        f"{spec['target_region']}:{spec['target']}",
        "--endpoint-url",
        spec["endpoint_url"],
        "--json",
        "--quiet",
        "--restart",
        "--state-file",
        spec["state_file"],
        *spec.get("extra_args", []),
    ]
    out, err = io.StringIO(), io.StringIO()
    c0 = time.process_time()
    t0 = time.perf_counter()
    code = main(argv, stdout=out, stderr=err)
    seconds = time.perf_counter() - t0
    cpu = time.process_time() - c0
    if code != 0:
        raise RuntimeError(f"backfill exited {code}: {err.getvalue()[-2000:]}")
    report = json.loads(out.getvalue())
    items = report["counts"]["copied"]
    return {
        "argv": ["cdk-replication", *argv],
        "items": items,
        "counts": report["counts"],
        "seconds": seconds,
        "items_per_s": items / seconds,
        "cpu_us_per_item": 1e6 * cpu / items if items else None,
    }


def run_naive(spec: dict[str, Any]) -> dict[str, Any]:
    import boto3

    resource = boto3.resource("dynamodb", region_name=spec["source_region"], endpoint_url=spec["endpoint_url"])
    source = resource.Table(spec["source"])
    target = boto3.resource(
        "dynamodb", region_name=spec["target_region"], endpoint_url=spec["endpoint_url"]
    ).Table(spec["target"])
    add_round_trip(target.meta.client, spec["rtt_ms"])
    limit = spec["limit"]
    copied = 0
    c0 = time.process_time()
    t0 = time.perf_counter()
    kwargs: dict[str, Any] = {}
    while copied < limit:
        page = source.scan(**kwargs)
        for item in page["Items"]:
            target.put_item(Item=item)
            copied += 1
            if copied >= limit:
                break
        if "LastEvaluatedKey" not in page:
            break
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    seconds = time.perf_counter() - t0
    cpu = time.process_time() - c0
    return {
        "items": copied,
        "seconds": seconds,
        "items_per_s": copied / seconds,
        "cpu_us_per_item": 1e6 * cpu / copied if copied else None,
    }


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text())
    os.environ.update(spec.get("env", {}))
    result = run_cli(spec) if spec["kind"] == "cli" else run_naive(spec)
    Path(spec["result_file"]).write_text(json.dumps(result))


if __name__ == "__main__":
    main()
