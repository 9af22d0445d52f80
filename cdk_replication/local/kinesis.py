"""Kinesis Data Streams for the local runtime: a data plane (moto's Kinesis in a local server) and Lambda's
event source mapping on a Kinesis stream.

* :class:`LocalKinesis` starts moto's server on a free port (moto is imported only when it is started) and
  hands out ``kinesis`` clients for a region and an account (moto keeps one backend per account and region;
  the account is selected per request with moto's ``x-moto-account-id`` header).
* :class:`KinesisStreamSource` is a Kinesis stream as an
  :class:`~cdk_replication.local.event_source_mapping.EventSource`: ``ListShards``, ``GetShardIterator``,
  ``GetRecords``, records in the shape of Lambda's Kinesis events, ``KinesisBatchInfo`` on-failure records,
  and ``itemIdentifier`` compared as an integer (Kinesis sequence numbers are decimal strings).
* :class:`KinesisEventSourceMapping` is the mapping engine on such a source; everything else (batching,
  bisect, retries, record age, partial batch responses, fault hooks) is the DynamoDB Streams mapping's.

DynamoDB's own "Kinesis streaming destination" is emulated by
:class:`~cdk_replication.local.kinesis_bridge.KinesisStreamingDestination`.
"""

from __future__ import annotations

import base64
import datetime as dt
import logging
import socket
import time
from collections.abc import Callable, Hashable
from typing import Any

import boto3

from cdk_replication import physical_names
from cdk_replication.local.event_source_mapping import (
    EventSourceMapping,
    FailureDestination,
    Invokable,
    IteratorExpired,
    MappingSettings,
    ShardInfo,
    SourceRecord,
    batch_info,
)
from cdk_replication.local.intrinsics import partition_of


def kinesis_stream_arn(name: str, region: str, account: str) -> str:
    """The ARN of Kinesis stream ``name`` (what templates and events carry)."""
    partition, _ = partition_of(region)
    return f"arn:{partition}:kinesis:{region}:{account}:stream/{name}"


def parse_kinesis_stream_arn(arn: str) -> tuple[str, str, str] | None:
    """``(region, account, name)`` of a Kinesis stream ARN, or ``None`` if ``arn`` is not one."""
    parts = physical_names.parse_kinesis_stream_arn(arn)
    return None if parts is None else (parts["region"], parts["account"], parts["name"])


class LocalKinesis:
    """moto's Kinesis on a free local port.

    Only Kinesis is used from moto; DynamoDB stays on DynamoDB Local. Use it as a context manager or call
    :meth:`start`/:meth:`stop`.

    moto keeps its data in the memory of the Python process, shared by every server in the process: two
    ``LocalKinesis`` see the same streams. So that a stream lives as long as the ``LocalKinesis`` that created
    it (as a table lives as long as its DynamoDB Local), :meth:`stop` deletes the streams that
    :meth:`create_stream` created.

    Args:
        host: the address to listen on. Default: ``127.0.0.1``.
    """

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port: int | None = None
        self._server: Any = None
        self._created: list[tuple[str, str, str]] = []  # (name, region, account)

    @property
    def endpoint_url(self) -> str:
        if self.port is None:
            raise RuntimeError("LocalKinesis is not started; call start() first")
        return f"http://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> "LocalKinesis":
        if self._server is not None:
            return self
        try:
            from moto.server import ThreadedMotoServer
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise RuntimeError(
                "the local Kinesis data plane needs moto's server: pip install 'moto[server]' "
                f"(import failed: {exc})") from exc
        # moto's server logs every request through werkzeug; keep test output readable.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        with socket.socket() as s:
            s.bind((self.host, 0))
            self.port = s.getsockname()[1]
        server = ThreadedMotoServer(ip_address=self.host, port=self.port, verbose=False)
        server.start()
        self._server = server
        return self

    def stop(self) -> None:
        """Delete the streams this instance created and stop the server."""
        if self._server is None:
            return
        try:
            for name, region, account in self._created:
                client = self.client(region, account)
                try:
                    client.delete_stream(StreamName=name, EnforceConsumerDeletion=True)
                except client.exceptions.ResourceNotFoundException:
                    pass
        finally:
            self._created.clear()
            server, self._server = self._server, None
            server.stop()

    def __enter__(self) -> "LocalKinesis":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def client(self, region: str, account: str | None = None) -> Any:
        """A boto3 ``kinesis`` client for ``region`` (and ``account``: moto's default account if omitted)."""
        client = boto3.session.Session().client(
            "kinesis", region_name=region, endpoint_url=self.endpoint_url,
            aws_access_key_id="testing", aws_secret_access_key="testing")
        if account is not None:
            def add_account(request: Any, **_: Any) -> None:
                request.headers["x-moto-account-id"] = account
            client.meta.events.register("before-sign.kinesis.*", add_account)
        return client

    def create_stream(self, name: str, region: str, account: str, shard_count: int | None = 1) -> str:
        """Create stream ``name`` (``shard_count`` ``None``: on-demand) unless it exists; returns its ARN."""
        client = self.client(region, account)
        try:
            client.describe_stream_summary(StreamName=name)
        except client.exceptions.ResourceNotFoundException:
            if shard_count is None:
                client.create_stream(StreamName=name, StreamModeDetails={"StreamMode": "ON_DEMAND"})
            else:
                client.create_stream(StreamName=name, ShardCount=shard_count)
            self._created.append((name, region, account))
        return kinesis_stream_arn(name, region, account)


