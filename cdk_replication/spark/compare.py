"""The Spark comparison of two exports: digests per line, a full outer join on the key, one aggregation.

Work per item is one Python call (:func:`cdk_replication.spark.lines.parse_line`: JSON decode and a 16-byte
BLAKE2b digest of verify's canonical encoding); the join, the counts and the collection of the differing keys
run in the JVM on (key, digest) pairs only, so the shuffle moves about 60 bytes per item, never whole items.
The differing attributes are then named from the two exports' lines of the differing keys only (a second,
filtered read). Differing keys are gathered by that aggregation and collected on the driver, as ``verify --json``
lists them all; above :data:`MAX_LISTED` the job stops, before any work when the manifests' item counts
already differ by more (an empty or unrelated target).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import BinaryType, BooleanType, StringType, StructField, StructType

from cdk_replication.spark.layout import ExportFiles
from cdk_replication.spark.lines import differing_attributes, key_json, parse_line

#: Differing keys the job lists at most; above it the job stops with the counts (the tables are not copies
#: of each other: a listing would not fit the driver, and the repair is a backfill's work).
MAX_LISTED = 5_000_000

_DIGESTS = StructType([
    StructField("key", StringType(), False),
    StructField("digest", BinaryType(), True),
    StructField("tomb", BooleanType(), False),
])


class TooManyDifferences(RuntimeError):
    """More than :data:`MAX_LISTED` differing keys."""


def _parse_partition(lines: Iterable[str], key_names: Sequence[str], prefix: str) -> Iterator[tuple[Any, ...]]:
    for line in lines:
        parsed = parse_line(line, key_names, prefix)
        if parsed is not None:
            yield parsed


def digests(spark: SparkSession, export: ExportFiles, key_names: Sequence[str], prefix: str) -> DataFrame:
    """One row per export line: ``key`` (JSON), ``digest`` (16 bytes; null for a tombstone), ``tomb``."""
    names, meta = list(key_names), prefix
    # textFile reads the gzip files (by their .gz name) and splits them across tasks, one file per task.
    lines = spark.sparkContext.textFile(",".join(export.data_files))
    # verifySchema off: the rows are built by _parse_partition to the schema; checking each costs time per item.
    return spark.createDataFrame(lines.mapPartitions(lambda part: _parse_partition(part, names, meta)), _DIGESTS,
                                 verifySchema=False)


def _classified(source: DataFrame, target: DataFrame) -> DataFrame:
    s, t = source.alias("s"), target.alias("t")
    joined = s.join(t, F.col("s.key") == F.col("t.key"), "full_outer")
    s_item = F.col("s.key").isNotNull() & ~F.col("s.tomb")
    t_item = F.col("t.key").isNotNull() & ~F.col("t.tomb")
    status = (
        F.when(s_item & t_item & (F.col("s.digest") == F.col("t.digest")), "same")
        .when(s_item & t_item, "different")
        .when(s_item, "missing")
        .when(t_item, "extra")
        .otherwise("absent")  # tombstone against tombstone or nothing: no item on either side
    )
    return joined.select(
        F.coalesce(F.col("s.key"), F.col("t.key")).alias("key"),
        status.alias("status"),
        s_item.alias("s_item"), t_item.alias("t_item"),
        F.coalesce(F.col("s.tomb"), F.lit(False)).alias("s_tomb"),
        F.coalesce(F.col("t.tomb"), F.lit(False)).alias("t_tomb"),
    )


def _summarise(classified: DataFrame) -> dict[str, Any]:
    """Counts and the differing (key, status) pairs, in ONE pass over the join."""

    def count(condition: Any) -> Any:
        return F.sum(F.when(condition, 1).otherwise(0))

    differs = F.col("status").isin("missing", "extra", "different")
    row = classified.agg(
        count(F.col("s_item")).alias("sourceItems"),
        count(F.col("t_item")).alias("targetItems"),
        count(F.col("status") == "same").alias("matching"),
        count(F.col("s_tomb")).alias("sourceTombstones"),
        count(F.col("t_tomb")).alias("targetTombstones"),
        count(differs).alias("differences"),
        # collect_list skips nulls: only the differing keys are gathered.
        F.collect_list(F.when(differs, F.struct("key", "status"))).alias("keys"),
    ).collect()[0]
    return row.asDict(recursive=True)


def _attributes(spark: SparkSession, exports: tuple[ExportFiles, ExportFiles], keys: list[str],
                key_names: Sequence[str], prefix: str) -> dict[str, list[str]]:
    """The differing attribute names of ``keys`` (all "different"), from both exports' lines of those keys."""
    wanted = spark.sparkContext.broadcast(frozenset(keys))
    names = list(key_names)

    def lines_of(export: ExportFiles) -> dict[str, str]:
        def keep(line: str) -> bool:
            return bool(line.strip()) and key_json(json.loads(line)["Item"], names) in wanted.value

        rdd = spark.sparkContext.textFile(",".join(export.data_files)).filter(keep)
        return {key_json(json.loads(line)["Item"], names): line for line in rdd.collect()}

    source_lines, target_lines = lines_of(exports[0]), lines_of(exports[1])
    return {k: differing_attributes(source_lines[k], target_lines[k], prefix) for k in keys}


def compare_exports(spark: SparkSession, source: ExportFiles, target: ExportFiles, key_names: Sequence[str],
                    metadata_prefix: str) -> dict[str, Any]:
    """Compare two exports; returns ``verify --json``'s document before any re-read against live tables
    (``reread`` false, ``settledOnReread`` 0). Keys are listed sorted by their JSON text.

    Raises:
        TooManyDifferences: more than :data:`MAX_LISTED` differing keys.
    """
    started = time.monotonic()
    gap = abs(source.item_count - target.item_count)
    if gap > MAX_LISTED:
        # Known from the manifests before any work: at least this many keys would be listed, and the one
        # aggregation that gathers them would not fit one executor.
        raise TooManyDifferences(
            f"the exports hold {source.item_count:,} and {target.item_count:,} items (tombstones included): at least "
            f"{gap:,} differing keys, more than {MAX_LISTED:,}; the tables are not copies of each other"
        )
    summary = _summarise(_classified(digests(spark, source, key_names, metadata_prefix),
                                     digests(spark, target, key_names, metadata_prefix)))
    if summary["differences"] > MAX_LISTED:
        raise TooManyDifferences(
            f"{summary['differences']:,} differing keys (more than {MAX_LISTED:,}): the tables are not copies of "
            f"each other (source {summary['sourceItems']:,} items, target {summary['targetItems']:,})"
        )
    by_status: dict[str, list[str]] = {"missing": [], "extra": [], "different": []}
    for entry in summary["keys"]:
        by_status[entry["status"]].append(entry["key"])
    for keys in by_status.values():
        keys.sort()
    attributes = _attributes(spark, (source, target), by_status["different"], key_names, metadata_prefix) \
        if by_status["different"] else {}
    differences = sum(len(v) for v in by_status.values())
    return {
        "command": "verify",
        "inSync": differences == 0,
        **{name: summary[name] for name in ("sourceItems", "targetItems", "matching", "sourceTombstones",
                                            "targetTombstones")},
        "settledOnReread": 0,
        # Exports are compared as they are: a transformed replica is refused before the job starts.
        "filteredOut": 0,
        "reread": False,
        **{name: [json.loads(k) for k in keys] for name, keys in by_status.items()},
        "differentAttributes": [attributes[k] for k in by_status["different"]],
        "seconds": round(time.monotonic() - started, 3),
    }
