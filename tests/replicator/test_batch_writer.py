"""BatchWriteItem handling with a scripted client: chunking, UnprocessedItems, isolation of a bad item."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from replicator.batch_writer import MAX_BATCH_REQUESTS, chunks, write_batch
from replicator.operations import Delete, Put
from replicator.retry import Deadline


def key(i: int):
    return (("pk", "S", f"k{i}"),)


def put(i: int) -> Put:
    return Put(key(i), {"pk": {"S": f"k{i}"}, "v": {"N": str(i)}})


def error(code: str, status: int = 400) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status}}, "Op")


class ScriptedClient:
    """Answers BatchWriteItem from a script; PutItem fails for keys listed in ``bad``."""

    def __init__(self, script: list[Any], bad: set[str] = frozenset()) -> None:  # type: ignore[assignment]
        self.script = script
        self.bad = bad
        self.batches: list[int] = []
        self.puts: list[str] = []

    def batch_write_item(self, RequestItems: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
        (requests,) = RequestItems.values()
        self.batches.append(len(requests))
        step = self.script.pop(0) if self.script else "ok"
        if isinstance(step, Exception):
            raise step
        if step == "half":
            return {"UnprocessedItems": {"t": requests[::2]}}
        return {"UnprocessedItems": {}}

    def put_item(self, TableName: str, Item: dict[str, Any]) -> None:
        self.puts.append(Item["pk"]["S"])
        if Item["pk"]["S"] in self.bad:
            raise error("ValidationException")


def deadline(seconds: float = 30) -> Deadline:
    return Deadline.from_remaining_ms(int(seconds * 1000), margin_s=0)


def test_chunks_of_25():
    assert [len(c) for c in chunks([put(i) for i in range(61)])] == [25, 25, 11]
    with pytest.raises(ValueError, match="at most 25"):
        write_batch(ScriptedClient([]), "t", [put(i) for i in range(MAX_BATCH_REQUESTS + 1)], ("pk",), deadline())
    with pytest.raises(ValueError, match="same key"):
        write_batch(ScriptedClient([]), "t", [put(1), Delete(key(1))], ("pk",), deadline())


def test_unprocessed_items_are_resent_until_done():
    client = ScriptedClient(["half", "half", "ok"])
    assert write_batch(client, "t", [put(i) for i in range(8)], ("pk",), deadline()) == {}
    assert client.batches == [8, 4, 2]


def test_throttling_then_success():
    client = ScriptedClient([error("ThrottlingException"), error("InternalServerError", 500), "ok"])
    assert write_batch(client, "t", [put(1)], ("pk",), deadline()) == {}
    assert client.batches == [1, 1, 1]


def test_unprocessed_until_deadline_fails_only_the_unprocessed():
    client = ScriptedClient(["half"] * 1000)
    failures = write_batch(client, "t", [put(i) for i in range(4)], ("pk",), deadline(0.3))
    assert set(failures) <= {key(0), key(2)} and failures
    assert all(f.code == "UnprocessedItems" and f.retries_exhausted for f in failures.values())


def test_a_rejected_request_is_replayed_item_by_item():
    client = ScriptedClient([error("ValidationException")], bad={"k3"})
    failures = write_batch(client, "t", [put(i) for i in range(5)], ("pk",), deadline())
    assert list(failures) == [key(3)] and failures[key(3)].code == "ValidationException"
    assert client.puts == ["k0", "k1", "k2", "k3", "k4"]


def test_a_missing_table_fails_every_item_without_replay():
    client = ScriptedClient([error("ResourceNotFoundException")])
    failures = write_batch(client, "t", [put(i) for i in range(5)], ("pk",), deadline())
    assert len(failures) == 5 and client.puts == []


def test_nothing_starts_after_the_deadline():
    client = ScriptedClient([])
    passed = Deadline(at=0.0)
    failures = write_batch(client, "t", [put(1), put(2)], ("pk",), passed)
    assert {f.code for f in failures.values()} == {"DeadlineExceeded"} and len(failures) == 2
    assert client.batches == []
