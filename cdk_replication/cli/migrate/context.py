"""What every part of a ``migrate`` run shares: the run's context, its constants, and the AWS-call helpers."""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field
from typing import Any, TextIO

from cdk_replication.cli.errors import ACCESS_ERROR_CODES, WorkFailed, error_code, error_message
from cdk_replication.cli.progress import Progress, format_duration
from cdk_replication.cli.state import StateFile
from cdk_replication.cli.tables import Connection, TableHandle, TableRef

#: DynamoDB Streams keep records this long; a load that takes longer loses changes.
STREAM_RETENTION_S = 24 * 3600
#: Where the replicator's mapping UUID is shown (an output of the source stack).
MAPPING_OUTPUT = "ReplicatorEventSourceMappingUuid"


@dataclass
class Context:
    """One run: its options, both sides, the state file, and what it said (for the ``--json`` document)."""

    args: argparse.Namespace
    source: TableHandle
    source_conn: Connection
    target_ref: TableRef
    target_conn: Connection
    target_region: str
    state: StateFile
    err: TextIO
    log: list[dict[str, Any]]
    #: ``--change-source KINESIS``: the source's streaming destination as DescribeKinesisStreamingDestination
    #: showed it in the precheck.
    destination: dict[str, Any] | None = None
    #: Lines said on stderr that the ``--json`` document carries too (e.g. an ARN's account not checked).
    notes: list[str] = field(default_factory=list)

    @property
    def kinesis(self) -> bool:
        return self.args.change_source == "KINESIS"

    def warn(self, text: str) -> None:
        self.err.write(f"warning: {text}\n")

    def note(self, step: str, status: str, detail: str = "") -> None:
        self.log.append({"step": step, "status": status, "detail": detail})
        if not self.args.quiet:
            self.err.write(f"[{step}] {status}{': ' + detail if detail else ''}\n")

    def source_s3(self) -> Any:
        """An S3 client with the source side's credentials (the side that wrote the export)."""
        return self.source_conn.client("s3", self.source.info.region)

    def target_dynamodb(self) -> Any:
        """A DynamoDB client with the target side's credentials, in the target's region."""
        return self.target_conn.client("dynamodb", self.target_region)

    def done(self, step: str) -> bool:
        return step in self.state.data["done"]

    def finish(self, step: str, detail: str = "", **fields: Any) -> None:
        self.state.data["done"].append(step)
        self.state.data.update(fields)
        self.state.save()
        self.note(step, "done", detail)

    def retention_hours(self) -> int:
        """How long the change source keeps changes: 24 hours for a DynamoDB stream, else the recorded
        retention of the Kinesis data stream."""
        hours = self.state.data.get("streamRetentionHours") if self.kinesis else None
        return int(hours or STREAM_RETENTION_S // 3600)

    def retention_unread(self) -> str:
        """A note for texts that use :meth:`retention_hours` when a Kinesis retention had to be assumed."""
        if self.kinesis and self.state.data.get("streamRetentionRead") is False:
            return " (the data stream's retention could not be read: 24 hours is Kinesis' minimum)"
        return ""


def ddb_call(what: str, fn: Any, **kwargs: Any) -> Any:
    """Call ``fn``; an access error becomes a :class:`WorkFailed` that names the permission to grant."""
    try:
        return fn(**kwargs)
    except Exception as exc:
        if error_code(exc) in ACCESS_ERROR_CODES:
            raise WorkFailed(f"access denied: {what} ({error_message(exc)}); grant it and re-run to continue") from exc
        raise


def wait(ctx: Context, label: str, check: Any) -> Any:
    """Poll ``check()`` (returning ``(finished, result, status_text)``) every ``--poll-interval`` seconds;
    returns the ``result`` of the call that finished. A progress line shows the status unless ``--quiet``
    or ``--json``."""
    started = time.monotonic()
    status = ["starting"]

    def render() -> str:
        return f"{label}: {status[0]} ({format_duration(time.monotonic() - started)} elapsed)"

    with Progress(render, ctx.err, enabled=not ctx.args.quiet and not ctx.args.json):
        while True:
            finished, result, status[0] = check()
            if finished:
                return result
            time.sleep(ctx.args.poll_interval)


def table_status(client: Any, table: str) -> dict[str, Any]:
    """The DescribeTable ``Table`` description of ``table``."""
    return client.describe_table(TableName=table)["Table"]
