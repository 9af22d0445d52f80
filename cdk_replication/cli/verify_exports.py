"""``verify SOURCE TARGET --from-exports SRC_EXPORT TGT_EXPORT``: compare native exports on Spark, then settle
and repair the differences against the live tables.

1. The Spark job (cdk_replication/spark/job.py) compares the two exports and writes ``report.json`` (the
   ``verify --json`` document of the exports) to ``--report``: locally with pyspark (extra ``spark``), or on
   AWS Glue with ``--glue-job NAME`` (the job :class:`cdk_replication.ExportVerifyJob` deploys).
   Each export's manifest must name the table it stands for (``tableArn``, and ``tableId`` where DescribeTable
   gives one): checked before Spark starts locally, and by the job itself on Glue.
2. Two exports are never taken at the same instant and replication is never at zero lag: every difference the
   job reports (it lists at most ``MAX_LISTED``) is re-read from both live tables with consistent reads, in
   rounds (``--recheck-rounds``, ``--recheck-pause``), and only those that persist are reported; the rest count
   as ``settledOnReread``.
3. ``--repair`` repairs the persisting ones under ``verify --repair``'s rules (they are few; one machine).

Locally, ``s3://`` exports are first copied to a temporary folder (fine for tests and small tables; a large
table's exports belong on Glue, next to the data).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TextIO

from cdk_replication.cli.arguments import positive_float, positive_int
from cdk_replication.cli.connections import connections
from cdk_replication.cli.errors import BadInput, WorkFailed
from cdk_replication.cli.items import from_json_item
from cdk_replication.cli.options import DEFAULT_RECHECK_PAUSE, DEFAULT_RECHECK_ROUNDS, VerifyOptions
from cdk_replication.cli.pacing import Retrier
from cdk_replication.cli.progress import Progress, format_duration
from cdk_replication.cli.repair import Repairer
from cdk_replication.cli.tables import Connection, TableHandle
from cdk_replication.cli.verify import VerifyResult, settle_and_repair
from cdk_replication.spark.layout import MAX_LISTED

#: Seconds between two polls of a Glue job run, when ``--poll-interval`` is not given.
DEFAULT_GLUE_POLL_S = 15.0
#: Folder below which a local run writes its report when ``--report`` is not given.
LOCAL_REPORT_ROOT = ".cdk-replication"
_GLUE_DONE = {"SUCCEEDED", "FAILED", "STOPPED", "TIMEOUT", "ERROR", "EXPIRED"}


def non_negative_float(text: str) -> float:
    """A finite number of at least 0 (``--recheck-pause 0`` re-reads at once)."""
    return 0.0 if text.strip() in ("0", "0.0") else positive_float(text)


def add_recheck_options(parser: argparse.ArgumentParser) -> None:
    """``--recheck-rounds``/``--recheck-pause`` (every verify) and the ``--from-exports`` group."""
    parser.add_argument(
        "--recheck-rounds", type=positive_int, default=DEFAULT_RECHECK_ROUNDS, metavar="N",
        help="rounds of consistent re-reads of each difference; reported only if every round sees it "
        f"(default {DEFAULT_RECHECK_ROUNDS})",
    )
    parser.add_argument(
        "--recheck-pause", type=non_negative_float, default=DEFAULT_RECHECK_PAUSE, metavar="SECONDS",
        help=f"pause between two re-read rounds (default {DEFAULT_RECHECK_PAUSE:g})",
    )
    exports = parser.add_argument_group("from exports (compare native exports on Spark, then the live tables)")
    exports.add_argument(
        "--from-exports", nargs=2, metavar=("SRC_EXPORT", "TGT_EXPORT"),
        help="compare these native exports (folders or s3:// URIs) on Spark instead of scanning the tables",
    )
    exports.add_argument(
        "--report", metavar="LOCATION",
        help=f"folder or s3:// prefix for the job's report.json (default locally: {LOCAL_REPORT_ROOT}/"
        "verify-exports-<UTC time>; required with --glue-job)",
    )
    exports.add_argument("--glue-job", metavar="NAME", help="run the comparison as this AWS Glue job "
                         "(ExportVerifyJob) instead of locally")
    exports.add_argument(
        "--poll-interval", type=positive_float, default=DEFAULT_GLUE_POLL_S, metavar="SECONDS",
        help=f"with --glue-job: seconds between status polls (default {DEFAULT_GLUE_POLL_S:g})",
    )


def check_export_args(args: argparse.Namespace) -> None:
    """Refuse inconsistent ``--from-exports`` options before anything is read; name the extra when pyspark
    is needed and missing."""
    if not args.from_exports:
        for option in ("report", "glue_job"):
            if getattr(args, option):
                raise BadInput(f"--{option.replace('_', '-')} only applies to --from-exports SRC_EXPORT TGT_EXPORT")
        return
    if args.glue_job:
        locations = [*args.from_exports, args.report or ""]
        if not all(loc.startswith("s3://") for loc in locations):
            raise BadInput("--glue-job reads the exports and writes --report in S3: give s3:// URIs for both "
                           "exports and --report (the job's role may read and write exactly those)")
        return
    from cdk_replication.spark.session import SparkMissing, require_pyspark

    try:
        require_pyspark()
    except SparkMissing as exc:
        raise BadInput(str(exc)) from None


def result_from_document(doc: dict[str, Any], key_schema: Any) -> VerifyResult:
    """The job's ``report.json`` as a :class:`VerifyResult`, before the re-read (``reread`` false)."""

    def ids(keys: list[dict[str, Any]]) -> list[Any]:
        return [key_schema.key_id(from_json_item(k)) for k in keys]

    different = ids(doc["different"])
    return VerifyResult(
        source_items=doc["sourceItems"], target_items=doc["targetItems"], matching=doc["matching"],
        source_tombstones=doc["sourceTombstones"], target_tombstones=doc["targetTombstones"],
        missing=ids(doc["missing"]), extra=ids(doc["extra"]), different=different, reread=False,
        different_attributes=dict(zip(different, doc["differentAttributes"])),
    )


