"""Property test for the DynamoDB Streams change source (ONE_WAY): whatever delivery faults Lambda's event
source mapping adds to one history -- any batch sizes, whole-batch retries after a crash that landed some of
the writes, bisected retries, resumption from a reported record, a lost checkpoint that delivers records
again -- every copy ends at its own image of the source (rule 1): the exact copy equal to the source, each
transformed copy (transformed_targets.py: filtered on a value that flips, ``address`` dropped, ``email``
hashed, once with the partition key hashed too) equal to the transform of the source, and no raw hashed or
dropped value ever reaches a transformed copy (rule 10).

The records are DynamoDB Local's real stream records of the history, in stream order (Streams keeps one
item's records in order within a shard; only re-delivery repeats them). A crash is modelled by the writes it
left behind: the records of some of the batch's items (each item's writes depend only on its own records,
coalesced to its last state), then the retry.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from replicator.processor import Processor

from rep_helpers import FakeContext, Table, create_table, replication_env, sort_items
from transformed_targets import FILTERED, KEYED, Copy, check_copies, install_key, write_history

KEYS = ["a", "b", "c"]
#: How many invocations of one example may carry a fault (then the mapping runs clean to the end).
MAX_FAULTS = 4

#: (kind, key, value): values from a small set make an item enter and leave the filtered copies often.
writes = st.lists(
    st.tuples(st.sampled_from(["put", "update", "delete"]), st.sampled_from(KEYS), st.integers(0, 2)),
    min_size=4,
    max_size=20,
)


@dataclass
class Copies:
    """One source, its copies (exact first, then transformed) and one replicator, shared by all examples of
    the test, each example writing its own keys (tables and clients per example would cost most of the time)."""

    source: Table
    copies: list[Copy]
    processor: Processor
    source_client: Any

    def source_items(self, prefix: str) -> list[dict[str, Any]]:
        """The example's source items, strongly consistent, in a canonical order."""
        items = self.source_client.scan(TableName=self.source.name, ConsistentRead=True)["Items"]  # < 1 MB
        return sort_items(i for i in items if i["pk"]["S"].startswith(prefix))

    def invoke(self, records: list[dict[str, Any]]) -> None:
        """One invocation that completes: nothing may be reported failed."""
        if records:
            assert self.processor.process({"Records": records}, FakeContext()) == {"batchItemFailures": []}


@pytest.fixture
def copies(ddb_local, make_processor, monkeypatch) -> Copies:
    install_key(monkeypatch)
    source = create_table(ddb_local, "fsrc", "us-east-1")
    made = [Copy.of(create_table(ddb_local, name, "eu-west-1", stream=False), spec)
            for name, spec in (("frep", None), ("ffilt", FILTERED), ("fkeyed", KEYED))]
    processor = make_processor(replication_env(source, [c.target() for c in made]), "us-east-1")
    for copy in made:
        copy.record(processor)
    return Copies(source, made, processor, source.client)


def _pk(record: dict[str, Any]) -> str:
    return record["dynamodb"]["Keys"]["pk"]["S"]


def deliver_with_faults(invoke: Callable[[list[dict[str, Any]]], None], records: list[dict[str, Any]],
                        data: Any) -> None:
    """Lambda's event source mapping over one shard of ``records``: batches from the checkpoint, each either
    clean or with one fault (at most :data:`MAX_FAULTS` per example), until the checkpoint passes the end."""
    checkpoint, faults = 0, 0
    while checkpoint < len(records):
        remaining = len(records) - checkpoint
        # Small batches half the time: an item's states must reach a copy in several batches for it to leave it.
        size = data.draw(st.integers(1, remaining) | st.integers(1, min(3, remaining)), label="batch size")
        batch = records[checkpoint:checkpoint + size]
        fault = "none" if faults >= MAX_FAULTS else data.draw(
            st.sampled_from(["none", "crash", "report", "rewind"]), label="fault")
        faults += fault != "none"
        if fault == "crash":
            landed = data.draw(st.sets(st.sampled_from(sorted({_pk(r) for r in batch}))), label="items written")
            invoke([r for r in batch if _pk(r) in landed])
            if len(batch) > 1 and data.draw(st.booleans(), label="bisect"):
                invoke(batch[:len(batch) // 2])  # BisectBatchOnFunctionError: each half on its own
                invoke(batch[len(batch) // 2:])
            else:
                invoke(batch)  # the whole batch again
            checkpoint += size
        elif fault == "report":  # a record reported failed: Lambda resumes from it
            invoke(batch)
            checkpoint += data.draw(st.integers(0, size - 1), label="resume at")
        elif fault == "rewind":  # at-least-once: a checkpoint lost, records delivered again from an earlier one
            invoke(batch)
            checkpoint = data.draw(st.integers(0, checkpoint), label="rewound to")
        else:
            invoke(batch)
            checkpoint += size


# Shrinking would take minutes on DynamoDB Local, so the failing case is printed as generated. Each of these
# mutants of one_way.py failed on every seed tried (2 to 7), mostly within the first few examples: no delete
# when an item stops matching, the transform applied to the old image, the raw image under the transformed
# one (a dropped value sent; also caught by the leak check alone), the delete sent to the source's key.
@settings(
    max_examples=60,
    deadline=None,
    phases=(Phase.explicit, Phase.reuse, Phase.generate),
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(history=writes, data=st.data())
def test_any_faulty_delivery_of_a_history_converges_on_every_copy(copies, history, data):
    prefix = f"{uuid.uuid4().hex[:8]}-"
    pks = [prefix + name for name in KEYS]
    write_history(copies.source_client, copies.source, prefix, history)
    records = copies.source.new_records()
    for copy in copies.copies:
        copy.sent.clear()
    deliver_with_faults(copies.invoke, records, data)
    check_copies(copies.copies, copies.source_items(prefix), prefix, pks)