class KinesisStreamSource:
    """A Kinesis stream as the source of an event source mapping, in Lambda's Kinesis shapes.

    Args:
        stream_name: the stream's name.
        kinesis_client: a boto3 ``kinesis`` client for the stream's region and account.
        region: the stream's region (the records' ``awsRegion``).
        account: the stream's account.
        invoke_identity_arn: the records' ``invokeIdentityArn`` (the function's execution role). Default:
            a role named after the function in the stream's account.
    """

    batch_info_key = "KinesisBatchInfo"

    def __init__(self, stream_name: str, kinesis_client: Any, region: str, account: str,
                 invoke_identity_arn: str) -> None:
        self.stream_name = stream_name
        self.client = kinesis_client
        self.region = region
        self.event_source_arn = kinesis_stream_arn(stream_name, region, account)
        self.invoke_identity_arn = invoke_identity_arn
        self._closed: set[str] = set()

    def shards(self) -> list[ShardInfo] | None:
        shards: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"StreamName": self.stream_name}
        try:
            while True:
                page = self.client.list_shards(**kwargs)
                shards.extend(page.get("Shards", []))
                if not page.get("NextToken"):
                    break
                kwargs = {"NextToken": page["NextToken"]}
        except self.client.exceptions.ResourceNotFoundException:
            return None
        infos = [ShardInfo(s["ShardId"], s.get("ParentShardId"), s.get("AdjacentParentShardId"),
                           "EndingSequenceNumber" in s.get("SequenceNumberRange", {})) for s in shards]
        self._closed = {i.shard_id for i in infos if i.closed}
        return infos

    def iterator(self, shard_id: str, kind: str, sequence_number: str | None = None) -> str | None:
        kwargs: dict[str, Any] = {"StreamName": self.stream_name, "ShardId": shard_id, "ShardIteratorType": kind}
        if sequence_number is not None:
            kwargs["StartingSequenceNumber"] = sequence_number
        return self.client.get_shard_iterator(**kwargs).get("ShardIterator")

    def read(self, shard_id: str, iterator: str, limit: int) -> tuple[list[dict[str, Any]], str | None]:
        try:
            page = self.client.get_records(ShardIterator=iterator, Limit=limit)
        except self.client.exceptions.ExpiredIteratorException as exc:
            raise IteratorExpired(str(exc)) from exc
        records = page.get("Records", [])
        next_iterator = page.get("NextShardIterator")
        if not records and shard_id in self._closed:
            next_iterator = None  # read to the end of a closed shard (moto keeps answering empty pages)
        return records, next_iterator

    def to_record(self, raw: dict[str, Any], shard_id: str, now: float) -> SourceRecord:
        arrival = raw["ApproximateArrivalTimestamp"]
        arrival_s = arrival.timestamp() if isinstance(arrival, dt.datetime) else float(arrival)
        arrival_s = round(arrival_s, 3)  # Kinesis stamps arrivals to the millisecond
        seq = str(raw["SequenceNumber"])
        record = {
            "kinesis": {
                "kinesisSchemaVersion": "1.0",
                "partitionKey": raw["PartitionKey"],
                "sequenceNumber": seq,
                "data": base64.b64encode(bytes(raw["Data"])).decode("ascii"),
                "approximateArrivalTimestamp": arrival_s,
            },
            "eventSource": "aws:kinesis",
            "eventVersion": "1.0",
            "eventID": f"{shard_id}:{seq}",
            "eventName": "aws:kinesis:record",
            "invokeIdentityArn": self.invoke_identity_arn,
            "awsRegion": self.region,
            "eventSourceARN": self.event_source_arn,
        }
        return SourceRecord(record, seq, arrival_s)

    def item_key(self, identifier: Any) -> Hashable | None:
        if isinstance(identifier, str) and identifier.isdigit():
            return int(identifier)
        return None

    def batch_info(self, shard_id: str, first: SourceRecord, last: SourceRecord, size: int) -> dict[str, Any]:
        return batch_info(shard_id, first, last, size, self.event_source_arn, millis=True)


class KinesisEventSourceMapping(EventSourceMapping):
    """Lambda's event source mapping from one Kinesis stream to one function.

    Same engine, settings, counters, driving and fault hooks as
    :class:`~cdk_replication.local.event_source_mapping.StreamEventSourceMapping`.

    Args:
        function: the function to invoke (a :class:`~cdk_replication.local.LocalFunction`).
        stream_arn: the stream's ARN (``arn:aws:kinesis:<region>:<account>:stream/<name>``).
        kinesis_client: a boto3 ``kinesis`` client for the stream's region and account
            (:meth:`LocalKinesis.client`).
        invoke_identity_arn: the function's execution role ARN (the records' ``invokeIdentityArn``).
            Default: ``arn:<partition>:iam::<account>:role/<function name>-role``.
        settings, destination, uuid, clock: as for
            :class:`~cdk_replication.local.event_source_mapping.EventSourceMapping`.
    """

    def __init__(
        self,
        function: Invokable,
        stream_arn: str,
        *,
        kinesis_client: Any,
        invoke_identity_arn: str | None = None,
        settings: MappingSettings | None = None,
        destination: FailureDestination | None = None,
        uuid: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        parsed = parse_kinesis_stream_arn(stream_arn)
        if parsed is None:
            raise ValueError(f"not a Kinesis stream ARN: {stream_arn!r}")
        region, account, name = parsed
        if invoke_identity_arn is None:
            partition, _ = partition_of(region)
            function_name = function.arn.rsplit(":", 1)[-1]
            invoke_identity_arn = f"arn:{partition}:iam::{account}:role/{function_name}-role"
        self.stream_name = name
        super().__init__(function, KinesisStreamSource(name, kinesis_client, region, account, invoke_identity_arn),
                         region=region, account=account, settings=settings, destination=destination,
                         uuid=uuid, clock=clock)
        self.role_arn = invoke_identity_arn