def run_verify_from_exports(
    source: TableHandle, target: TableHandle, options: VerifyOptions, args: argparse.Namespace,
    progress_stream: TextIO, show_progress: bool,
) -> tuple[VerifyResult, str]:
    """Compare the exports (locally or on Glue), then settle and repair against the live tables.

    Returns:
        the result, and where the job's report.json is.
    """
    started = time.monotonic()
    phase = ["comparing exports"]
    status = [""]

    def render() -> str:
        return (f"verify {source.info.label()} vs {target.info.label()} from exports: {phase[0]}"
                f"{'; ' + status[0] if status[0] else ''} | {format_duration(time.monotonic() - started)}")

    job = _JobTables(",".join(source.info.key.names), options.metadata_prefix, (source.info.arn, target.info.arn),
                     (source.info.description.get("TableId"), target.info.description.get("TableId")))
    with Progress(render, progress_stream, enabled=show_progress):
        if args.glue_job:
            doc, where = _run_on_glue(args, job, status, progress_stream)
        else:
            doc, where = _run_locally(args, job, status)
        status[0] = ""
        found = result_from_document(doc, source.info.key)
        # Every difference the job lists is re-read: above verify's own MAX_REREAD too, since between two
        # exports of a busy table every key written in between differs.
        settle_and_repair(found, Repairer(source, target, options, Retrier(options.max_attempts)), options, phase,
                          limit=MAX_LISTED)
        phase[0] = "done"
    found.seconds = time.monotonic() - started
    return found, where


@dataclass(frozen=True)
class _JobTables:
    """What the job needs to know of the two tables: key names (``pk`` or ``pk,sk``), the metadata prefix,
    and each table's ARN and id (``None`` when DescribeTable gives none), which the exports must name."""

    key_names: str
    prefix: str
    arns: tuple[str | None, str | None] = (None, None)
    ids: tuple[str | None, str | None] = (None, None)


