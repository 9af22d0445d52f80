"""The files of a native DynamoDB export (``ExportTableToPointInTime``, format ``DYNAMODB_JSON``), as AWS writes them.

One export is the folder ``<prefix>/AWSDynamoDB/<export id>/`` holding::

    manifest-summary.json      one JSON object: exportArn, tableArn, exportTime, itemCount, outputFormat,
                               manifestFilesS3Key, ...
    manifest-summary.checksum  the MD5 of manifest-summary.json, hex
    manifest-files.json        one JSON object per line: {"itemCount", "md5Checksum", "etag", "dataFileS3Key"}
    manifest-files.checksum
    _started                   empty
    data/<random>.json.gz      gzip text, one item per line: {"Item": {"pk": {"S": "a"}, ...}}

Keys in the manifests are object keys in the bucket (they start with the prefix); the data files are always in
the export folder's ``data/``. Binary values are base64 text, numbers are strings with all their digits.

A location is a local folder or an ``s3://bucket/key`` URI, naming the export folder, its
``manifest-summary.json``, or a prefix holding exactly one export below ``AWSDynamoDB/``.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import posixpath
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

SUMMARY = "manifest-summary.json"
FILES = "manifest-files.json"
#: The ``version`` AWS writes in manifest-summary.json.
MANIFEST_VERSION = "2020-06-30"
#: Differing keys the job lists at most; above it the job stops with the counts (the tables are not copies
#: of each other: a listing would not fit the driver, and the repair is a backfill's work). Here, not in
#: compare.py, because the CLI re-reads up to this many differences and must not need pyspark to know it.
MAX_LISTED = 5_000_000


class ExportLayoutError(ValueError):
    """A location that does not hold one complete DynamoDB JSON export."""


@dataclass(frozen=True)
class ExportFiles:
    """One export, resolved: where it is and what its manifests say.

    Attributes:
        folder: the export folder (local path or ``s3://`` URI), without a trailing slash.
        data_files: the data files the manifest lists, as full paths/URIs, in manifest order.
        item_count: ``itemCount`` of manifest-summary.json (items in the export, tombstones included).
        summary: the whole manifest-summary.json.
    """

    folder: str
    data_files: tuple[str, ...]
    item_count: int
    summary: Mapping[str, Any]


def _is_s3(location: str) -> bool:
    return location.startswith("s3://")


def _split_s3(uri: str) -> tuple[str, str]:
    bucket, _, key = uri[len("s3://"):].partition("/")
    return bucket, key


def _read_text(location: str, s3: Any = None) -> str:
    if _is_s3(location):
        bucket, key = _split_s3(location)
        client = s3 or _s3_client()
        return client.get_object(Bucket=bucket, Key=key)["Body"].read().decode("utf-8")
    return Path(location).read_text(encoding="utf-8")


def _s3_client() -> Any:
    import boto3  # only for s3:// locations; Glue and the CLI both have it

    return boto3.client("s3")


def _find_summary(location: str, s3: Any = None) -> str:
    """The manifest-summary.json that ``location`` names (module docstring)."""
    location = location.rstrip("/")
    if location.endswith(SUMMARY):
        return location
    if _is_s3(location):
        bucket, key = _split_s3(location)
        client = s3 or _s3_client()
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{key}/" if key else "")
        found = [o["Key"] for page in pages for o in page.get("Contents", []) if o["Key"].endswith("/" + SUMMARY)]
        found = [f"s3://{bucket}/{k}" for k in found]
    else:
        root = Path(location)
        found = [str(p) for p in sorted(root.rglob(SUMMARY))] if root.is_dir() else []
    if len(found) != 1:
        what = "no" if not found else f"{len(found)}"
        raise ExportLayoutError(
            f"{location} holds {what} {SUMMARY}: name one export folder (<prefix>/AWSDynamoDB/<export id>) "
            "or its manifest-summary.json"
        )
    return found[0]


def resolve_export(location: str, s3: Any = None) -> ExportFiles:
    """Read the manifests of the export at ``location`` (local folder or ``s3://`` URI).

    Raises:
        ExportLayoutError: no single export there, a format other than DYNAMODB_JSON, an incremental
            export, or manifests that disagree on the item count (an incomplete export).
    """
    summary_path = _find_summary(location, s3)
    summary = json.loads(_read_text(summary_path, s3))
    fmt = summary.get("outputFormat", "DYNAMODB_JSON")
    if fmt != "DYNAMODB_JSON":
        raise ExportLayoutError(f"{summary_path}: outputFormat {fmt}; only DYNAMODB_JSON exports can be compared")
    kind = summary.get("exportType", "FULL_EXPORT")
    if kind != "FULL_EXPORT":
        # An incremental export's lines are changes ({"Metadata", "Keys", "NewImage", "OldImage"}), not items.
        raise ExportLayoutError(f"{summary_path}: exportType {kind}, whose lines are changes, not items; only a "
                                "full export (ExportTableToPointInTime without --export-type) can be compared")
    folder = posixpath.dirname(summary_path) if _is_s3(summary_path) else os.path.dirname(summary_path)
    join = posixpath.join if _is_s3(folder) else os.path.join
    entries = [json.loads(line) for line in _read_text(join(folder, FILES), s3).splitlines() if line.strip()]
    listed = sum(int(e.get("itemCount", 0)) for e in entries)
    total = int(summary.get("itemCount", listed))
    if listed != total:
        raise ExportLayoutError(f"{folder}: {FILES} lists {listed:,} items, {SUMMARY} says {total:,}")
    data = tuple(join(folder, "data", posixpath.basename(e["dataFileS3Key"])) for e in entries)
    return ExportFiles(folder=folder, data_files=data, item_count=total, summary=summary)


def check_table(export: ExportFiles, side: str, table_arn: str | None, table_id: str | None = None) -> None:
    """Refuse ``export`` unless its manifest names the table ``side`` stands for: ``tableArn`` equal to
    ``table_arn`` and, when both are known, ``tableId`` equal to ``table_id`` (a table deleted and recreated
    under the same name keeps its ARN and gets a new id). ``None`` skips that check.

    Raises:
        ExportLayoutError: naming the table the export is of and the one expected.
    """
    arn, found_id = export.summary.get("tableArn"), export.summary.get("tableId")
    if table_arn is not None and arn != table_arn:
        raise ExportLayoutError(f"{export.folder} is an export of {arn}, not of the {side} table {table_arn}: "
                                f"give an export of {table_arn}")
    if table_id is not None and found_id is not None and found_id != table_id:
        raise ExportLayoutError(f"{export.folder} is an export of an earlier table named as the {side} table "
                                f"{table_arn or arn} (tableId {found_id}, the table's is {table_id}): export it again")


def unreadable_data_file(export: ExportFiles, s3: Any = None) -> tuple[str, str] | None:
    """``(file name, reason)`` of the first data file of ``export`` that is not complete gzip text, else
    ``None``. Reads every file through (streamed): for diagnosing a failed comparison, not before one."""
    for location in export.data_files:
        try:
            if _is_s3(location):
                bucket, key = _split_s3(location)
                body = (s3 or _s3_client()).get_object(Bucket=bucket, Key=key)["Body"]
                stream = gzip.GzipFile(fileobj=body)
            else:
                stream = gzip.open(location, "rb")
            with stream:
                while stream.read(1 << 20):
                    pass
        except (OSError, EOFError, gzip.BadGzipFile) as exc:
            return posixpath.basename(location), f"{type(exc).__name__}: {exc}".splitlines()[0]
    return None


def write_export(
    root: Path,
    items: Iterable[Mapping[str, Any]],
    *,
    table_arn: str = "arn:aws:dynamodb:us-east-1:111111111111:table/exported",
    prefix: str = "exports",
    files: int = 4,
    table_id: str | None = None,
) -> Path:
    """Write ``items`` (DynamoDB JSON: binary already base64 text) as AWS lays out an export under ``root``
    (the bucket's place); returns the export folder. For tests and benchmarks.

    Args:
        root: stands for the bucket: object key ``K`` is the file ``root/K``.
        table_arn: the ``tableArn`` written in the summary.
        prefix: the export's S3 prefix, default ``exports``.
        files: data files, default 4 (AWS writes at least one per partition; items are dealt round robin,
            and a file may stay empty, as an empty partition's does).
        table_id: the ``tableId`` written in the summary; default a random one.
    """
    export_id = f"{int(datetime.now(timezone.utc).timestamp() * 1000):014d}-{uuid.uuid4().hex[:8]}"
    base = f"{prefix}/AWSDynamoDB/{export_id}"
    folder = root / base
    (folder / "data").mkdir(parents=True)
    names = [f"{uuid.uuid4().hex}.json.gz" for _ in range(files)]
    writers = [gzip.open(folder / "data" / n, "wt", encoding="utf-8") for n in names]
    counts = [0] * files
    try:
        for i, item in enumerate(items):
            writers[i % files].write(json.dumps({"Item": item}, separators=(",", ":")) + "\n")
            counts[i % files] += 1
    finally:
        for w in writers:
            w.close()
    _write_manifests(folder, base, names, counts, table_arn, table_id or str(uuid.uuid4()))
    return folder


def _write_manifests(folder: Path, base: str, names: list[str], counts: list[int], table_arn: str,
                     table_id: str) -> None:
    lines = []
    for name, count in zip(names, counts):
        body = (folder / "data" / name).read_bytes()
        md5 = hashlib.md5(body).hexdigest()  # noqa: S324 - the manifest's own checksum, not security
        lines.append(json.dumps({"itemCount": count, "md5Checksum": md5, "etag": md5,
                                 "dataFileS3Key": f"{base}/data/{name}"}))
    files_text = "\n".join(lines) + "\n"
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    summary = {
        "version": MANIFEST_VERSION, "exportArn": f"{table_arn}/export/{base.rsplit('/', 1)[1]}",
        "startTime": now, "endTime": now, "tableArn": table_arn, "tableId": table_id,
        "exportTime": now, "s3Bucket": "local", "s3Prefix": base.split("/AWSDynamoDB/")[0],
        "s3SseAlgorithm": "AES256", "s3SseKmsKeyId": None, "manifestFilesS3Key": f"{base}/{FILES}",
        "billedSizeBytes": sum((folder / "data" / n).stat().st_size for n in names),
        "itemCount": sum(counts), "outputFormat": "DYNAMODB_JSON",
    }
    summary_text = json.dumps(summary)
    (folder / FILES).write_text(files_text)
    (folder / SUMMARY).write_text(summary_text)
    for name, text in ((FILES, files_text), (SUMMARY, summary_text)):
        checksum = hashlib.md5(text.encode()).hexdigest()  # noqa: S324 - as AWS writes it
        (folder / name.replace(".json", ".checksum")).write_text(checksum)
    (folder / "_started").write_text("")
