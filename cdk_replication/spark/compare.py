"""The Spark comparison of two exports: digests per line, a full outer join on the key, one aggregation.

Work per item is one Python call (:func:`cdk_replication.spark.lines.parse_line`: JSON decode and a 16-byte
BLAKE2b digest of verify's canonical encoding); the join, the counts and the collection of the differing keys
run in the JVM on (key, digest) pairs only, so the shuffle moves about 60-100 bytes per item, never whole
items. Keys join by value (a number key by its exact value). The same aggregation counts each export's lines
and the keys it holds more than once: an export whose data files hold fewer or more lines than its manifests
say, or that repeats a key (another key schema), is refused, never compared. The differing attributes are
then named from the two exports' lines of the differing keys only (a second, filtered read). Differing keys
are gathered by that aggregation and collected on the driver, as ``verify --json`` lists them all; above
:data:`MAX_LISTED` the job stops with the counts.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import BinaryType, BooleanType, StringType, StructField, StructType

from cdk_replication.spark.layout import MAX_LISTED, ExportFiles, unreadable_data_file
from cdk_replication.spark.lines import differing_attributes, key_json, parse_line

_DIGESTS = StructType([
    StructField("key", StringType(), False),   # the join key: numbers by value (lines.key_json canonical)
    StructField("text", StringType(), False),  # the key as the export spells it, as the report lists it
    StructField("digest", BinaryType(), True),
    StructField("tomb", BooleanType(), False),
])


class TooManyDifferences(RuntimeError):
    """More than :data:`MAX_LISTED` differing keys."""


class ExportDataError(ValueError):
    """An export whose data files do not hold what its manifests say: unreadable, short, or repeating a key.
    The message names the export and (when known) the data file, never item data."""


def _parse_partition(lines: Iterable[str], key_names: Sequence[str], prefix: str) -> Iterator[tuple[Any, ...]]:
    for line in lines:
        parsed = parse_line(line, key_names, prefix)
        if parsed is not None:
            yield parsed


def digests(spark: SparkSession, export: ExportFiles, key_names: Sequence[str], prefix: str) -> DataFrame:
    """One row per export line: ``key`` (join key JSON), ``text`` (key as exported), ``digest`` (16 bytes;
    null for a tombstone), ``tomb``."""
    names, meta = list(key_names), prefix
    # textFile reads the gzip files (by their .gz name) and splits them across tasks, one file per task.
    lines = spark.sparkContext.textFile(",".join(export.data_files))
    # verifySchema off: the rows are built by _parse_partition to the schema; checking each costs time per item.
    return spark.createDataFrame(lines.mapPartitions(lambda part: _parse_partition(part, names, meta)), _DIGESTS,
                                 verifySchema=False)


def _per_key(lines: DataFrame) -> DataFrame:
    """One row per key with ``n``, the lines holding it: AWS writes a key once, so ``n`` > 1 means the export
    is of a table with another key schema. Grouped on the join key, so the join reuses this shuffle."""
    return lines.groupBy("key").agg(F.count(F.lit(1)).alias("n"), F.first("text").alias("text"),
                                     F.first("digest").alias("digest"), F.first("tomb").alias("tomb"))


def _classified(source: DataFrame, target: DataFrame) -> DataFrame:
    s, t = _per_key(source).alias("s"), _per_key(target).alias("t")
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
        F.coalesce(F.col("s.text"), F.col("t.text")).alias("text"),
        status.alias("status"),
        s_item.alias("s_item"), t_item.alias("t_item"),
        F.coalesce(F.col("s.tomb"), F.lit(False)).alias("s_tomb"),
        F.coalesce(F.col("t.tomb"), F.lit(False)).alias("t_tomb"),
        F.coalesce(F.col("s.n"), F.lit(0)).alias("s_n"),
        F.coalesce(F.col("t.n"), F.lit(0)).alias("t_n"),
    )


def _summarise(classified: DataFrame) -> dict[str, Any]:
    """Counts, lines per export, repeated keys and the differing (key, status) pairs, in ONE pass over the join."""

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
        F.sum("s_n").alias("sourceLines"), F.sum("t_n").alias("targetLines"),
        count(F.col("s_n") > 1).alias("sourceRepeated"), count(F.col("t_n") > 1).alias("targetRepeated"),
        # collect_list skips nulls: only the differing keys are gathered.
        F.collect_list(F.when(differs, F.struct("key", "text", "status"))).alias("keys"),
    ).collect()[0]
    return row.asDict(recursive=True)


def _check_lines(summary: dict[str, Any], exports: tuple[ExportFiles, ExportFiles], key_names: Sequence[str]) -> None:
    """Refuse an export whose data files hold another number of lines than its manifests' ``itemCount`` (a
    partial copy, an overwritten object) or a key more than once (another key schema: a table recreated
    under the same name)."""
    for side, export in zip(("source", "target"), exports):
        lines, repeated = summary[f"{side}Lines"] or 0, summary[f"{side}Repeated"] or 0
        if lines != export.item_count:
            raise ExportDataError(
                f"the {side} export {export.folder}: its data files hold {lines:,} items (tombstones included), "
                f"its manifests say {export.item_count:,}: an incomplete or altered export; export the table again"
            )
        if repeated:
            raise ExportDataError(
                f"the {side} export {export.folder} holds {repeated:,} keys more than once under the key "
                f"({', '.join(key_names)}): it is of a table with another key schema (compare its tableId)"
            )

def _attributes(spark: SparkSession, exports: tuple[ExportFiles, ExportFiles], keys: list[str],
                key_names: Sequence[str], prefix: str) -> dict[str, list[str]]:
    """The differing attribute names of ``keys`` (join keys, all "different"), from both exports' lines of
    those keys."""
    wanted = spark.sparkContext.broadcast(frozenset(keys))
    names = list(key_names)

    def join_key(line: str) -> str:
        return key_json(json.loads(line)["Item"], names, canonical=True)

    def lines_of(export: ExportFiles) -> dict[str, str]:
        rdd = spark.sparkContext.textFile(",".join(export.data_files)).filter(
            lambda line: bool(line.strip()) and join_key(line) in wanted.value)
        return {join_key(line): line for line in rdd.collect()}

    source_lines, target_lines = lines_of(exports[0]), lines_of(exports[1])
    return {k: differing_attributes(source_lines[k], target_lines[k], prefix) for k in keys}


def _one_line(exc: BaseException, exports: tuple[ExportFiles, ExportFiles]) -> ExportDataError | None:
    """What a failed Spark action means, in one line naming the export and the data file, or ``None`` when
    it is not the exports' fault. Looked for only after a failure: a damaged gzip file fails in the JVM's
    reader, whose error names no file, so each data file is read through once, here, to find it."""
    text = str(exc)
    # Only a reading failure is worth reading every file through for (on Glue: all of both exports from S3).
    reading = any(sign in text for sign in ("EOFException", "ZipException", "Not in GZIP format", "IOException"))
    for side, export in zip(("source", "target"), exports) if reading else ():
        damaged = unreadable_data_file(export)
        if damaged:
            name, reason = damaged
            return ExportDataError(f"the {side} export {export.folder}: data file {name} is unreadable ({reason}); "
                                   "export the table again or copy the file anew")
    marker = "BadExportLine: "
    if marker in text:  # raised in a Python worker: Spark wraps it in the worker's traceback
        return ExportDataError(f"an export holds {text[text.rindex(marker) + len(marker):].splitlines()[0]}")
    return None


def compare_exports(spark: SparkSession, source: ExportFiles, target: ExportFiles, key_names: Sequence[str],
                    metadata_prefix: str) -> dict[str, Any]:
    """Compare two exports; returns ``verify --json``'s document before any re-read against live tables
    (``reread`` false, ``settledOnReread`` 0). Keys are listed as the exports spell them, sorted by that text.

    Raises:
        ExportDataError: an export's data files are unreadable, hold another number of items than its
            manifests say, hold a malformed line, or repeat a key.
        TooManyDifferences: more than :data:`MAX_LISTED` differing keys.
    """
    started = time.monotonic()
    # No check of the manifests' itemCount gap here: it counts tombstones, which stand for "no item" (a
    # Kinesis-fed replica keeps one per delete), so it cannot tell copies from strangers.
    try:
        summary = _summarise(_classified(digests(spark, source, key_names, metadata_prefix),
                                         digests(spark, target, key_names, metadata_prefix)))
    except Exception as exc:
        explained = _one_line(exc, (source, target))
        if explained is None:
            raise
        raise explained from None
    _check_lines(summary, (source, target), key_names)
    if summary["differences"] > MAX_LISTED:
        raise TooManyDifferences(
            f"{summary['differences']:,} differing keys (more than {MAX_LISTED:,}): the tables are not copies of "
            f"each other (source {summary['sourceItems']:,} items, target {summary['targetItems']:,})"
        )
    by_status: dict[str, list[tuple[str, str]]] = {"missing": [], "extra": [], "different": []}
    for entry in summary["keys"]:
        by_status[entry["status"]].append((entry["text"], entry["key"]))
    for keys in by_status.values():
        keys.sort()
    different = [join for _, join in by_status["different"]]
    attributes = _attributes(spark, (source, target), different, key_names, metadata_prefix) if different else {}
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
        **{name: [json.loads(text) for text, _ in keys] for name, keys in by_status.items()},
        "differentAttributes": [attributes[k] for k in different],
        "seconds": round(time.monotonic() - started, 3),
    }