def _job_arguments(source: str, target: str, key_names: str, output: str, prefix: str,
                   tables: _JobTables | None = None) -> list[str]:
    """The job's arguments (cdk_replication/spark/job.py), as alternating names and values. Every argument
    whose default the construct may set is given, so the CLI's options are the ones that apply."""
    from cdk_replication.spark.job import NO_PREFIX_FLAG

    arguments = ["--source-export", source, "--target-export", target, "--key", key_names, "--output", output]
    # "No prefix" is a flag of its own: Glue arguments cannot be empty, and any string can be a real prefix.
    arguments += ["--metadata-prefix", prefix, NO_PREFIX_FLAG, "false"] if prefix else [NO_PREFIX_FLAG, "true"]
    for side, (arn, table_id) in zip(("source", "target"), zip(tables.arns, tables.ids) if tables else ()):
        arguments += [f"--{side}-table-arn", arn] if arn else []
        arguments += [f"--{side}-table-id", table_id] if table_id else []
    return arguments


def _check_tables(exports: list[str], tables: _JobTables, originals: list[str]) -> None:
    """Refuse (before Spark starts) an export whose manifest names another table than SOURCE / TARGET."""
    from cdk_replication.spark.layout import ExportLayoutError, check_table, resolve_export

    for side, export, arn, table_id, original in zip(("source", "target"), exports, tables.arns, tables.ids,
                                                     originals):
        try:
            check_table(resolve_export(export), side, arn, table_id)
        except ExportLayoutError as exc:
            raise BadInput(str(exc).replace(export, original)) from None


def _run_locally(args: argparse.Namespace, tables: _JobTables, status: list[str]) -> tuple[dict, str]:
    from cdk_replication.spark.job import parse_args, run_job
    from cdk_replication.spark.session import local_session

    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    output = args.report or str(Path(LOCAL_REPORT_ROOT) / f"verify-exports-{stamp}")
    conns = connections(args)
    with tempfile.TemporaryDirectory(prefix="cdk-replication-exports-") as scratch:
        status[0] = "reading the exports"
        exports = [_local_copy(loc, Path(scratch) / side, conn)
                   for loc, side, conn in zip(args.from_exports, ("s", "t"), conns)]
        _check_tables(exports, tables, args.from_exports)
        # The report goes where the CLI's own connection (--profile/--endpoint-url) reaches, as the exports came.
        s3 = conns[0].client("s3", None) if output.startswith("s3://") else None
        status[0] = "starting Spark"
        try:
            spark = local_session()
        except Exception as exc:  # most often no Java: PySpark's own error says "Java gateway process exited"
            raise BadInput(f"Spark did not start ({type(exc).__name__}: {str(exc)[:300]}): pyspark 3.5 needs Java 17 "
                           "(java on PATH or JAVA_HOME)") from exc
        tracker = spark.sparkContext.statusTracker()

        def tasks() -> str:
            stages = [tracker.getStageInfo(s) for s in tracker.getActiveStageIds()]
            done = sum(s.numCompletedTasks for s in stages if s)
            total = sum(s.numTasks for s in stages if s)
            return f"Spark tasks {done}/{total}" if total else "Spark running"

        status[0] = "Spark running"
        try:
            with _Ticker(status, tasks):
                return run_job(spark, parse_args(_job_arguments(*exports, tables.key_names, output, tables.prefix)),
                               s3=s3)
        except Exception as exc:
            raise WorkFailed(_one_line(exc, dict(zip(exports, args.from_exports)))) from exc


def _one_line(exc: BaseException, originals: dict[str, str]) -> str:
    """A failed comparison in one line, without Java's stack: the job's own errors as they are (they name the
    export and data file), anything else by its first line; scratch copies named by the user's locations."""
    from cdk_replication.spark.compare import ExportDataError, TooManyDifferences

    known = isinstance(exc, (ExportDataError, TooManyDifferences))
    text = str(exc) if known else f"the Spark comparison failed: {type(exc).__name__}: {str(exc).strip()}"
    text = (text.splitlines() or [""])[0][:500]
    for copy, original in originals.items():
        text = text.replace(copy, original)
    return text


