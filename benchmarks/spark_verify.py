"""Scale run of the Spark export comparison (``verify --from-exports``): items/s per core, and the projected
time of a billion-item table on AWS Glue.

    .venv/bin/python -m benchmarks.spark_verify                       # 1,000,000 items per table, 2 cores
    .venv/bin/python -m benchmarks.spark_verify --items 3000000 --cores 2 --output benchmarks/results/spark.json

The two exports are written directly in AWS's layout (cdk_replication/spark/layout.py), not through
DynamoDB: generating a million items through DynamoDB Local would measure DynamoDB Local. Items are
~300-byte application items (strings, a 38-digit number, a number set, a map with a list, binary); the target
equals the source except for 0.1 % changed items and 0.01 % missing ones. A warm-up comparison of a small
export runs first, so the JVM's and the Python workers' start-up is reported apart, not in the rate.

Rates: items read (source + target) per second of the comparison, divided by the local cores Spark used
(wall clock: falls when other processes share the machine), and items read per CPU second of this process
tree (driver, JVM, Python workers; :func:`tree_cpu_seconds`), which other load hardly changes.
Projection, from the CPU rate: a table of N items is compared by reading 2 N items; on Glue with W workers
of type G.1X (4 vCPU each), one worker is the driver, so 4 (W - 1) cores run tasks:
``seconds = 2 N / (items per CPU second x 4 (W - 1))``. Assumptions, stated in the output: the job is CPU-bound
as measured here (JSON decode and digest in Python dominate; the shuffle moves ~60 bytes per item), a Glue
vCPU does the work of one core here, and S3 reads keep up.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cdk_replication.spark.compare import compare_exports
from cdk_replication.spark.layout import resolve_export, write_export
from cdk_replication.spark.session import local_session

BIG = "12345678901234567890123456789012345678"
#: G.1X: vCPUs per Glue worker.
GLUE_G1X_VCPU = 4


def _item(i: int, changed: bool = False) -> dict[str, Any]:
    return {
        "pk": {"S": f"customer#{i:012d}"},
        "sk": {"N": str(i % 97)},
        "name": {"S": f"Name {i} with some text to make the item realistic"},
        "total": {"N": f"{i}.{BIG[: i % 30]}" if not changed else f"{i}.5"},
        "big": {"N": BIG},
        "tags": {"SS": ["a", "b", f"t{i % 13}"]},
        "scores": {"NS": ["1", "2.5", str(i % 1000)]},
        "address": {"M": {"city": {"S": "Springfield"}, "lines": {"L": [{"S": "1 Main St"}, {"NULL": True}]},
                          "zip": {"N": str(10000 + i % 90000)}}},
        "blob": {"B": base64.b64encode(i.to_bytes(8, "big")).decode()},
        "active": {"BOOL": i % 2 == 0},
        "_rep_version": {"N": str(i % 5)},
    }


def _source(n: int) -> Iterator[dict[str, Any]]:
    return (_item(i) for i in range(n))


def _target(n: int) -> Iterator[dict[str, Any]]:
    # 0.1 % changed, 0.01 % missing: few differences, as in a replica that is in sync but for a few keys.
    return (_item(i, changed=i % 1000 == 7) for i in range(n) if i % 10000 != 3)


def tree_cpu_seconds(root: int | None = None) -> float:
    """CPU seconds (user + system, with reaped children's) of process ``root`` (default this one) and every
    live descendant: the driver, Spark's JVM and its Python workers. Read from /proc (Linux)."""
    root = root or os.getpid()
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the process ended meanwhile
        parents[int(entry)] = int(fields[1])
        times[int(entry)] = sum(int(f) for f in fields[11:15]) / tick  # utime stime cutime cstime
    total = 0.0
    for pid, cpu in times.items():
        p = pid
        while p and p != root:
            p = parents.get(p, 0)
        if p == root:
            total += cpu
    return total


def run(items: int, cores: int, files: int, work: Path) -> dict[str, Any]:
    """Write the two exports, warm up, compare, and return the figures."""
    t0 = time.monotonic()
    source = write_export(work / "source", _source(items), files=files)
    target = write_export(work / "target", _target(items), files=files)
    written = time.monotonic() - t0
    t0 = time.monotonic()
    spark = local_session(cores=cores, shuffle_partitions=max(8, 4 * cores), app="cdk-replication-bench")
    small = [write_export(work / f"warm{s}", _source(1000), files=2) for s in "st"]
    compare_exports(spark, resolve_export(str(small[0])), resolve_export(str(small[1])), ["pk", "sk"], "_rep_")
    warmup = time.monotonic() - t0
    load = os.getloadavg()[0]
    t0, cpu0 = time.monotonic(), tree_cpu_seconds()
    doc = compare_exports(spark, resolve_export(str(source)), resolve_export(str(target)), ["pk", "sk"], "_rep_")
    seconds, cpu = time.monotonic() - t0, tree_cpu_seconds() - cpu0
    spark.stop()
    read = doc["sourceItems"] + doc["targetItems"]
    assert len(doc["different"]) == len(range(7, items, 1000)) and len(doc["missing"]) == len(range(3, items, 10000))
    return {"items_per_table": items, "items_read": read, "cores": cores, "files_per_export": files,
            "write_seconds": round(written, 1), "startup_and_warmup_seconds": round(warmup, 1),
            "compare_seconds": round(seconds, 1), "items_per_second": round(read / seconds),
            "items_per_second_per_core": round(read / seconds / cores), "load_average_before": round(load, 2),
            # Wall-clock rates fall when other processes share the cores; CPU time does not (much).
            "cpu_seconds": round(cpu, 1), "items_per_cpu_second": round(read / cpu),
            "bytes_per_item_gzip": round(sum(Path(f).stat().st_size for f in resolve_export(str(source)).data_files)
                                         / items, 1),
            "differences": {"different": len(doc["different"]), "missing": len(doc["missing"])}}


def projection(per_core: float, table_items: int, workers: int) -> dict[str, Any]:
    """Projected Glue time for a table of ``table_items`` items (both exports read) on ``workers`` G.1X."""
    task_cores = GLUE_G1X_VCPU * (workers - 1)
    seconds = 2 * table_items / (per_core * task_cores)
    return {"table_items": table_items, "workers": workers, "task_cores": task_cores,
            "seconds": round(seconds), "hours": round(seconds / 3600, 2),
            "arithmetic": f"2 x {table_items:,} items / ({per_core:,.0f} items/s/core x {GLUE_G1X_VCPU} x "
                          f"({workers} - 1) cores) = {seconds:,.0f} s"}


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; prints the figures and the projections (module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.spark_verify")
    parser.add_argument("--items", type=int, default=1_000_000, help="items per table (default 1,000,000)")
    parser.add_argument("--cores", type=int, default=2, help="local Spark cores (default 2)")
    parser.add_argument("--files", type=int, default=8, help="data files per export (default 8)")
    parser.add_argument("--workers", default="10,40,100", help="Glue G.1X worker counts to project (default 10,40,100)")
    parser.add_argument("--output", type=Path, help="also write the figures as JSON here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="cdk-replication-spark-bench-") as work:
        figures = run(args.items, args.cores, args.files, Path(work))
    # Projected from the CPU-time rate: on Glue each task core is the job's alone.
    figures["projections"] = [projection(figures["items_per_cpu_second"], 1_000_000_000, int(w))
                              for w in args.workers.split(",")]
    print(json.dumps(figures, indent=2))
    if args.output:
        args.output.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
