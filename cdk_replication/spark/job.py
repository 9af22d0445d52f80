"""The Spark job: compare two DynamoDB exports and write ``verify --json``'s document as ``report.json``.

Runs unchanged as an AWS Glue 5.0 script (Spark 3.5.4, Python 3.11; Glue adds its own ``--JOB_NAME`` style
arguments, which are ignored) and locally (``python -m cdk_replication.spark.job ...`` or
:func:`run_job` with a local session)::

    --source-export LOCATION   the source table's export (folder, manifest-summary.json, or a prefix holding one)
    --target-export LOCATION   the target table's export
    --key NAMES                the key attribute names, partition key first, comma-separated: pk or pk,sk
    --output LOCATION          folder or s3:// prefix; the report is LOCATION/report.json
    --metadata-prefix PREFIX   attributes starting with it are ignored (required unless --no-metadata-prefix true)
    --no-metadata-prefix true  ignore no attribute (Glue job arguments cannot be empty strings); overrides
                               --metadata-prefix; default false
    --source-table-arn ARN     refuse a source export whose manifest names another table (default: unchecked)
    --target-table-arn ARN     the same for the target export
    --source-table-id ID       refuse a source export of another table of that ARN (its manifest's tableId)
    --target-table-id ID       the same for the target export

Locations are local paths or ``s3://`` URIs (on Glue, S3 is read through Spark's S3 file system).
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence
from typing import Any

from cdk_replication.spark.layout import check_table, resolve_export

#: Name of the result document in the output location.
REPORT_NAME = "report.json"
#: ``--no-metadata-prefix`` value meaning "ignore no attribute": a flag of its own, so that no real prefix
#: (any string is one) can be mistaken for it.
NO_PREFIX_FLAG = "--no-metadata-prefix"


def _true_or_false(text: str) -> bool:
    if text.lower() not in ("true", "false"):
        raise argparse.ArgumentTypeError(f"true or false, not {text!r}")
    return text.lower() == "true"


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """The job's arguments (module docstring); unknown ones (Glue's own) are ignored."""
    parser = argparse.ArgumentParser(prog="cdk-replication-verify-exports")
    parser.add_argument("--source-export", required=True)
    parser.add_argument("--target-export", required=True)
    parser.add_argument("--key", required=True, help="key attribute names, partition key first: pk or pk,sk")
    parser.add_argument("--output", required=True)
    # No default: the job ships without the replicator's contract, and its callers (the CLI, ExportVerifyJob)
    # always say which prefix the tables use, so a second copy of the default could only drift.
    parser.add_argument("--metadata-prefix", default=None)
    parser.add_argument(NO_PREFIX_FLAG, type=_true_or_false, default=False, dest="no_metadata_prefix")
    for side in ("source", "target"):
        parser.add_argument(f"--{side}-table-arn", default=None)
        parser.add_argument(f"--{side}-table-id", default=None)
    args, _glue_arguments = parser.parse_known_args(list(argv))
    return args


def write_report(doc: dict[str, Any], output: str, s3: Any = None) -> str:
    """Write ``doc`` to ``output``/report.json (local folder or ``s3://`` prefix); returns where it is."""
    body = json.dumps(doc, indent=2, sort_keys=False) + "\n"
    if output.startswith("s3://"):
        bucket, _, prefix = output[len("s3://"):].partition("/")
        key = f"{prefix.rstrip('/')}/{REPORT_NAME}" if prefix.strip("/") else REPORT_NAME
        if s3 is None:
            import boto3

            s3 = boto3.client("s3")
        s3.put_object(Bucket=bucket, Key=key, Body=body.encode("utf-8"), ContentType="application/json")
        return f"s3://{bucket}/{key}"
    os.makedirs(output, exist_ok=True)
    path = os.path.join(output, REPORT_NAME)
    with open(path, "w", encoding="utf-8") as f:
        f.write(body)
    return path


def run_job(spark: Any, args: argparse.Namespace, s3: Any = None) -> tuple[dict[str, Any], str]:
    """Compare the two exports ``args`` names on ``spark``; returns (the document, where it was written).

    Args:
        s3: the S3 client that writes an ``s3://`` report; default boto3's (the Glue job's role).

    Raises:
        ExportLayoutError: an export that is not one, or (``--source-table-arn`` etc. given) not of the table
            expected, found before Spark reads a line.
    """
    from cdk_replication.spark.compare import compare_exports

    if args.metadata_prefix is None and not args.no_metadata_prefix:
        raise SystemExit("give --metadata-prefix PREFIX (the replicator's, e.g. _rep_) or --no-metadata-prefix true")
    prefix = "" if args.no_metadata_prefix else args.metadata_prefix
    key_names = [n for n in args.key.split(",") if n]
    if not 1 <= len(key_names) <= 2:
        raise SystemExit(f"--key names one or two attributes (partition key first), got {args.key!r}")
    source, target = resolve_export(args.source_export), resolve_export(args.target_export)
    for side, export in (("source", source), ("target", target)):
        arn, table_id = getattr(args, f"{side}_table_arn"), getattr(args, f"{side}_table_id")
        if arn is not None or table_id is not None:
            check_table(export, side, arn, table_id)
    doc = compare_exports(spark, source, target, key_names, prefix)
    return doc, write_report(doc, args.output, **({"s3": s3} if s3 is not None else {}))


def main(argv: Sequence[str]) -> int:
    """Entry point of the Glue script and of ``python -m cdk_replication.spark.job``."""
    from pyspark.sql import SparkSession

    args = parse_args(argv)
    spark = SparkSession.builder.appName("cdk-replication-verify-exports").getOrCreate()
    doc, where = run_job(spark, args)
    differences = len(doc["missing"]) + len(doc["extra"]) + len(doc["different"])
    print(f"compared {doc['sourceItems']:,} source and {doc['targetItems']:,} target items: "
          f"{differences:,} differences; report: {where}")
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