class _Ticker:
    """Refreshes ``status[0]`` from ``describe()`` every second while the block runs (for the progress line)."""

    def __init__(self, status: list[str], describe: Any) -> None:
        import threading

        self._status, self._describe, self._stop = status, describe, threading.Event()
        self._thread = threading.Thread(target=self._loop, name="spark-status", daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(1.0):
            try:
                self._status[0] = self._describe()
            except Exception:  # the tracker may be gone while Spark stops: the line just keeps its last text
                pass

    def __enter__(self) -> "_Ticker":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _local_copy(location: str, dest: Path, conn: Connection) -> str:
    """``location`` itself when local; an ``s3://`` export is copied (manifests and data) below ``dest``, with
    that side's credentials (``--source-profile``/``--target-profile``)."""
    if not location.startswith("s3://"):
        return location
    from cdk_replication.spark.layout import FILES, SUMMARY, resolve_export

    s3 = conn.client("s3", None)
    export = resolve_export(location, s3)
    (dest / "data").mkdir(parents=True)
    for uri in (f"{export.folder}/{SUMMARY}", f"{export.folder}/{FILES}", *export.data_files):
        bucket, _, key = uri[len("s3://"):].partition("/")
        relative = uri[len(export.folder) + 1:]
        s3.download_file(bucket, key, str(dest / relative))
    return str(dest)


def _run_on_glue(args: argparse.Namespace, tables: _JobTables, status: list[str],
                 err: TextIO) -> tuple[dict, str]:
    """Start the Glue job run, wait for it with ``--poll-interval``, then read its report from S3. The job
    checks that the exports are of SOURCE and TARGET (their ARNs and ids are among its arguments)."""
    import json

    conn = connections(args)[0]  # the job is deployed with the source side's credentials (docs/cli.md)
    glue = conn.client("glue", None)
    arguments = _job_arguments(*args.from_exports, tables.key_names, args.report, tables.prefix, tables)
    run_id = glue.start_job_run(JobName=args.glue_job, Arguments=dict(zip(arguments[::2], arguments[1::2])))["JobRunId"]
    try:
        run = _wait_for_run(glue, args.glue_job, run_id, args.poll_interval, status)
    except KeyboardInterrupt:
        _stop_run(glue, args.glue_job, run_id, err)
        raise
    state = run["JobRunState"]
    if state != "SUCCEEDED":
        raise WorkFailed(f"Glue job {args.glue_job} run {run_id} ended {state}: {run.get('ErrorMessage', '')}")
    from cdk_replication.spark.job import REPORT_NAME

    bucket, _, prefix_path = args.report[len("s3://"):].partition("/")
    key = f"{prefix_path.strip('/')}/{REPORT_NAME}".lstrip("/")
    body = conn.client("s3", None).get_object(Bucket=bucket, Key=key)["Body"].read()
    return json.loads(body), f"s3://{bucket}/{key}"


def _wait_for_run(glue: Any, job: str, run_id: str, poll: float, status: list[str]) -> dict[str, Any]:
    """Poll the run every ``poll`` seconds until it ends; returns its last ``JobRun``."""
    while True:
        run = glue.get_job_run(JobName=job, RunId=run_id)["JobRun"]
        status[0] = f"Glue job {job} run {run_id}: {run['JobRunState']}"
        if run["JobRunState"] in _GLUE_DONE:
            return run
        time.sleep(poll)


def _stop_run(glue: Any, job: str, run_id: str, err: TextIO) -> None:
    """On Ctrl-C: stop the run (it may last hours, billed per DPU-hour, and the job allows one run at a time,
    so a re-run would be refused while it goes on); say so, or how to stop it when that fails."""
    how = f"aws glue batch-stop-job-run --job-name {job} --job-run-ids {run_id}"
    try:
        answer = glue.batch_stop_job_run(JobName=job, JobRunIds=[run_id])
        failed = answer.get("Errors") or []
    except Exception as exc:  # noqa: BLE001 - any failure leaves the run going: say how to stop it
        failed = [{"ErrorDetail": {"ErrorMessage": f"{type(exc).__name__}: {exc}".splitlines()[0]}}]
    if failed:
        reason = failed[0].get("ErrorDetail", {}).get("ErrorMessage", "")
        err.write(f"cdk-replication: Glue job {job} run {run_id} could not be stopped ({reason}); it goes on: "
                  f"stop it with `{how}`\n")
    else:
        err.write(f"cdk-replication: stopped Glue job {job} run {run_id} (BatchStopJobRun)\n")
