"""``redrive --from s3://...`` and ``--queue-url`` against moto's S3 and SQS (DynamoDB stays on DynamoDB Local):
boto3's per-service endpoint variables (``AWS_ENDPOINT_URL_S3``/``_SQS``) point those services elsewhere than
``--endpoint-url``."""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from .helpers import REGION, scan_all
from .redrive_helpers import failure_record, object_key, stream_records, write_record


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture()
def s3(moto_url: str, local: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", moto_url)
    return boto3.client("s3", region_name=REGION, endpoint_url=moto_url)


@pytest.fixture()
def sqs(moto_url: str, local: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", moto_url)
    return boto3.client("sqs", region_name=REGION, endpoint_url=moto_url)


def _item(pk: str, value: str) -> dict[str, Any]:
    return {"pk": {"S": pk}, "v": {"S": value}}


def test_redrive_from_s3_marks_and_skips_on_the_second_run(cli: Any, local: Any, ddb: Any, make_table: Any,
                                                           s3: Any) -> None:
    source, target = make_table("rd3-src"), make_table("rd3-tgt", stream=False)
    ddb.put_item(TableName=source, Item=_item("a", "old"))
    records, shard, arn = stream_records(local, ddb, source)
    ddb.put_item(TableName=source, Item=_item("a", "new"))
    bucket = f"failures-{source.lower()}"
    s3.create_bucket(Bucket=bucket)
    key = object_key(shard)
    s3.put_object(Bucket=bucket, Key=key, Body=json.dumps(failure_record(records, shard, arn)).encode())
    s3.put_object(Bucket=bucket, Key="aws/lambda/README.txt", Body=b"not a record")

    run = cli("redrive", source, target, "--from", f"s3://{bucket}/aws/lambda/", "--json")

    assert run.code == 0, run.err
    assert scan_all(ddb, target) == {("a",): _item("a", "new")}
    assert run.json()["records"]["notFailureRecords"] == 1 and run.json()["records"]["redriven"] == 1
    marker = json.loads(s3.get_object(Bucket=bucket, Key=f"cdk-replication/redriven/{key}")["Body"].read())
    assert marker["outcomes"] == {"repaired": 1} and marker["record"] == f"s3://{bucket}/{key}"
    again = cli("redrive", source, target, "--from", f"s3://{bucket}", "--json")
    assert again.code == 0 and again.json()["records"]["alreadyRedriven"] == 1 and again.json()["keys"] == 0


def test_a_bucket_that_does_not_exist_is_refused(cli: Any, make_table: Any, s3: Any) -> None:
    source, target = make_table("rd3-src"), make_table("rd3-tgt", stream=False)
    run = cli("redrive", source, target, "--from", "s3://no-such-bucket-here/aws/lambda/")
    assert run.code == 2 and "bucket 'no-such-bucket-here' does not exist: check --from" in run.err


def test_redrive_from_sqs_rereads_the_stream_and_deletes_the_message(cli: Any, local: Any, ddb: Any,
                                                                     make_table: Any, sqs: Any) -> None:
    source, target = make_table("rd3-src"), make_table("rd3-tgt", stream=False)
    ddb.put_item(TableName=source, Item=_item("a", "1"))
    ddb.put_item(TableName=source, Item=_item("b", "1"))
    records, shard, arn = stream_records(local, ddb, source)
    queue = sqs.create_queue(QueueName=f"failures-{source}")["QueueUrl"]
    sqs.send_message(QueueUrl=queue, MessageBody=json.dumps(failure_record(records[1:], shard, arn, payload=False)))

    run = cli("redrive", source, target, "--queue-url", queue, "--json")

    assert run.code == 0, run.err
    assert sorted(scan_all(ddb, target)) == [("b",)]
    attributes = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["All"])["Attributes"]
    assert attributes["ApproximateNumberOfMessages"] == "0"
    assert attributes["ApproximateNumberOfMessagesNotVisible"] == "0"


def test_an_sqs_record_that_is_not_settled_stays_in_the_queue(cli: Any, local: Any, ddb: Any, make_table: Any,
                                                              sqs: Any) -> None:
    """A range that is gone is lost, not redriven: the message is kept (and visible again at once)."""
    source, target = make_table("rd3-src"), make_table("rd3-tgt", stream=False)
    ddb.put_item(TableName=source, Item=_item("a", "1"))
    records, shard, arn = stream_records(local, ddb, source)
    queue = sqs.create_queue(QueueName=f"failures-{source}")["QueueUrl"]
    body = failure_record(records, "shardId-00000000000000000000-deadbeef", arn, payload=False)
    sqs.send_message(QueueUrl=queue, MessageBody=json.dumps(body))

    run = cli("redrive", source, target, "--queue-url", queue, "--json")

    assert run.code == 1 and run.json()["records"]["lost"] == 1
    attributes = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["All"])["Attributes"]
    assert attributes["ApproximateNumberOfMessages"] == "1"


def test_kinesis_record_without_payload_rereads_the_data_stream(cli: Any, local: Any, ddb: Any, make_table: Any,
                                                                moto_url: str, monkeypatch: pytest.MonkeyPatch,
                                                                tmp_path: Path) -> None:
    """A KinesisBatchInfo record without payload: the range is read again from the data stream (moto) and its
    change records decoded; only the keys in the range are resynced."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_KINESIS", moto_url)
    kinesis = boto3.client("kinesis", region_name=REGION, endpoint_url=moto_url)
    source, target = make_table("rd3-src"), make_table("rd3-tgt", stream=False)
    stream = f"changes-{source}"
    kinesis.create_stream(StreamName=stream, ShardCount=1)
    arn = kinesis.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]["StreamARN"]
    sequences, shard = [], ""
    for pk in ("a", "b", "c"):
        ddb.put_item(TableName=source, Item=_item(pk, "1"))
        change = {"eventName": "INSERT", "tableName": source, "eventSource": "aws:dynamodb", "eventID": pk,
                  "dynamodb": {"ApproximateCreationDateTime": 1_700_000_000_000_000, "Keys": {"pk": {"S": pk}},
                               "NewImage": _item(pk, "1"), "SizeBytes": 10}}
        put = kinesis.put_record(StreamName=stream, Data=json.dumps(change).encode(), PartitionKey=pk)
        sequences.append(put["SequenceNumber"])
        shard = put["ShardId"]
    document = failure_record([], shard, arn, payload=False, start=sequences[1], end=sequences[2],
                              batch_info_key="KinesisBatchInfo")
    write_record(tmp_path / "bucket", document, shard)

    run = cli("redrive", source, target, "--from-dir", str(tmp_path / "bucket"), "--json")

    assert run.code == 0, run.out
    assert sorted(scan_all(ddb, target)) == [("b",), ("c",)]
    kinesis.delete_stream(StreamName=stream)
